"""The shared range <-> level link budget (``storewave.levels``)."""

from __future__ import annotations

import numpy as np
import pytest

from storewave import levels


def test_level_grows_strictly_with_range() -> None:
    ranges = np.linspace(levels.MIN_RANGE_M, levels.MAX_RANGE_M, 300)
    out = [levels.range_to_level_dbfs(float(r)) for r in ranges]
    assert all(b > a for a, b in zip(out, out[1:], strict=False))


@pytest.mark.parametrize("range_m", [1.0, 3.0, 5.0, 7.5, 10.0, 30.0])
def test_range_and_level_invert_each_other(range_m: float) -> None:
    level = levels.range_to_level_dbfs(range_m)
    assert levels.level_dbfs_to_range_m(level) == pytest.approx(range_m, abs=1e-6)


def test_link_budget_at_the_edge_of_range_is_the_detector_snr() -> None:
    """At R the direct-path level is the noise floor plus the calibrated edge SNR."""
    for range_m in (3.0, 10.0):
        source = levels.emitter_dbfs_to_db_spl_1m(levels.range_to_level_dbfs(range_m))
        heard = levels.received_level_db_spl(source, range_m)
        assert heard - levels.DEFAULT_NOISE_FLOOR_DB_SPL == pytest.approx(levels.EDGE_SNR_DB)


def test_air_absorption_matches_iso_9613_1() -> None:
    # ISO 9613-1 Table 1: 20 degC, 50 % RH, 1 kHz -> 4.66 dB/km.
    assert levels.air_absorption_db_per_m(1000.0, 20.0, 50.0) * 1000 == pytest.approx(
        4.66, abs=0.02
    )
    band = levels.air_absorption_db_per_m(np.array([18e3, 19e3, 20e3]))
    assert isinstance(band, np.ndarray) and np.all(np.diff(band) > 0)


def test_refuses_what_the_model_does_not_cover() -> None:
    with pytest.raises(ValueError):
        levels.range_to_level_dbfs(0.5)
    with pytest.raises(levels.OutOfReach):
        levels.range_to_level_dbfs(25.0, noise_floor_db_spl=80.0)
    # A level too quiet or too loud for the model clamps to its span.
    assert levels.level_dbfs_to_range_m(-200.0) == levels.MIN_RANGE_M
    assert levels.level_dbfs_to_range_m(0.0, noise_floor_db_spl=0.0) == levels.MAX_RANGE_M
