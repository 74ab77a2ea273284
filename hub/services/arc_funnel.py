"""ARC funnel: started, cared, rated (distribution), converted, by a dimension; CSV, PNG, SVG."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlmodel import Session

from hub.models.journeys import JourneyInstance
from hub.models.services_catalogue import Trial, TrialState

# SEEDS.md 2: 251,000 of 3.9 million Shanxi trial users converted (about 6.4%).
SHANXI_CONVERSIONS = 251_000
SHANXI_TRIALS = 3_900_000
SHANXI_RATE = SHANXI_CONVERSIONS / SHANXI_TRIALS
# A trial counts as cared for once its service manual (the journey's first step) went out.
CARE_STEP = "manual"
Dimension = Literal["service", "channel", "store", "city", "staff", "total"]
DIMENSIONS: dict[str, str] = {
    "service": "service_id", "channel": "channel", "store": "store_id", "city": "city",
    "staff": "staff_id", "total": "",
}
RATINGS = (1, 2, 3, 4, 5)
CSV_FIELDS = ("group", "started", "cared", "rated", "converted", "conversion_rate",
              *(f"rating_{r}" for r in RATINGS))
# Chart size in inches and resolution: readable on a slide, small as a file.
FIGSIZE_IN = (9.0, 4.8)
DPI = 110


@dataclass
class FunnelRow:
    """One group's funnel."""

    group: str
    started: int = 0
    cared: int = 0
    rated: int = 0
    converted: int = 0
    ratings: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RATINGS, 0))

    @property
    def conversion_rate(self) -> float:
        """Converted / started (0 when nothing started)."""
        return self.converted / self.started if self.started else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The row as plain data (JSON/CSV)."""
        return {"group": self.group, "started": self.started, "cared": self.cared,
                "rated": self.rated, "converted": self.converted,
                "conversion_rate": round(self.conversion_rate, 6),
                "ratings": {str(k): v for k, v in self.ratings.items()}}


def funnel(session: Session, by: Dimension = "total") -> list[FunnelRow]:
    """The funnel per value of ``by`` (largest groups first)."""
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}")
    rows = session.execute(
        select(Trial, JourneyInstance.history)
        .outerjoin(JourneyInstance, JourneyInstance.id == Trial.instance_id)
    ).all()
    return summarise(((trial, history or []) for trial, history in rows), by)


def summarise(rows: Iterable[tuple[Trial, list[Any]]], by: Dimension) -> list[FunnelRow]:
    """Fold (trial, journey history) pairs into funnel rows."""
    attr = DIMENSIONS[by]
    groups: dict[str, FunnelRow] = {}
    for trial, history in rows:
        key = str(getattr(trial, attr) or "-") if attr else "all"
        row = groups.setdefault(key, FunnelRow(key))
        row.started += 1
        if any(entry[0] == CARE_STEP for entry in history):
            row.cared += 1
        if trial.rating is not None:
            row.rated += 1
            row.ratings[trial.rating] = row.ratings.get(trial.rating, 0) + 1
        if trial.state == TrialState.CONVERTED:
            row.converted += 1
    return sorted(groups.values(), key=lambda r: (-r.started, r.group))


def to_csv(rows: list[FunnelRow]) -> str:
    """The funnel as CSV, one line per group."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        writer.writerow([r.group, r.started, r.cared, r.rated, r.converted,
                         f"{r.conversion_rate:.6f}", *(r.ratings.get(k, 0) for k in RATINGS)])
    return out.getvalue()


def to_chart(rows: list[FunnelRow], fmt: Literal["png", "svg"], title: str) -> bytes:
    """Conversion rate per group with the Shanxi 6.4% reference line (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE_IN)
    ax = fig.add_subplot()
    labels = [r.group for r in rows] or ["(no trials)"]
    rates = [100 * r.conversion_rate for r in rows] or [0.0]
    ax.bar(labels, rates, color="#3b7dd8")
    ax.axhline(100 * SHANXI_RATE, color="#d83b3b", linestyle="--",
               label=f"Shanxi ARC reference {100 * SHANXI_RATE:.1f}%")
    for x, r in enumerate(rows):
        ax.annotate(f"{r.converted}/{r.started}", (x, 100 * r.conversion_rate),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("conversion rate (%)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI)
    return buf.getvalue()
