"""Render the benchmark report: latest.json, latest.md (Markdown table) and a rich table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from storewave.bench_report import OK, Row, build_rows

REPORT_JSON = "latest.json"
REPORT_MD = "latest.md"


def _fmt_value(row: Row) -> str:
    """The measured value with its unit (or the row's state when there is none)."""
    if row.status != OK:
        return row.status
    if row.value is None:
        return "-"
    number = f"{row.value:,.0f}" if abs(row.value) >= 1000 else f"{row.value:.3g}"
    return f"{number} {row.unit}".strip()


def _fmt_met(row: Row) -> str:
    """yes / no / - for the target column."""
    return {True: "yes", False: "**no**", None: "-"}[row.met]


def _fmt_ratio(row: Row) -> str:
    """The baseline ratio and what it is against."""
    if row.ratio is None:
        return row.ratio_to or "-"
    return f"{row.ratio:.3g}: {row.ratio_to}"


def render_markdown(rows: list[Row], generated_at: str) -> str:
    """The report as a Markdown table (what README links to)."""
    lines = [
        "# Benchmark report",
        "",
        f"Generated {generated_at} by `storewave bench report` from the benchmark JSON files in"
        " this folder (`storewave bench all` runs every benchmark, then this). Each ratio is"
        " against a baseline measured in the same run as its figure; `when` is the run's"
        " own time stamp, or the result file's time marked (file) where the run wrote none."
        " `not run`: no result file; `unreadable`: a shape the report does not know (see the"
        " log).",
        "",
        "| benchmark | figure | measured | target | met | baseline ratio (same run) | when |",
        "|---|---|---:|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row.benchmark,
            row.figure,
            _fmt_value(row),
            row.target or "-",
            _fmt_met(row),
            _fmt_ratio(row),
            row.measured_at or "-",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def rich_table(rows: list[Row]) -> Table:
    """The report as a rich table for the terminal."""
    table = Table(title="StoreWave benchmarks")
    for column in ("benchmark", "figure", "measured", "target", "met", "baseline ratio"):
        table.add_column(column, justify="right" if column == "measured" else "left")
    styles = {True: "green", False: "red", None: ""}
    for row in rows:
        table.add_row(
            row.benchmark,
            row.figure,
            _fmt_value(row),
            row.target or "-",
            _fmt_met(row).strip("*"),
            _fmt_ratio(row),
            style=styles[row.met],
        )
    return table


def write_report(
    results_dir: Path, failed: Iterable[str] = (), console: Console | None = None
) -> list[Row]:
    """Build the rows, write latest.json and latest.md into ``results_dir``, print the table."""
    rows = build_rows(results_dir, failed)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    payload = {"generated_at": generated_at, "rows": [asdict(row) for row in rows]}
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / REPORT_JSON).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (results_dir / REPORT_MD).write_text(render_markdown(rows, generated_at), encoding="utf-8")
    (console or Console()).print(rich_table(rows))
    return rows
