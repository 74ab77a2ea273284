"""Air absorption of sound per ISO 9613-1:1993 (pure tones), and the speed of sound.

The attenuation coefficient is the standard's equation (5) with the relaxation
frequencies of equations (3) and (4) and the molar concentration of water vapour from
relative humidity via its Annex B (saturation vapour pressure, eq. B.1/B.2). The
standard tabulates 50 Hz-10 kHz but states the formulae hold for ultrasonic frequencies
(its scope, clause 1), which is what a 18-20 kHz beacon needs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# Reference conditions of ISO 9613-1: 20 degC air at one standard atmosphere.
REFERENCE_TEMPERATURE_K = 293.15
REFERENCE_PRESSURE_KPA = 101.325
# Triple-point isotherm temperature used in the saturation vapour pressure (eq. B.2).
TRIPLE_POINT_K = 273.16
CELSIUS_OFFSET_K = 273.15
# Pressure-amplitude nepers to decibels: 20 / ln(10) (the standard's 8.686).
NEPER_TO_DB = 20.0 / math.log(10.0)
# Speed of sound in dry air at 0 degC; scales with sqrt(absolute temperature).
SPEED_OF_SOUND_0C_M_S = 331.3

# A store's indoor climate: 22 degC and 45 % RH is a typical air-conditioned shop floor.
DEFAULT_TEMPERATURE_C = 22.0
DEFAULT_HUMIDITY_PCT = 45.0


def speed_of_sound(temperature_c: float = DEFAULT_TEMPERATURE_C) -> float:
    """Speed of sound in air (m/s) at ``temperature_c``, ideal-gas approximation."""
    return SPEED_OF_SOUND_0C_M_S * math.sqrt(1.0 + temperature_c / CELSIUS_OFFSET_K)


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
