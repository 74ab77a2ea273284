"""Beacon range (metres) -> emitter output level (dBFS): the one place this mapping lives.

PLACEHOLDER: a free-field inverse-square model until the simulator engineer calibrates it
against the acoustic store simulator (DESIGN.md: detected inside R, not beyond ~1.3 R).
Only the constants below should need to change.
"""

from __future__ import annotations

import math

from hub.models.registry import MAX_RANGE_M, MIN_RANGE_M

# The level that reaches the maximum range (10 m); below full scale to leave headroom
# for the speaker and avoid clipping-induced audible artefacts.
LEVEL_AT_MAX_RANGE_DBFS = -6.0
# Spherical spreading loses 20*log10(r2/r1) dB between distances r1 and r2 (free field).
SPREADING_DB_PER_DECADE = 20.0


def range_to_level_dbfs(range_m: float) -> float:
    """Output level in dBFS for a beacon meant to be heard up to ``range_m`` metres."""
    if not MIN_RANGE_M <= range_m <= MAX_RANGE_M:
        raise ValueError(f"range_m must be between {MIN_RANGE_M} and {MAX_RANGE_M} m")
    drop_db = SPREADING_DB_PER_DECADE * math.log10(MAX_RANGE_M / range_m)
    return round(LEVEL_AT_MAX_RANGE_DBFS - drop_db, 2)
