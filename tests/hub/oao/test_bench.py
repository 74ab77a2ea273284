"""The OAO benchmark runs end to end at a tiny size and writes its JSON (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from hub.services.oao.bench import make_world, run_oao_bench, summary


def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    """All parts run (tree and scan must agree inside) and the JSON has every section."""
    result = run_oao_bench(tmp_path, n_orders=200, e2e_orders=10, n_open=10, scaling_orders=20)
    written = json.loads((tmp_path / "oao.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert written["timeout_sweep_sqlite"]["open_orders"] == 10
    assert written["timeout_sweep_sqlite"]["steady_due"] == 1
    assert written["dispatch_end_to_end_sqlite"]["orders"] == 10
    assert {"dispatch_kdtree", "dispatch_scan_baseline", "scaling"} <= set(written)
    sweep = written["timeout_sweep_sqlite"]
    assert (sweep["burst_due"], sweep["timeout_due"]) == (9, 10)
    assert sweep["timeout_redispatched"] + sweep["timeout_escalated"] == 10
    assert written["dispatch_one_by_one_sqlite"]["orders"] == 10
    lines = summary(written)
    assert sum("(< 1 s: " in line for line in lines) == 3
    assert sum("(>= 500: " in line for line in lines) == 2


def test_world_is_reproducible() -> None:
    """One seed, one world: the benchmark measures the same orders every run."""
    a, b = make_world(n_stores=20, n_orders=30), make_world(n_stores=20, n_orders=30)
    assert (a.store_lat == b.store_lat).all() and a.products == b.products
