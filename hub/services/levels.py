"""Beacon range (metres) -> emitter output level (dBFS), for the config the hub publishes.

The calibrated link budget is :mod:`storewave.levels`, shared with the acoustic
simulator (which renders with the same maths), so a beacon the hub configures for R
metres is detected inside R and not beyond about 1.3 R (DESIGN.md). The hub adds only
its registry's allowed range and the store's noise floor assumption.
"""

from __future__ import annotations

from hub.models.registry import MAX_RANGE_M, MIN_RANGE_M
from storewave import levels

# The hub has no per-store noise measurement yet: every store is assumed to be a busy
# one (the calibration's default in-band floor), which errs towards a louder beacon.
STORE_NOISE_FLOOR_DB_SPL = levels.DEFAULT_NOISE_FLOOR_DB_SPL


def range_to_level_dbfs(range_m: float) -> float:
    """Output level in dBFS for a beacon meant to be heard up to ``range_m`` metres.

    Rounded to 0.01 dB (the config travels as JSON; finer steps are inaudible).
    """
    if not MIN_RANGE_M <= range_m <= MAX_RANGE_M:
        raise ValueError(f"range_m must be between {MIN_RANGE_M} and {MAX_RANGE_M} m")
    return round(levels.range_to_level_dbfs(range_m, STORE_NOISE_FLOOR_DB_SPL), 2)
