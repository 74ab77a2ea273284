"""The hub's range -> level mapping is the simulator's calibration, without importing it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from firmware_sim import calibration as cal
from hub.models.registry import MAX_RANGE_M, MIN_RANGE_M
from hub.services.levels import range_to_level_dbfs


def test_monotone_over_the_registry_span() -> None:
    steps = [MIN_RANGE_M + i * (MAX_RANGE_M - MIN_RANGE_M) / 70 for i in range(71)]
    out = [range_to_level_dbfs(r) for r in steps]
    assert all(b > a for a, b in zip(out, out[1:], strict=False))


@pytest.mark.parametrize("range_m", [3.0, 4.0, 5.0, 7.5, 10.0])
def test_matches_the_simulators_calibration(range_m: float) -> None:
    level = range_to_level_dbfs(range_m)
    assert level == pytest.approx(cal.range_to_level_dbfs(range_m), abs=0.005)
    # The simulator, given the level the hub sends, puts the range edge where asked
    # (the hub rounds to 0.01 dB; the level changes >= 1.3 dB per metre up to 10 m).
    assert cal.level_dbfs_to_range_m(level) == pytest.approx(range_m, abs=0.005)


def test_refuses_ranges_the_registry_does_not_allow() -> None:
    for range_m in (MIN_RANGE_M - 0.1, MAX_RANGE_M + 0.1):
        with pytest.raises(ValueError):
            range_to_level_dbfs(range_m)


def test_hub_does_not_import_the_simulator() -> None:
    code = (
        "import sys, hub.services.levels, hub.services.provisioning\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'firmware_sim')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
