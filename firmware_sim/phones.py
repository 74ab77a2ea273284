"""Walking phones: a customer's path through the store, heard and decoded in real time.

A phone walks a path at walking speed; everything the store's beacons play reaches it
through the acoustic model (delay, spreading, ISO 9613-1 absorption, reverberation,
Doppler of its own motion, its sample-clock offset, background noise, its microphone).
The audio goes to the real ``edge.modem`` detector in 20 ms blocks, as a phone's capture
callback would deliver it. The app turns detections into zone entries (the movement
path) with the same rule as the range test (the last three frames of a beacon decoded
with a mean SNR at or above the gate); each zone entry is a check-in attempt
(``storewave.wire.CheckinRequest``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from edge.modem import codes
from firmware_sim import calibration as cal
from firmware_sim.acoustics import REFERENCE_PHONE_MIC, MicResponse, render
from firmware_sim.acoustics.room import Point
from firmware_sim.noise import NoiseBed, NoiseScene
from firmware_sim.rangetest import APP_WINDOW_FRAMES, app_hears
from firmware_sim.store import Beacon, StoreLayout, emission
from storewave.wire import CheckinRequest

SAMPLE_RATE = 48_000
BLOCK = 960  # 20 ms capture blocks
# People browse a store at 0.8-1.3 m/s (slower than street walking, 1.4 m/s).
WALK_SPEED_RANGE_M_S = (0.8, 1.3)
PHONE_HEIGHT_M = 1.2
# Pause at each zone (looking at goods, queueing at the counter).
DWELL_RANGE_S = (8.0, 25.0)
# Phone sample clocks: crystal tolerance of cheap handsets.
CLOCK_PPM_RANGE = (-100.0, 100.0)
# A beacon whose direct sound at the phone is this far under the noise floor cannot be
# heard (nor hurt decoding): its frames are not rendered, which saves most of the work.
INAUDIBLE_BELOW_FLOOR_DB = 15.0
# Customers stand about a metre in front of (and half a metre short of) a zone's beacon.
STAND_OFF_M = (1.0, 0.5)
# A frame is audible if it is at any of these instants of its airtime (start/middle/end).
FRAME_PROBE_S = (0.0, 0.25, 0.5)
# Time step for finding when the path entered a beacon's range (latency resolution).
RANGE_STEP_S = 0.05
# A zone stays the strongest one's while its beacon was heard within this many periods.
STRONGEST_FRESH_PERIODS = 1.5


@dataclass(frozen=True)
class WalkPath:
    """Waypoints (x, y) with a dwell time at each, walked at ``speed_m_s`` from ``start_s``."""

    waypoints: tuple[tuple[float, float], ...]
    dwell_s: tuple[float, ...]
    speed_m_s: float
    start_s: float = 0.0
    height_m: float = PHONE_HEIGHT_M
    _knots: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Precompute (time, x, y) knots of the piecewise-linear walk."""
        if len(self.waypoints) < 1 or len(self.dwell_s) != len(self.waypoints):
            raise ValueError("a path needs waypoints and one dwell time per waypoint")
        if self.speed_m_s <= 0:
            raise ValueError("speed_m_s must be positive")
        times, xs, ys = [self.start_s], [self.waypoints[0][0]], [self.waypoints[0][1]]
        for i, (x, y) in enumerate(self.waypoints):
            if i > 0:
                times.append(times[-1] + math.dist(self.waypoints[i - 1], (x, y)) / self.speed_m_s)
                xs.append(x)
                ys.append(y)
            times.append(times[-1] + self.dwell_s[i])
            xs.append(x)
            ys.append(y)
        object.__setattr__(self, "_knots", (np.array(times), np.array(xs), np.array(ys)))

    @property
    def end_s(self) -> float:
        """When the walk (and the last dwell) ends."""
        return float(self._knots[0][-1])

    def positions(self, t_s: np.ndarray) -> np.ndarray:
        """Positions (N x 3) at times ``t_s``; standing still before the start / after the end."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        times, xs, ys = self._knots
        out = np.empty((t.size, 3))
        out[:, 0] = np.interp(t, times, xs)
        out[:, 1] = np.interp(t, times, ys)
        out[:, 2] = self.height_m
        return out


@dataclass(frozen=True)
class Phone:
    """A customer's phone: its id, path, clock error and microphone."""

    phone_id: str
    path: WalkPath
    clock_ppm: float = 0.0
    mic: MicResponse = REFERENCE_PHONE_MIC


