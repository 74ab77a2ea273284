"""A beacon's range <-> its output level: the calibrated link budget hub and simulator share.

The hub turns a beacon's configured range into the ``EmitSchedule.level_dbfs`` it sends
(:func:`range_to_level_dbfs`); the acoustic simulator renders with the same maths, so a
beacon set to R metres is heard inside R and not beyond about 1.3 R (DESIGN.md). Pure
Python and numpy only: the hub imports it without the simulator.

Stated calibration (all levels RMS; "dBFS" relative to a full-scale sine, AES17):

* beacon emitter: a full-scale sine at 19 kHz gives ``EMITTER_FULL_SCALE_DB_SPL`` = 100 dB
  SPL at 1 m on axis (a small piezo/tweeter driven at about 1 W);
* noise floor: the in-band (18-20 kHz) SPL of the stationary background at the phone;
  ``DEFAULT_NOISE_FLOOR_DB_SPL`` = 40 dB SPL is a busy store (measured store ambience
  sits at 25-35 dB SPL in that band; we leave margin for clatter and music).

Link budget: received level L(r) = L_1m - 20 log10(r / 1 m) - alpha (r - 1 m), alpha the
ISO 9613-1 air absorption at the band centre. A beacon reaches range R when the in-band
SNR at R equals ``EDGE_SNR_DB``, the SNR at which the real ``edge.modem`` detector with
the phone app's gate still hears the beacon reliably (measured by ``firmware_sim.bench``
in the reverberant store model; ``tests/firmware_sim/test_range.py`` holds it to that).

Air absorption is ISO 9613-1:1993 (pure tones): equation (5) with the relaxation
frequencies of equations (3) and (4) and the molar concentration of water vapour from
relative humidity via Annex B (eq. B.1/B.2). The standard tabulates 50 Hz-10 kHz but
states the formulae hold for ultrasonic frequencies (its clause 1).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# Centre of the 18-20 kHz beacon band: absorption is evaluated here; across the band
# air absorption varies by +/-8 %, well inside the model's other errors.
BAND_CENTER_HZ = 19_000.0
# Reference distance of every source level (dB SPL "at 1 m").
REFERENCE_DISTANCE_M = 1.0
EMITTER_FULL_SCALE_DB_SPL = 100.0
DEFAULT_NOISE_FLOOR_DB_SPL = 40.0
# The phone app's detection criterion (``firmware_sim.rangetest.app_hears``): the
# last three frames of a beacon decoded, with a mean SNR estimate from the real detector
# of at least this. 0 dB sits ~2 dB above where the detector starts to miss frames, so
# the range edge is set by the output level, not by decoding luck.
APP_MIN_SNR_DB = 0.0
# Direct-path in-band SNR (link budget above) at the edge of a beacon's range: the
# offset between the link budget and the detector's estimate, measured against the real
# detector in the reverberant store model by ``python -m firmware_sim.bench`` (8 bearings
# x 3 frames per point, R = 3, 5, 10 m; it prints ``recommended_edge_snr_db``, the value
# that centres the gate between the 10th percentile at R and the 90th at 1.3 R: 1.58 dB
# in the run recorded in tests/bench/results/sim.json; 1.5 leans towards "reliably
# inside R"). One constant serves 3-10 m because the detector's estimate tracked the
# link budget at R to within ~0.6 dB for all three ranges.
EDGE_SNR_DB = APP_MIN_SNR_DB + 1.5
# The model's calibrated span; Shoplat's range setting (3-10 m) sits well inside it.
MIN_RANGE_M = 1.0
MAX_RANGE_M = 30.0
# A range found by bisection is this close (metres) to the exact inverse.
RANGE_TOLERANCE_M = 1e-9

# Reference conditions of ISO 9613-1: 20 degC air at one standard atmosphere.
REFERENCE_TEMPERATURE_K = 293.15
REFERENCE_PRESSURE_KPA = 101.325
# Triple-point isotherm temperature used in the saturation vapour pressure (eq. B.2).
TRIPLE_POINT_K = 273.16
CELSIUS_OFFSET_K = 273.15
# Pressure-amplitude nepers to decibels: 20 / ln(10) (the standard's 8.686).
NEPER_TO_DB = 20.0 / math.log(10.0)
# A store's indoor climate: 22 degC and 45 % RH is a typical air-conditioned shop floor.
DEFAULT_TEMPERATURE_C = 22.0
DEFAULT_HUMIDITY_PCT = 45.0


class OutOfReach(ValueError):
    """The requested range needs more output than the emitter has."""


def _molar_water_vapour_pct(
    temperature_k: float, humidity_pct: float, pressure_kpa: float
) -> float:
    """Molar concentration of water vapour h (%) from relative humidity (Annex B)."""
    exponent = -6.8346 * (TRIPLE_POINT_K / temperature_k) ** 1.261 + 4.6151
    psat_over_pr = 10.0**exponent
    return humidity_pct * psat_over_pr / (pressure_kpa / REFERENCE_PRESSURE_KPA)


def air_absorption_db_per_m(
    frequency_hz: float | npt.ArrayLike,
    temperature_c: float = DEFAULT_TEMPERATURE_C,
    humidity_pct: float = DEFAULT_HUMIDITY_PCT,
    pressure_kpa: float = REFERENCE_PRESSURE_KPA,
) -> float | np.ndarray:
    """Pure-tone attenuation coefficient alpha (dB/m), ISO 9613-1 equation (5)."""
    if not 0.0 < humidity_pct <= 100.0:
        raise ValueError("humidity_pct must be in (0, 100]")
    if pressure_kpa <= 0.0:
        raise ValueError("pressure_kpa must be positive")
    temperature_k = temperature_c + CELSIUS_OFFSET_K
    if temperature_k <= 0.0:
        raise ValueError("temperature_c is below absolute zero")
    f = np.asarray(frequency_hz, dtype=float)
    pa_pr = pressure_kpa / REFERENCE_PRESSURE_KPA
    t_t0 = temperature_k / REFERENCE_TEMPERATURE_K
    h = _molar_water_vapour_pct(temperature_k, humidity_pct, pressure_kpa)
    # Relaxation frequencies of oxygen and nitrogen, equations (3) and (4).
    fr_o = pa_pr * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = pa_pr * t_t0**-0.5 * (9.0 + 280.0 * h * math.exp(-4.170 * (t_t0 ** (-1.0 / 3.0) - 1.0)))
    classical = 1.84e-11 / pa_pr * t_t0**0.5
    relax_o = 0.01275 * math.exp(-2239.1 / temperature_k) / (fr_o + f**2 / fr_o)
    relax_n = 0.1068 * math.exp(-3352.0 / temperature_k) / (fr_n + f**2 / fr_n)
    alpha = NEPER_TO_DB * f**2 * (classical + t_t0**-2.5 * (relax_o + relax_n))
    return float(alpha) if alpha.ndim == 0 else alpha


def emitter_dbfs_to_db_spl_1m(level_dbfs: float) -> float:
    """Source level at 1 m (dB SPL) of the emitter playing at ``level_dbfs``."""
    return level_dbfs + EMITTER_FULL_SCALE_DB_SPL


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
    """Inverse of :func:`level_for_range`: the range a source level reaches (clamped).

    Path loss grows strictly with range, so bisection finds the one root.
    """
    snr = EDGE_SNR_DB if edge_snr_db is None else edge_snr_db
    budget = source_db_spl_1m - noise_floor_db_spl - snr
    if budget <= path_loss_db(MIN_RANGE_M, **climate):
        return MIN_RANGE_M
    if budget >= path_loss_db(MAX_RANGE_M, **climate):
        return MAX_RANGE_M
    low, high = MIN_RANGE_M, MAX_RANGE_M
    while high - low > RANGE_TOLERANCE_M:
        mid = (low + high) / 2.0
        if path_loss_db(mid, **climate) < budget:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def range_to_level_dbfs(
    range_m: float,
    noise_floor_db_spl: float = DEFAULT_NOISE_FLOOR_DB_SPL,
    **climate: float,
) -> float:
    """Emitter output level (dBFS) for a beacon configured to reach ``range_m``.

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
