"""Levels in the simulator: dB SPL <-> digital full scale, in-band power, and the range maths.

The range <-> level link budget (constants, ISO 9613-1 path loss,
:func:`range_to_level_dbfs` and its inverse) lives in :mod:`storewave.levels`, which
the hub uses to fill ``EmitSchedule.level_dbfs``; it is re-exported here so the
simulator renders with exactly the maths the hub configures beacons with.

Simulator-only calibration: the reference phone microphone reads a full-scale sine at
``MIC_FULL_SCALE_DB_SPL`` = 120 dB SPL (a MEMS microphone with -26 dBFS sensitivity at
94 dB SPL, the common phone part).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sp_fft

from storewave.levels import (
    APP_MIN_SNR_DB,
    DEFAULT_NOISE_FLOOR_DB_SPL,
    EDGE_SNR_DB,
    EMITTER_FULL_SCALE_DB_SPL,
    MAX_RANGE_M,
    MIN_RANGE_M,
    OutOfReach,
    emitter_dbfs_to_db_spl_1m,
    level_dbfs_to_range_m,
    level_for_range,
    path_loss_db,
    range_for_level,
    range_to_level_dbfs,
    received_level_db_spl,
)

__all__ = [
    "APP_MIN_SNR_DB",
    "BAND_HIGH_HZ",
    "BAND_LOW_HZ",
    "DEFAULT_NOISE_FLOOR_DB_SPL",
    "EDGE_SNR_DB",
    "EMITTER_FULL_SCALE_DB_SPL",
    "FULL_SCALE_SINE_RMS",
    "MAX_RANGE_M",
    "MIC_FULL_SCALE_DB_SPL",
    "MIN_RANGE_M",
    "OutOfReach",
    "band_level_db_spl",
    "band_level_dbfs",
    "band_power",
    "db_spl_to_mic_dbfs",
    "dbfs_to_rms",
    "emitter_dbfs_to_db_spl_1m",
    "emitter_to_mic_gain",
    "level_dbfs_to_range_m",
    "level_for_range",
    "mic_dbfs_to_db_spl",
    "path_loss_db",
    "range_for_level",
    "range_to_level_dbfs",
    "received_level_db_spl",
    "rms_to_dbfs",
]

MIC_FULL_SCALE_DB_SPL = 120.0
# The beacon band: in-band power and levels are measured over it.
BAND_LOW_HZ = 18_000.0
BAND_HIGH_HZ = 20_000.0
# RMS of a full-scale sine: 0 dBFS (AES17) corresponds to this RMS amplitude.
FULL_SCALE_SINE_RMS = 1.0 / math.sqrt(2.0)


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


def emitter_to_mic_gain() -> float:
    """Amplitude factor from emitter samples to reference-mic samples at 1 m (free field)."""
    return 10.0 ** ((EMITTER_FULL_SCALE_DB_SPL - MIC_FULL_SCALE_DB_SPL) / 20.0)


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
