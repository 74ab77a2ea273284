"""The range test: is a beacon set to R metres heard inside R and not beyond ~1.3 R?

A beacon on the ceiling plays frames (fresh random codes) at the level
:func:`firmware_sim.calibration.range_to_level_dbfs` gives for R; a phone stands at a
given distance in the store model (reverberant box, stated noise floor, reference phone
microphone) and decodes with the real :class:`edge.modem.detector.StreamingDetector`.
A frame counts as *detected* when the detector returns its exact payload with an SNR
estimate at or above the phone app's gate (``APP_MIN_SNR_DB``): that gate is the
detection criterion the calibration is built on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware_sim import calibration as cal
from firmware_sim import noise
from firmware_sim.acoustics import REFERENCE_PHONE_MIC, Emission, Room, Still, render
from firmware_sim.acoustics.room import Point

SAMPLE_RATE = 48_000
# Beacons hang from the ceiling; a phone is held at chest height.
BEACON_HEIGHT_M = 2.5
PHONE_HEIGHT_M = 1.2
# Frames 0.6 s apart (474 ms frame + gap); silence before the first and after the last.
FRAME_PERIOD_S = 0.6
LEAD_IN_S = 0.15
# The app's criterion: the last 3 frames of a beacon all decoded, and the mean of their
# SNR estimates >= ``calibration.APP_MIN_SNR_DB``. One frame's estimate scatters by
# about +/-1.5 dB in a reverberant room; averaging three sharpens the range edge.
APP_WINDOW_FRAMES = 3
# The store the test runs in: a large furnished floor (the default RT60 at 19 kHz) so
# that 1.6 x 10 m fits at every bearing; the beacon hangs near one corner.
RANGE_ROOM = Room(size_m=(22.0, 22.0, 3.0))
BEACON_INSET_M = 1.0
# Bearings of the phone positions from the beacon: spread over the room's open quadrant,
# so each distance samples different reflection patterns (fading is position-dependent).
AZIMUTH_RANGE_RAD = (math.radians(10.0), math.radians(80.0))
# Distances tested, as multiples of the configured range R.
DEFAULT_FACTORS = (0.5, 0.8, 1.0, 1.3, 1.6)
# Audio is fed to the detector in 20 ms blocks, as a phone's capture callback would.
BLOCK = 960


@dataclass(frozen=True, slots=True)
class RangePoint:
    """How often a beacon set to ``range_m`` was heard at ``distance_m`` (over positions)."""

    range_m: float
    distance_m: float
    positions: int
    heard: int
    frame_snrs_db: tuple[tuple[float, ...], ...]  # per position: SNR of each decoded frame

    @property
    def rate(self) -> float:
        """Share of positions where the app's criterion was met."""
        return self.heard / self.positions


def positions_at(
    distance_m: float, count: int, rng: np.random.Generator, room: Room = RANGE_ROOM
) -> tuple[Point, list[Point]]:
    """The beacon (near a corner) and ``count`` phone positions ``distance_m`` away from it."""
    height = BEACON_HEIGHT_M - PHONE_HEIGHT_M
    if distance_m <= height:
        raise ValueError(f"distance {distance_m} m is within the height difference {height} m")
    across = math.sqrt(distance_m**2 - height**2)
    beacon = (BEACON_INSET_M, BEACON_INSET_M, BEACON_HEIGHT_M)
    lo, hi = AZIMUTH_RANGE_RAD
    step = (hi - lo) / count
    out = []
    for k in range(count):
        azimuth = lo + step * (k + rng.uniform(0.0, 1.0))
        point = (
            beacon[0] + across * math.cos(azimuth),
            beacon[1] + across * math.sin(azimuth),
            PHONE_HEIGHT_M,
        )
        if not room.contains(point):
            raise ValueError(f"distance {distance_m} m does not fit in the room {room.size_m}")
        out.append(point)
    return beacon, out


def frame_snrs(
    level_dbfs: float,
    beacon: Point,
    listener: Point,
    frames: int,
    rng: np.random.Generator,
    room: Room = RANGE_ROOM,
    noise_floor_db_spl: float = cal.DEFAULT_NOISE_FLOOR_DB_SPL,
) -> tuple[float, ...]:
    """Play ``frames`` fresh codes; the real detector's SNR for each one it decoded exactly."""
    from edge.modem.detector import StreamingDetector
    from edge.modem.synth import synthesize_frame

    payloads = [int(rng.integers(0, 1 << 47)) for _ in range(frames)]
    gain = cal.emitter_to_mic_gain()
    emissions = [
        Emission(
            beacon,
            LEAD_IN_S + k * FRAME_PERIOD_S,
            synthesize_frame(p, SAMPLE_RATE, level_dbfs).astype(float) * gain,
        )
        for k, p in enumerate(payloads)
    ]
    n = int((2 * LEAD_IN_S + frames * FRAME_PERIOD_S) * SAMPLE_RATE)
    heard = render(room, emissions, Still(listener), 0.0, n, SAMPLE_RATE)
    scene = noise.store_scene(noise_floor_db_spl, with_clatter=False)
    audio = REFERENCE_PHONE_MIC.apply(heard + scene.render(n, SAMPLE_RATE, rng), SAMPLE_RATE)
    audio = audio.astype(np.float32)
    detector = StreamingDetector(SAMPLE_RATE)
    found = []
    for i in range(0, n, BLOCK):
        found += detector.feed(audio[i : i + BLOCK])
    found += detector.flush()
    best: dict[int, float] = {}
    for d in found:
        if d.payload in payloads:
            best[d.payload] = max(best.get(d.payload, -math.inf), d.snr_db)
    return tuple(best.values())


def app_hears(snrs_db: tuple[float, ...], gate_db: float) -> bool:
    """The phone app's criterion: a full window of frames whose mean SNR reaches the gate."""
    window = snrs_db[-APP_WINDOW_FRAMES:]
    return len(window) == APP_WINDOW_FRAMES and sum(window) / len(window) >= gate_db


def measure_point(
    range_m: float,
    distance_m: float,
    positions: int,
    rng: np.random.Generator,
    *,
    room: Room = RANGE_ROOM,
    noise_floor_db_spl: float = cal.DEFAULT_NOISE_FLOOR_DB_SPL,
    level_dbfs: float | None = None,
) -> RangePoint:
    """Beacon set to ``range_m``: is it heard at ``positions`` spots ``distance_m`` away?"""
    level = (
        cal.range_to_level_dbfs(range_m, noise_floor_db_spl) if level_dbfs is None else level_dbfs
    )
    beacon, spots = positions_at(distance_m, positions, rng, room)
    per_spot = tuple(
        frame_snrs(level, beacon, spot, APP_WINDOW_FRAMES, rng, room, noise_floor_db_spl)
        for spot in spots
    )
    heard = sum(app_hears(s, cal.APP_MIN_SNR_DB) for s in per_spot)
    return RangePoint(range_m, distance_m, positions, heard, per_spot)


def sweep(
    ranges: tuple[float, ...],
    factors: tuple[float, ...] = DEFAULT_FACTORS,
    positions: int = 8,
    seed: int = 20131001,
) -> list[RangePoint]:
    """Detection rate at ``factor x R`` for every R in ``ranges`` (seeded)."""
    rng = np.random.default_rng(seed)
    return [measure_point(r, f * r, positions, rng) for r in ranges for f in factors]
