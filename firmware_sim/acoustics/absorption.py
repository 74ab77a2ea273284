"""Air absorption of sound per ISO 9613-1:1993 (pure tones), and the speed of sound.

The ISO 9613-1 attenuation coefficient lives in :mod:`storewave.levels` (the hub's
range -> level mapping needs it without the simulator) and is re-exported here.
"""

from __future__ import annotations

import math

from storewave.levels import (
    CELSIUS_OFFSET_K,
    DEFAULT_HUMIDITY_PCT,
    DEFAULT_TEMPERATURE_C,
    NEPER_TO_DB,
    REFERENCE_PRESSURE_KPA,
    REFERENCE_TEMPERATURE_K,
    TRIPLE_POINT_K,
    air_absorption_db_per_m,
)

__all__ = [
    "CELSIUS_OFFSET_K",
    "DEFAULT_HUMIDITY_PCT",
    "DEFAULT_TEMPERATURE_C",
    "NEPER_TO_DB",
    "REFERENCE_PRESSURE_KPA",
    "REFERENCE_TEMPERATURE_K",
    "SPEED_OF_SOUND_0C_M_S",
    "TRIPLE_POINT_K",
    "air_absorption_db_per_m",
    "speed_of_sound",
]

# Speed of sound in dry air at 0 degC; scales with sqrt(absolute temperature).
SPEED_OF_SOUND_0C_M_S = 331.3


def speed_of_sound(temperature_c: float = DEFAULT_TEMPERATURE_C) -> float:
    """Speed of sound in air (m/s) at ``temperature_c``, ideal-gas approximation."""
    return SPEED_OF_SOUND_0C_M_S * math.sqrt(1.0 + temperature_c / CELSIUS_OFFSET_K)
