"""Power sets range: a beacon set to R is heard inside R and rarely beyond 1.3 R (short form).

The long form (more bearings, the plot) is ``python -m firmware_sim.bench``.
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim import calibration as cal
from firmware_sim import rangetest

# Short form: 4 bearings per point keeps the suite to ~15 s on two cores.
POSITIONS = 4


@pytest.mark.parametrize("range_m", [3.0, 5.0, 10.0])
def test_beacon_is_heard_inside_its_range_and_rarely_beyond(range_m: float) -> None:
    rng = np.random.default_rng(int(range_m))
    inside = rangetest.measure_point(range_m, 0.8 * range_m, POSITIONS, rng)
    edge = rangetest.measure_point(range_m, range_m, POSITIONS, rng)
    beyond = rangetest.measure_point(range_m, 1.5 * range_m, POSITIONS, rng)
    assert inside.rate >= 0.75, inside
    assert edge.rate >= 0.75, edge
    assert beyond.rate <= 0.25, beyond


def test_a_quieter_beacon_reaches_less_far() -> None:
    rng = np.random.default_rng(11)
    level_3m = cal.range_to_level_dbfs(3.0)
    at_5m = rangetest.measure_point(5.0, 5.0, POSITIONS, rng, level_dbfs=level_3m)
    assert at_5m.rate == 0.0  # a 3 m beacon is not heard at 5 m


def test_app_criterion_needs_three_frames_averaging_over_the_gate() -> None:
    gate = cal.APP_MIN_SNR_DB
    assert rangetest.app_hears((gate + 1, gate + 0.5, gate - 1.5), gate)
    assert not rangetest.app_hears((gate + 1, gate + 0.5, gate - 2.0), gate)
    assert not rangetest.app_hears((gate + 9, gate + 9), gate)  # a frame was missed
    with pytest.raises(ValueError):
        rangetest.positions_at(0.5, 2, np.random.default_rng(0))
