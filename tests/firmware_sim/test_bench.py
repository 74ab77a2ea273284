"""The simulator benchmark's plot and walk (the benchmark itself runs from `storewave bench`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim import bench, store


def test_range_plot_is_written(tmp_path: Path) -> None:
    points = [
        {"range_m": r, "factor": f, "rate": 1.0 if f <= 1.0 else 0.0}
        for r in bench.RANGES_M
        for f in (0.8, 1.0, 1.3)
    ]
    data = {"points": points, "room": {"rt60_s": 0.2}, "noise_floor_db_spl": 40.0}
    out = tmp_path / "range.png"
    bench.plot_range(data, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_phone_minute_walk_lasts_one_minute() -> None:
    layout = store.layout_from_seeds("fz-gulou", seed=1)
    phone = bench._phone_minute_walk(layout)
    assert phone.path.end_s - phone.path.start_s == pytest.approx(bench.PHONE_MINUTE_S, abs=0.01)
    assert len(phone.path.waypoints) == len(layout.beacons)
