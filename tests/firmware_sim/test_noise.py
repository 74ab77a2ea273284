"""The synthesised noise library: seeded, calibrated, with the spectra it claims."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim import calibration as cal
from firmware_sim import noise

FS = 48_000


def test_same_seed_same_noise_other_seed_other_noise() -> None:
    scene = noise.store_scene(40.0)
    a = scene.render(FS, FS, np.random.default_rng(1))
    b = scene.render(FS, FS, np.random.default_rng(1))
    c = scene.render(FS, FS, np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_stationary_floor_is_topped_up_to_the_stated_band_level() -> None:
    scene = noise.store_scene(40.0, with_clatter=False)
    x = scene.render(2 * FS, FS, np.random.default_rng(3))
    assert cal.band_level_db_spl(x, FS) == pytest.approx(40.0, abs=0.5)
    broadband = cal.mic_dbfs_to_db_spl(cal.rms_to_dbfs(float(np.sqrt(np.mean(x**2)))))
    assert broadband > 60.0  # babble and music dominate the audible band


def test_cart_clatter_reaches_above_18_khz_and_babble_does_not() -> None:
    rng = np.random.default_rng(4)
    clatter = noise.clatter(4 * FS, FS, rng)
    babble = noise.babble(4 * FS, FS, rng)
    assert cal.band_power(clatter, FS) > 0.05  # unit RMS: a real share of it is in band
    assert cal.band_power(babble, FS) < 1e-6


def test_neighbour_beacon_arrives_through_the_wall_loss() -> None:
    def frame(payload: int, sample_rate: int) -> np.ndarray:
        return np.sin(2 * np.pi * 19_000 * np.arange(sample_rate // 10) / sample_rate)

    x = noise.neighbour(3 * FS, FS, np.random.default_rng(5), frame_source=frame)
    peak = np.max(np.abs(x))
    assert peak == pytest.approx(10 ** (-noise.WALL_LOSS_DB / 20), rel=0.01)


def test_neighbour_level_in_a_scene_is_its_source_level_through_wall_and_distance() -> None:
    def frame(payload: int, sample_rate: int) -> np.ndarray:
        return np.sin(2 * np.pi * 19_000 * np.arange(sample_rate // 10) / sample_rate)

    scene = noise.NoiseScene(
        levels_db_spl={noise.NoiseKind.NEIGHBOUR: 80.0}, neighbour_frame_source=frame
    )
    x = scene.render(2 * FS, FS, np.random.default_rng(6))
    expected_db = 80.0 - noise.WALL_LOSS_DB - 20 * np.log10(noise.NEIGHBOUR_DISTANCE_M)
    peak_db_spl = cal.MIC_FULL_SCALE_DB_SPL + 20 * np.log10(np.max(np.abs(x)))
    assert peak_db_spl == pytest.approx(expected_db, abs=0.1)


def test_noise_bed_slices_are_seeded_pieces_of_one_background() -> None:
    bed = noise.NoiseBed.of(noise.store_scene(40.0), 2.0, FS, np.random.default_rng(7))
    a = bed.render(FS, FS, np.random.default_rng(1))
    b = bed.render(FS, FS, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.size == FS
    longer = bed.render(3 * FS, FS, np.random.default_rng(2))  # wraps around the bed
    assert longer.size == 3 * FS
    with pytest.raises(ValueError, match="Hz"):
        bed.render(10, 44_100, np.random.default_rng(1))
