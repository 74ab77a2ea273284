"""A box-shaped store floor: image sources from pyroomacoustics, impulse responses at 18-20 kHz.

Why pyroomacoustics: it installs as a wheel, its shoebox image-source model is well
kept and computes ~40k image sources in a few milliseconds. Its own RIR builder is
used only for the image *geometry*: we assemble each impulse response ourselves
because (a) pyroomacoustics' air absorption is an octave-band table that stops at
8 kHz, whereas a beacon needs ISO 9613-1 at 18-20 kHz, and (b) for a walking phone we
need hundreds of responses per simulated minute; image positions depend only on the
beacon, so reusing them and assembling a response costs ~1 ms instead of ~190 ms for
a full ``compute_rir`` (measured on this machine, 20 x 12 x 3 m, RT60 0.4 s).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pyroomacoustics as pra

from firmware_sim.acoustics.absorption import (
    DEFAULT_HUMIDITY_PCT,
    DEFAULT_TEMPERATURE_C,
    air_absorption_db_per_m,
    speed_of_sound,
)
from storewave.levels import BAND_CENTER_HZ, REFERENCE_DISTANCE_M

log = logging.getLogger(__name__)

Point = tuple[float, float, float]

# Reflections weaker than this below the direct sound at 1 m are dropped: 60 dB is the
# classic reverberation-time range; anything quieter is far under any store's noise.
TAIL_FLOOR_DB = 60.0
# Images beyond this order add nothing audible at 19 kHz: air absorption of ~0.5 dB/m
# alone takes 60 dB off a 120 m path, i.e. ~40 reflections in a 3 m high room.
MAX_IMAGE_ORDER = 40
# Below this distance the 1/r law is clamped (a phone held against the emitter).
MIN_DISTANCE_M = 0.1


@dataclass(frozen=True, slots=True)
class Room:
    """A box room: size, reverberation time at 19 kHz (walls only) and climate."""

    size_m: Point = (20.0, 12.0, 3.0)
    # Walls-only reverberation time at 19 kHz of a furnished shop floor: mineral-fibre
    # ceiling tiles absorb ~80 % at these frequencies, shelving and goods scatter and
    # absorb; air absorption (~0.5 dB/m) comes on top, for ~0.14 s overall. None = anechoic.
    # Livelier rooms soften the range edge; see README "Simulator".
    rt60_s: float | None = 0.2
    temperature_c: float = DEFAULT_TEMPERATURE_C
    humidity_pct: float = DEFAULT_HUMIDITY_PCT

    def __post_init__(self) -> None:
        """Refuse impossible rooms early, with a clear message."""
        if len(self.size_m) != 3 or min(self.size_m) <= 0:
            raise ValueError("room size_m must be three positive lengths")
        if self.rt60_s is not None and self.rt60_s <= 0:
            raise ValueError("rt60_s must be positive (or None for an anechoic room)")

    @property
    def speed_of_sound_m_s(self) -> float:
        """Speed of sound at the room's temperature."""
        return speed_of_sound(self.temperature_c)

    @property
    def alpha_db_per_m(self) -> float:
        """ISO 9613-1 air absorption at the band centre for the room's climate."""
        return float(air_absorption_db_per_m(BAND_CENTER_HZ, self.temperature_c, self.humidity_pct))

    def contains(self, point: Point) -> bool:
        """Whether ``point`` lies inside the room."""
        return all(0.0 <= p <= s for p, s in zip(point, self.size_m, strict=True))


@dataclass(frozen=True, slots=True)
class ImageSet:
    """Image sources of one emitter: positions (K x 3) and wall damping (amplitude)."""

    positions: np.ndarray
    damping: np.ndarray
    direct_index: int


@functools.lru_cache(maxsize=256)
def image_sources(room: Room, source: Point) -> ImageSet:
    """Image sources of ``source`` in ``room`` (direct sound included), cached per beacon."""
    if not room.contains(source):
        raise ValueError(f"source {source} is outside the room {room.size_m}")
    if room.rt60_s is None:
        pos = np.asarray([source], dtype=float)
        return ImageSet(pos, np.ones(1), 0)
    energy_absorption, order = pra.inverse_sabine(room.rt60_s, list(room.size_m))
    order = min(order, MAX_IMAGE_ORDER)
    shoebox = pra.ShoeBox(
        list(room.size_m),
        fs=48_000,
        materials=pra.Material(energy_absorption),
        max_order=order,
        air_absorption=False,
    )
    shoebox.add_source(list(source))
    # pyroomacoustics wants a microphone before it builds images; in a shoebox every
    # image is visible from everywhere, so the images do not depend on where it is.
    shoebox.add_microphone([s / 2.0 for s in room.size_m])
    shoebox.image_source_model()
    src = shoebox.sources[0]
    positions = np.ascontiguousarray(src.images.T, dtype=float)
    damping = np.asarray(src.damping, dtype=float).reshape(-1)
    direct = int(np.argmin(np.asarray(src.orders)))
    log.debug("image sources", extra={"count": len(damping), "order": order})
    return ImageSet(positions, damping, direct)


def path_gain(distance_m: float | np.ndarray, alpha_db_per_m: float) -> float | np.ndarray:
    """Pressure gain of a path relative to 1 m: spherical spreading and air absorption."""
    d = np.maximum(np.asarray(distance_m, dtype=float), MIN_DISTANCE_M)
    gain = (REFERENCE_DISTANCE_M / d) * 10.0 ** (
        -alpha_db_per_m * (d - REFERENCE_DISTANCE_M) / 20.0
    )
    return float(gain) if gain.ndim == 0 else gain


@dataclass(frozen=True, slots=True)
class Response:
    """An impulse response split into its direct path and the reflections after it."""

    direct_delay_s: float
    direct_gain: float
    # Each reflection's arrival after the direct sound (s, exact) and its pressure gain.
    reflection_delays_s: np.ndarray
    reflection_gains: np.ndarray

    def reflections(self, sample_rate: int) -> np.ndarray:
        """Reflections as a sampled response, sample 0 = the direct arrival (rounded lags)."""
        lags = np.maximum(np.rint(self.reflection_delays_s * sample_rate).astype(np.int64), 1)
        tail = np.zeros(int(lags.max()) + 1 if lags.size else 1)
        np.add.at(tail, lags, self.reflection_gains)
        return tail


def impulse_response(room: Room, source: Point, listener: Point) -> Response:
    """The response from ``source`` to ``listener``: direct path + reflections (exact delays)."""
    if not room.contains(listener):
        raise ValueError(f"listener {listener} is outside the room {room.size_m}")
    images = image_sources(room, source)
    c = room.speed_of_sound_m_s
    dist = np.linalg.norm(images.positions - np.asarray(listener, dtype=float), axis=1)
    gains = images.damping * path_gain(dist, room.alpha_db_per_m)
    direct_d = float(dist[images.direct_index])
    direct_gain = float(gains[images.direct_index])
    keep = gains > 10.0 ** (-TAIL_FLOOR_DB / 20.0) * direct_gain
    keep[images.direct_index] = False
    return Response(direct_d / c, direct_gain, (dist[keep] - direct_d) / c, gains[keep])


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points (m)."""
    return math.dist(a, b)