@dataclass(frozen=True, slots=True)
class ZoneEntry:
    """The app decided the phone is in a beacon's zone (latency only on the first entry)."""

    zone_id: str
    zone_name: str
    beacon: str
    heard_s: float  # phone time of the deciding frame
    latency_s: float | None  # since the phone came within the beacon's range
    checkin: CheckinRequest


@dataclass
class VisitResult:
    """What one phone's visit produced."""

    phone_id: str
    duration_s: float
    frames_decoded: int = 0
    frames_foreign: int = 0
    zones: list[ZoneEntry] = field(default_factory=list)

    @property
    def zone_path(self) -> list[str]:
        """The movement path: zone names in the order the app entered them."""
        return [z.zone_name for z in self.zones]


def random_phone(
    layout: StoreLayout, phone_id: str, rng: np.random.Generator, start_s: float = 0.0
) -> Phone:
    """A customer walking in the door, visiting zones in a seeded order, and leaving."""
    inner = list(layout.beacons[1:])
    width, depth, _ = layout.room.size_m
    # A shop with only the entrance beacon: browse somewhere in the back half.
    stops: list[Point] = [(rng.uniform(0.25, 0.75) * width, rng.uniform(0.5, 0.8) * depth, 0.0)]
    if inner:
        count = int(rng.integers(1, len(inner) + 1))
        stops = [inner[i].position for i in rng.permutation(len(inner))[:count]]
    door = (layout.door[0], layout.door[1])
    # Stand a metre in front of each zone's beacon (towards the room's centre line).
    cx = layout.room.size_m[0] / 2.0
    dx, dy = STAND_OFF_M
    points = [door] + [(p[0] + (dx if p[0] < cx else -dx), p[1] - dy) for p in stops] + [door]
    dwell = [2.0] + [float(rng.uniform(*DWELL_RANGE_S)) for _ in stops] + [0.0]
    path = WalkPath(tuple(points), tuple(dwell), float(rng.uniform(*WALK_SPEED_RANGE_M_S)), start_s)
    return Phone(phone_id, path, float(rng.uniform(*CLOCK_PPM_RANGE)))


def _audible(beacon: Beacon, pos: np.ndarray, noise_floor_db_spl: float) -> bool:
    """Whether the beacon's direct sound here is within INAUDIBLE_BELOW_FLOOR_DB of the floor."""
    d = float(np.min(np.linalg.norm(pos - np.asarray(beacon.position), axis=1)))
    level = cal.received_level_db_spl(cal.emitter_dbfs_to_db_spl_1m(beacon.level_dbfs), max(d, 1.0))
    return level > noise_floor_db_spl - INAUDIBLE_BELOW_FLOOR_DB


def render_visit(
    layout: StoreLayout,
    phone: Phone,
    scene: NoiseScene | NoiseBed,
    rng: np.random.Generator,
    wall0_s: float,
    noise_floor_db_spl: float = cal.DEFAULT_NOISE_FLOOR_DB_SPL,
) -> tuple[np.ndarray, float]:
    """The phone's microphone signal for its whole visit (float32) and its start time."""
    t0, t1 = phone.path.start_s, phone.path.end_s
    n = int((t1 - t0) * SAMPLE_RATE)
    frames = []
    for beacon, start, code in layout.emissions(t0 - 1.0, t1, wall0_s):
        span = start + np.asarray(FRAME_PROBE_S)
        if _audible(beacon, phone.path.positions(span), noise_floor_db_spl):
            frames.append(emission(beacon, start, code, SAMPLE_RATE))
    heard = render(layout.room, frames, phone.path, t0, n, SAMPLE_RATE, phone.clock_ppm)
    audio = phone.mic.apply(heard + scene.render(n, SAMPLE_RATE, rng), SAMPLE_RATE)
    return audio.astype(np.float32), t0


