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
