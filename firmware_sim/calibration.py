"""Levels and range: dB SPL <-> digital full scale, and a beacon's range <-> its output level.

This is the ONE place that maps a range to a level; the hub calls
:func:`range_to_level_dbfs` to turn a beacon's configured range into the
``EmitSchedule.level_dbfs`` it sends, and :func:`level_dbfs_to_range_m` for the inverse.

Stated calibration (all levels are RMS; "dBFS" is relative to a full-scale sine, AES17):

* reference phone microphone: a full-scale sine is ``MIC_FULL_SCALE_DB_SPL`` = 120 dB SPL
  (a MEMS microphone with -26 dBFS sensitivity at 94 dB SPL, the common phone part);
* beacon emitter: a full-scale sine at 19 kHz gives ``EMITTER_FULL_SCALE_DB_SPL`` = 100 dB
  SPL at 1 m on axis (a small piezo/tweeter driven at about 1 W);
* noise floor: the in-band (18-20 kHz) SPL of the stationary background at the phone;
  ``DEFAULT_NOISE_FLOOR_DB_SPL`` = 40 dB SPL is a busy store (measured store ambience
  sits at 25-35 dB SPL in that band; we leave margin for clatter and music).

Link budget: received level L(r) = L_1m - 20 log10(r / 1 m) - alpha (r - 1 m), alpha from
ISO 9613-1 at the band centre. A beacon reaches range R when the in-band SNR at R equals
``EDGE_SNR_DB``, the SNR at which the real ``edge.modem`` detector with the phone app's
gate still hears the beacon reliably (measured by ``firmware_sim.bench`` in the reverberant
store model; the range test in ``tests/firmware_sim/test_range.py`` holds it to that).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft
from scipy.optimize import brentq

from firmware_sim.acoustics.absorption import (
    DEFAULT_HUMIDITY_PCT,
    DEFAULT_TEMPERATURE_C,
    air_absorption_db_per_m,
)
from firmware_sim.acoustics.room import BAND_CENTER_HZ, REFERENCE_DISTANCE_M

MIC_FULL_SCALE_DB_SPL = 120.0
EMITTER_FULL_SCALE_DB_SPL = 100.0
DEFAULT_NOISE_FLOOR_DB_SPL = 40.0
BAND_LOW_HZ = 18_000.0
BAND_HIGH_HZ = 20_000.0
# The phone app's detection criterion (``firmware_sim.rangetest.app_hears``): the
# last three frames of a beacon decoded, with a mean SNR estimate from the real detector
# of at least this. 0 dB sits ~2 dB above where the detector starts to miss frames, so
# the range edge is set by the output level, not by decoding luck.
APP_MIN_SNR_DB = 0.0
# Direct-path in-band SNR (link budget below) at the edge of a beacon's range: the
# offset between the link budget and the detector's estimate, measured against the real
# detector in the reverberant store model by ``python -m firmware_sim.bench`` (8 bearings
# x 3 frames per point, R = 3, 5, 10 m; it prints ``recommended_edge_snr_db``, the value
# that centres the gate between the 10th percentile at R and the 90th at 1.3 R: 1.58 dB
# in the run recorded in tests/bench/results/sim.json; 1.5 leans towards "reliably
# inside R"). One constant serves 3-10 m because the detector's estimate tracked the
# link budget at R to within ~0.6 dB for all three ranges.
EDGE_SNR_DB = APP_MIN_SNR_DB + 1.5
# Shoplat's range setting spans 3-10 m; we allow a little either side.
MIN_RANGE_M = 1.0
MAX_RANGE_M = 30.0
# RMS of a full-scale sine: 0 dBFS (AES17) corresponds to this RMS amplitude.
FULL_SCALE_SINE_RMS = 1.0 / math.sqrt(2.0)


class OutOfReach(ValueError):
    """The requested range needs more output than the emitter has."""


def dbfs_to_rms(level_dbfs: float) -> float:
    """RMS amplitude of a signal at ``level_dbfs`` (AES17: full-scale sine = 0 dBFS)."""
    return FULL_SCALE_SINE_RMS * 10.0 ** (level_dbfs / 20.0)


def rms_to_dbfs(rms: float) -> float:
    """Level in dBFS of a signal with RMS amplitude ``rms``."""
    return 20.0 * math.log10(max(rms, 1e-20) / FULL_SCALE_SINE_RMS)


def db_spl_to_mic_dbfs(level_db_spl: float) -> float:
    """What the reference microphone reads (dBFS) for an acoustic level (dB SPL)."""
    return level_db_spl - MIC_FULL_SCALE_DB_SPL


def mic_dbfs_to_db_spl(level_dbfs: float) -> float:
    """Acoustic level (dB SPL) behind a reference-microphone reading (dBFS)."""
    return level_dbfs + MIC_FULL_SCALE_DB_SPL


def emitter_dbfs_to_db_spl_1m(level_dbfs: float) -> float:
    """Source level at 1 m (dB SPL) of the emitter playing at ``level_dbfs``."""
    return level_dbfs + EMITTER_FULL_SCALE_DB_SPL


def emitter_to_mic_gain() -> float:
    """Amplitude factor from emitter samples to reference-mic samples at 1 m (free field)."""
    return 10.0 ** ((EMITTER_FULL_SCALE_DB_SPL - MIC_FULL_SCALE_DB_SPL) / 20.0)


def path_loss_db(
    range_m: float,
    temperature_c: float = DEFAULT_TEMPERATURE_C,
    humidity_pct: float = DEFAULT_HUMIDITY_PCT,
) -> float:
    """Loss from 1 m to ``range_m``: inverse square law plus ISO 9613-1 air absorption."""
    if range_m <= 0:
        raise ValueError("range_m must be positive")
    alpha = float(air_absorption_db_per_m(BAND_CENTER_HZ, temperature_c, humidity_pct))
    return 20.0 * math.log10(range_m / REFERENCE_DISTANCE_M) + alpha * (
        range_m - REFERENCE_DISTANCE_M
    )


def received_level_db_spl(source_db_spl_1m: float, range_m: float, **climate: float) -> float:
    """Direct-path level at ``range_m`` of a source of ``source_db_spl_1m`` at 1 m."""
    return source_db_spl_1m - path_loss_db(range_m, **climate)


def _check_range(range_m: float) -> None:
    """Refuse ranges outside what the model is calibrated for."""
    if not MIN_RANGE_M <= range_m <= MAX_RANGE_M:
        raise ValueError(f"range_m must be within {MIN_RANGE_M}-{MAX_RANGE_M} m, got {range_m}")


def level_for_range(
    range_m: float,
    noise_floor_db_spl: float = DEFAULT_NOISE_FLOOR_DB_SPL,
    *,
    edge_snr_db: float | None = None,
    **climate: float,
) -> float:
    """Source level (dB SPL at 1 m) that puts the edge of detection at ``range_m``."""
    _check_range(range_m)
    snr = EDGE_SNR_DB if edge_snr_db is None else edge_snr_db
    return noise_floor_db_spl + snr + path_loss_db(range_m, **climate)


def range_for_level(
    source_db_spl_1m: float,
    noise_floor_db_spl: float = DEFAULT_NOISE_FLOOR_DB_SPL,
    *,
    edge_snr_db: float | None = None,
    **climate: float,
) -> float:
    """Inverse of :func:`level_for_range`: the range a source level reaches (clamped)."""
    snr = EDGE_SNR_DB if edge_snr_db is None else edge_snr_db
    budget = source_db_spl_1m - noise_floor_db_spl - snr
    if budget <= path_loss_db(MIN_RANGE_M, **climate):
        return MIN_RANGE_M
    if budget >= path_loss_db(MAX_RANGE_M, **climate):
        return MAX_RANGE_M
    return float(brentq(lambda r: path_loss_db(r, **climate) - budget, MIN_RANGE_M, MAX_RANGE_M))


def range_to_level_dbfs(
    range_m: float,
    noise_floor_db_spl: float = DEFAULT_NOISE_FLOOR_DB_SPL,
    **climate: float,
) -> float:
    """Emitter output level (dBFS) for a beacon configured to reach ``range_m``.

    This is the function the hub calls to fill ``EmitSchedule.level_dbfs``.
    Raises :class:`OutOfReach` when the emitter would have to exceed full scale.
    """
    level = level_for_range(range_m, noise_floor_db_spl, **climate) - EMITTER_FULL_SCALE_DB_SPL
    if level > 0.0:
        raise OutOfReach(
            f"range {range_m} m over a {noise_floor_db_spl} dB SPL floor needs "
            f"{level:+.1f} dBFS, beyond the emitter's full scale"
        )
    return level


def level_dbfs_to_range_m(
    level_dbfs: float,
    noise_floor_db_spl: float = DEFAULT_NOISE_FLOOR_DB_SPL,
    **climate: float,
) -> float:
    """The range a beacon emitting at ``level_dbfs`` reaches (inverse of the above)."""
    return range_for_level(emitter_dbfs_to_db_spl_1m(level_dbfs), noise_floor_db_spl, **climate)


def band_power(
    samples: np.ndarray,
    sample_rate: int,
    low_hz: float = BAND_LOW_HZ,
    high_hz: float = BAND_HIGH_HZ,
) -> float:
    """Mean power of ``samples`` within ``low_hz``-``high_hz`` (Parseval over an FFT)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    # Zero-padded to a fast FFT length (an awkward length can be ~50x slower); Parseval
    # with padding: mean power = sum |X|^2 / (n_fft * n).
    n_fft = sp_fft.next_fast_len(x.size, real=True)
    spectrum = sp_fft.rfft(x, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    inband = (freqs >= low_hz) & (freqs <= high_hz)
    # One-sided spectrum: each bin except DC/Nyquist stands for itself and its mirror.
    return float(2.0 * np.sum(np.abs(spectrum[inband]) ** 2) / (n_fft * x.size))


def band_level_dbfs(samples: np.ndarray, sample_rate: int) -> float:
    """In-band (18-20 kHz) level of ``samples`` in dBFS."""
    return rms_to_dbfs(math.sqrt(band_power(samples, sample_rate)))


def band_level_db_spl(samples: np.ndarray, sample_rate: int) -> float:
    """In-band level in dB SPL of reference-microphone samples."""
    return mic_dbfs_to_db_spl(band_level_dbfs(samples, sample_rate))