def _entered_range_s(beacon: Beacon, path: WalkPath, until_s: float) -> float | None:
    """When the path first came within the beacon's configured range."""
    t = np.arange(path.start_s, until_s + RANGE_STEP_S, RANGE_STEP_S)
    if t.size == 0:
        return None
    d = np.linalg.norm(path.positions(t) - np.asarray(beacon.position), axis=1)
    inside = np.nonzero(d <= beacon.range_m)[0]
    return float(t[inside[0]]) if inside.size else None


def decode_visit(
    layout: StoreLayout, phone: Phone, audio: np.ndarray, t0: float, wall0_s: float
) -> VisitResult:
    """Feed the audio to the real detector in 20 ms blocks; apply the app's zone rule."""
    from edge.modem.detector import StreamingDetector

    detector = StreamingDetector(SAMPLE_RATE)
    result = VisitResult(phone.phone_id, audio.size / SAMPLE_RATE)
    window: dict[str, list[tuple[float, float]]] = {}
    current: str | None = None  # node id of the beacon whose zone the phone is in
    entered_before: set[str] = set()
    for i in range(0, audio.size, BLOCK):
        for det in detector.feed(audio[i : i + BLOCK]):
            t_phone = t0 + det.t_s
            beacon = layout.beacon_for(det.payload, wall0_s + t_phone)
            if beacon is None:
                result.frames_foreign += 1
                continue
            result.frames_decoded += 1
            # Only this beacon's frames of the last three periods count: a frame missed
            # in between leaves fewer than three, as the range test's rule requires.
            recent = [
                (t, snr)
                for t, snr in window.get(beacon.node_id, [])
                # Half a period of slack: frames of one beacon are exactly a period apart.
                if t_phone - t < (APP_WINDOW_FRAMES - 0.5) * beacon.period_s
            ]
            recent.append((t_phone, det.snr_db))
            window[beacon.node_id] = recent
            if not app_hears(tuple(snr for _, snr in recent), cal.APP_MIN_SNR_DB):
                continue
            # Where several beacons are heard, the zone is the strongest one's (nearest).
            if current is not None and current != beacon.node_id:
                theirs = window.get(current, [])
                age = t_phone - theirs[-1][0] if theirs else math.inf
                fresh = age < beacon.period_s * STRONGEST_FRESH_PERIODS
                if fresh and _mean_snr(theirs) >= _mean_snr(recent):
                    continue
            if beacon.node_id == current:
                continue
            current = beacon.node_id
            first = beacon.node_id not in entered_before
            entered_before.add(beacon.node_id)
            entered = _entered_range_s(beacon, phone.path, t_phone) if first else None
            result.zones.append(
                ZoneEntry(
                    beacon.zone_id,
                    beacon.zone_name,
                    beacon.node_id,
                    t_phone,
                    None if entered is None else t_phone - entered,
                    CheckinRequest(
                        code=codes.to_hex(det.payload),
                        heard_at=datetime.fromtimestamp(wall0_s + t_phone, UTC),
                        snr_db=round(det.snr_db, 1),
                        device_id=phone.phone_id,
                    ),
                )
            )
    return result


def _mean_snr(frames: list[tuple[float, float]]) -> float:
    """Mean SNR of the last window of frames."""
    return sum(snr for _, snr in frames[-APP_WINDOW_FRAMES:]) / max(
        1, len(frames[-APP_WINDOW_FRAMES:])
    )


def simulate_visit(
    layout: StoreLayout,
    phone: Phone,
    scene: NoiseScene | NoiseBed,
    rng: np.random.Generator,
    wall0_s: float,
) -> VisitResult:
    """Render and decode one phone's visit."""
    audio, t0 = render_visit(layout, phone, scene, rng, wall0_s)
    return decode_visit(layout, phone, audio, t0, wall0_s)


def nearest_zone(layout: StoreLayout, point: Point) -> str:
    """The zone whose beacon is nearest ``point`` (ground truth for tests)."""
    return min(layout.beacons, key=lambda b: math.dist(b.position[:2], point[:2])).zone_name
