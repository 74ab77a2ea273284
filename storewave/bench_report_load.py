"""Benchmark report rows for ``load.json`` (``storewave bench load``, firmware_sim.loadbench)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storewave.bench_report import FAILED, NOT_RUN, Row, _num


def load_rows(data: Mapping[str, Any]) -> list[Row]:
    """Per database x broker: sustained events/s (x the realistic load) and check-in p99."""
    load, targets = data["load"], data["targets"]
    fleet = f"{load['nodes']:,} nodes / {load['stores']} stores"
    lag_target, p99_target = _num(targets["ingest_lag_p99_s"]), _num(targets["checkin_p99_ms"])
    rows: list[Row] = []
    for scenario in data["scenarios"]:
        name = scenario["name"]
        if scenario["status"] != "ok":
            status = NOT_RUN if scenario["status"] == "not run" else FAILED
            rows.append(Row("load", f"{name}: {scenario.get('note', '')}", status=status))
            continue
        where = f"{scenario['database']} + {scenario['broker']}"
        realistic = scenario["realistic"]
        offered = _num(realistic["offered_events_per_s"])
        lag = realistic["ingest_lag_p99_s"]
        behind = scenario["fell_behind_at_events_per_s"]
        kept = scenario.get("kept_up_to_events_per_s")
        behind_text = "never fell behind" if behind is None else f"behind at {behind:g}/s offered"
        if kept and behind is not None:
            behind_text = f"kept up to {kept:g}/s, {behind_text}"
        sustained = _num(scenario["sustained_events_per_s"])
        lag_text = "nothing committed in time" if lag is None else f"lag p99 {lag} s"
        rows.append(
            Row(
                "load",
                f"fleet {fleet}, {where}: sustained events/s ({behind_text}; "
                f"{lag_text} at the realistic {offered:g}/s)",
                sustained,
                "events/s",
                f"realistic {offered:g}/s kept up, lag p99 <= {lag_target:g} s",
                bool(realistic["kept_up"]) and lag is not None and _num(lag) <= lag_target,
                round(sustained / offered, 2),
                "x the realistic fleet load, same run",
            )
        )
        p99 = realistic["checkin_p99_ms"]
        rows.append(
            Row(
                "load",
                f"{where}: POST /v1/checkins p99 at {_num(load['checkin_rate_per_s']):g} req/s "
                f"under the realistic fleet load",
                None if p99 is None else _num(p99),
                "ms",
                f"<= {p99_target:g} ms",
                None if p99 is None else _num(p99) <= p99_target,
            )
        )
    return rows
