"""The acoustic model: ISO 9613-1 absorption, level calibration, Doppler, clock offset, mic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_sim import calibration as cal
from firmware_sim.acoustics import (
    REFERENCE_PHONE_MIC,
    Emission,
    Room,
    Still,
    air_absorption_db_per_m,
    impulse_response,
    render,
)

FS = 48_000
ANECHOIC = Room(rt60_s=None)


class Walk:
    """A listener walking in a straight line at constant velocity."""

    def __init__(self, start: tuple[float, float, float], velocity: tuple[float, float, float]):
        self.start = np.asarray(start)
        self.velocity = np.asarray(velocity)

    def positions(self, t_s: np.ndarray) -> np.ndarray:
        return self.start + np.outer(t_s, self.velocity)


def tone(freq_hz: float, seconds: float) -> np.ndarray:
    """A full-scale sine (0 dBFS)."""
    return np.sin(2 * math.pi * freq_hz * np.arange(int(seconds * FS)) / FS)


def peak_frequency(x: np.ndarray) -> float:
    """Frequency of the strongest component, to ~0.01 Hz (heavily zero-padded FFT)."""
    n_fft = 1 << 22
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size), n=n_fft))
    return float(np.argmax(spectrum) * FS / n_fft)


def test_iso_9613_1_matches_the_standards_table_value() -> None:
    # ISO 9613-1 Table 1: 20 degC, 50 % RH, 101.325 kPa, 1 kHz -> 4.66 dB/km.
    assert air_absorption_db_per_m(1000.0, 20.0, 50.0) * 1000 == pytest.approx(4.66, abs=0.02)


def test_absorption_grows_with_frequency_and_depends_on_humidity() -> None:
    band = air_absorption_db_per_m(np.array([18e3, 19e3, 20e3]), 20.0, 50.0)
    assert np.all(np.diff(band) > 0)
    assert 0.3 < band[1] < 0.7  # about half a dB per metre at 19 kHz
    # At 19 kHz absorption peaks near 30 % RH: both drier and wetter air absorb less.
    at_30 = air_absorption_db_per_m(19e3, 20.0, 30.0)
    assert air_absorption_db_per_m(19e3, 20.0, 10.0) < at_30
    assert air_absorption_db_per_m(19e3, 20.0, 90.0) < at_30


@pytest.mark.parametrize(
    "bad",
    [
        {"humidity_pct": 0.0},
        {"humidity_pct": 120.0},
        {"pressure_kpa": -1.0},
        {"temperature_c": -300.0},
    ],
)
def test_absorption_refuses_impossible_air(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        air_absorption_db_per_m(19e3, **bad)


@pytest.mark.parametrize("range_m", [1.0, 3.0, 10.0])
def test_rendered_level_follows_inverse_square_plus_absorption(range_m: float) -> None:
    source = (2.0, 6.0, 1.5)
    listener = (2.0 + range_m, 6.0, 1.5)
    emitted = tone(19_000.0, 0.5) * cal.emitter_to_mic_gain()
    heard = render(ANECHOIC, [Emission(source, 0.0, emitted)], Still(listener), 0.0, FS, FS)
    measured = cal.band_level_db_spl(heard, FS)
    expected = cal.received_level_db_spl(cal.emitter_dbfs_to_db_spl_1m(0.0), range_m)
    # The tone is 0.5 s of a 1 s window: -3 dB of mean power.
    assert measured + 10 * math.log10(2.0) == pytest.approx(expected, abs=1.0)


def test_calibration_round_trips_and_refuses_the_impossible() -> None:
    for range_m in (3.0, 5.0, 10.0):
        level = cal.range_to_level_dbfs(range_m)
        assert cal.level_dbfs_to_range_m(level) == pytest.approx(range_m, rel=1e-6)
    assert cal.range_to_level_dbfs(10.0) > cal.range_to_level_dbfs(3.0)
    # A louder store needs more output for the same range, dB for dB.
    assert cal.range_to_level_dbfs(5.0, 50.0) - cal.range_to_level_dbfs(5.0, 40.0) == (
        pytest.approx(10.0)
    )
    with pytest.raises(cal.OutOfReach):
        cal.range_to_level_dbfs(25.0, noise_floor_db_spl=80.0)
    with pytest.raises(ValueError):
        cal.level_for_range(0.0)


@pytest.mark.parametrize("speed_m_s", [1.4, -1.4])
def test_walking_doppler_matches_v_over_c(speed_m_s: float) -> None:
    source = (1.0, 6.0, 1.5)
    walk = Walk((12.0, 6.0, 1.5), (-speed_m_s, 0.0, 0.0))  # positive = towards the source
    emitted = tone(19_000.0, 1.2)
    heard = render(ANECHOIC, [Emission(source, 0.0, emitted)], walk, 0.0, int(1.3 * FS), FS)
    segment = heard[int(0.1 * FS) : int(1.1 * FS)]
    shift = peak_frequency(segment) - 19_000.0
    expected = 19_000.0 * speed_m_s / ANECHOIC.speed_of_sound_m_s
    assert shift == pytest.approx(expected, rel=0.02)


def test_sample_clock_offset_scales_the_heard_frequency() -> None:
    ppm = 200.0
    emitted = tone(19_000.0, 1.2)
    heard = render(
        ANECHOIC,
        [Emission((1.0, 6.0, 1.5), 0.0, emitted)],
        Still((4.0, 6.0, 1.5)),
        0.0,
        int(1.2 * FS),
        FS,
        clock_ppm=ppm,
    )
    measured = peak_frequency(heard[int(0.1 * FS) : int(1.1 * FS)])
    assert measured == pytest.approx(19_000.0 / (1 + ppm * 1e-6), abs=0.5)


def test_reverberation_adds_energy_that_grows_relative_to_the_direct_sound() -> None:
    room = Room()
    near = impulse_response(room, (2.0, 2.0, 2.5), (3.0, 2.0, 2.5))
    far = impulse_response(room, (2.0, 2.0, 2.5), (12.0, 2.0, 1.2))
    ratio_near = np.sum(near.reflections(FS) ** 2) / near.direct_gain**2
    ratio_far = np.sum(far.reflections(FS) ** 2) / far.direct_gain**2
    assert np.all(near.reflection_delays_s > 0)
    assert 0 < ratio_near < ratio_far
    with pytest.raises(ValueError, match="outside"):
        impulse_response(room, (2.0, 2.0, 2.5), (30.0, 2.0, 1.0))


def test_reference_phone_microphone_rolls_off_above_18_khz() -> None:
    x = tone(17_000.0, 0.5) + tone(20_000.0, 0.5)
    y = REFERENCE_PHONE_MIC.apply(x, FS)
    spec_in, spec_out = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(y))
    bin_hz = FS / x.size

    def gain_db(freq: float) -> float:
        k = int(round(freq / bin_hz))
        return 20 * math.log10(spec_out[k] / spec_in[k])

    assert gain_db(17_000.0) == pytest.approx(0.0, abs=0.3)
    assert gain_db(20_000.0) == pytest.approx(float(REFERENCE_PHONE_MIC.gain_db(20_000.0)), abs=0.5)
