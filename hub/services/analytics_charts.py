"""Report exports: CSV text and PNG/SVG bar charts (matplotlib, headless Agg backend)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a server; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

# A slide-sized figure: readable in a report, small as a file.
FIGURE_SIZE_IN = (8.0, 4.5)
DPI = 100
# More bars than this are unreadable; the chart shows the first ones (the CSV has all).
MAX_BARS = 40
MEDIA_TYPES = {"csv": "text/csv", "png": "image/png", "svg": "image/svg+xml"}


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV with a header (columns in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def bar_chart(
    rows: Sequence[dict[str, Any]], label: Sequence[str], value: str, title: str, fmt: str
) -> bytes:
    """A bar chart of ``value`` per row, labelled by the ``label`` columns, as PNG or SVG."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"unknown chart format {fmt!r}")
    shown = list(rows)[:MAX_BARS]
    names = [" ".join(str(r.get(k, "")) for k in label) for r in shown]
    values = [float(r.get(value) or 0) for r in shown]
    fig, ax = plt.subplots(figsize=FIGURE_SIZE_IN, dpi=DPI)
    try:
        ax.bar(range(len(values)), values, color="#2b6cb0")
        ax.set_xticks(range(len(values)), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(value.replace("_", " "))
        ax.set_title(title)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
        return buffer.getvalue()
    finally:
        plt.close(fig)


# The movement chart ranks this many transitions: the busy corridors of a store; the
# long tail is in the JSON/CSV.
TOP_TRANSITIONS = 12
MOVEMENT_FIGURE_IN = (11.0, 5.5)
_TRANSITION_COLOUR = "#2b6cb0"
_DWELL_COLOUR = "#dd6b20"


def movement_chart(report: dict[str, list[dict[str, Any]]], title: str, fmt: str) -> bytes:
    """The paths report as two ranked panels: top transitions (count) and dwell per zone.

    Left, the most common zone-to-zone moves as horizontal bars, busiest on top, each
    labelled ``from -> to`` and with its count; right, the mean minutes spent per zone
    with the number of stays behind each mean. Zone ids lose their common store prefix.
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"unknown chart format {fmt!r}")
    moves = report.get("transitions", [])[:TOP_TRANSITIONS]
    dwell = sorted(report.get("dwell", []), key=lambda r: r["mean_minutes"], reverse=True)
    prefix = _common_prefix(
        [m["from"] for m in moves] + [m["to"] for m in moves] + [d["zone"] for d in dwell]
    )
    fig, (left, right) = plt.subplots(
        1, 2, figsize=MOVEMENT_FIGURE_IN, dpi=DPI, gridspec_kw={"width_ratios": [3, 2]}
    )
    try:
        _ranked_bars(
            left,
            [f"{_short(m['from'], prefix)} \u2192 {_short(m['to'], prefix)}" for m in moves],
            [int(m["count"]) for m in moves],
            [str(m["count"]) for m in moves],
            _TRANSITION_COLOUR,
            f"Top {len(moves)} zone-to-zone moves" if moves else "No zone-to-zone moves",
            "moves",
        )
        _ranked_bars(
            right,
            [_short(d["zone"], prefix) for d in dwell],
            [float(d["mean_minutes"]) for d in dwell],
            [f"{d['mean_minutes']:.1f} min ({d['stays']} stays)" for d in dwell],
            _DWELL_COLOUR,
            "Mean dwell per zone" if dwell else "No stays",
            "minutes",
        )
        fig.suptitle(f"{title}" + (f" \u2014 {prefix.rstrip('-')}" if prefix else ""))
        fig.tight_layout()
        buffer = io.BytesIO()
        # SVG keeps its words as text (selectable, searchable), not as glyph outlines.
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _ranked_bars(
    ax: Any,
    names: list[str],
    values: list[float],
    labels: list[str],
    colour: str,
    title: str,
    xlabel: str,
) -> None:
    """Horizontal bars, largest on top, each with its value written at its end."""
    positions = range(len(values))
    ax.barh(positions, values, color=colour, height=0.6)
    ax.set_yticks(positions, names, fontsize=9)
    ax.invert_yaxis()  # rank 1 at the top
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    peak = max(values, default=0) or 1
    ax.set_xlim(0, peak * 1.35)  # room for the labels at the bars' ends
    for y, (v, text) in enumerate(zip(values, labels, strict=True)):
        ax.text(v + peak * 0.02, y, text, va="center", fontsize=8)


def _common_prefix(zone_ids: list[str]) -> str:
    """The store part shared by every zone id (``fz-gulou-``), or "" if they differ."""
    if not zone_ids:
        return ""
    first = zone_ids[0]
    cut = first.rfind("-") + 1
    prefix = first[:cut]
    if prefix and all(z.startswith(prefix) for z in zone_ids):
        return prefix
    return ""


def _short(zone_id: str, prefix: str) -> str:
    """The zone id without the shared store prefix."""
    return zone_id[len(prefix) :] if prefix and zone_id.startswith(prefix) else zone_id
