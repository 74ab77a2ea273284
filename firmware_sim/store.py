"""A simulated store: the room, its zones and beacons (from ``seeds/``), and their emissions.

``seeds/registry.json`` names stores, zones and each zone's beacon (short id, range);
it has no floor plans, so the layout here is generated deterministically: a box room
sized by the store's tier, the entrance beacon by the door, the other zones' beacons
spread along the floor. Beacon keys are made from the simulation seed (the hub
generates real ones at load time; the simulator only needs codes that verify).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from edge.modem import codes
from firmware_sim import calibration as cal
from firmware_sim.acoustics import Emission, Room
from firmware_sim.acoustics.room import Point
from storewave import wire

# Floor size (m) by store tier: flagship, mall store, community shop.
ROOM_BY_TIER: dict[str, tuple[float, float, float]] = {
    "high": (20.0, 12.0, 3.0),
    "medium": (16.0, 10.0, 3.0),
    "low": (10.0, 8.0, 3.0),
}
BEACON_HEIGHT_M = 2.5
# The door is in the middle of the front wall (y = 0).
DOOR_INSET_M = 1.0
# Zone beacons sit from 35 % of the floor's depth to the back wall (the front is the
# entrance zone), alternating left and right at 20 % / 80 % of the width.
ZONE_DEPTH_SPAN = (0.35, 0.6)
ZONE_SIDES = (0.2, 0.8)


@dataclass(frozen=True, slots=True)
class Beacon:
    """A beacon in the store: identity, key, zone, position and emission schedule."""

    node_id: str
    zone_id: str
    zone_name: str
    short_id: int
    key: bytes
    range_m: float
    position: Point
    level_dbfs: float
    period_s: float
    offset_s: float
    slot_s: int = codes.DEFAULT_SLOT_S

    def code_at(self, wall_s: float) -> int:
        """The rotating code this beacon plays at wall-clock time ``wall_s``."""
        return codes.beacon_code(self.short_id, self.key, codes.slot_of(wall_s, self.slot_s))


@dataclass(frozen=True)
class StoreLayout:
    """One store as the simulator sees it."""

    store_id: str
    name: str
    room: Room
    beacons: tuple[Beacon, ...]
    door: Point

    def beacon_for(self, payload: int, wall_s: float) -> Beacon | None:
        """The beacon whose code ``payload`` is (verified for the slot at ``wall_s``)."""
        if codes.kind_of(payload) is not codes.CodeKind.BEACON:
            return None
        short_id = codes.split_beacon_code(payload).short_id
        for b in self.beacons:
            if b.short_id == short_id:
                now_slot = codes.slot_of(wall_s, b.slot_s)
                if codes.verify_beacon_code(payload, b.key, now_slot) is not None:
                    return b
        return None

    def emissions(
        self, t0_s: float, t1_s: float, wall0_s: float
    ) -> list[tuple[Beacon, float, int]]:
        """(beacon, start time, code) of every frame starting in [t0_s, t1_s)."""
        out = []
        for b in self.beacons:
            k = math.ceil((t0_s - b.offset_s) / b.period_s)
            t = b.offset_s + k * b.period_s
            while t < t1_s:
                out.append((b, t, b.code_at(wall0_s + t)))
                t += b.period_s
        return sorted(out, key=lambda e: e[1])


def emission(beacon: Beacon, start_s: float, code: int, sample_rate: int) -> Emission:
    """One frame of ``beacon`` as an acoustic emission (scaled to reference-mic units)."""
    from edge.modem.synth import synthesize_frame

    samples = synthesize_frame(code, sample_rate, beacon.level_dbfs).astype(np.float64)
    return Emission(beacon.position, start_s, samples * cal.emitter_to_mic_gain())


def load_registry() -> dict[str, Any]:
    """The demo registry shipped in ``seeds/registry.json``."""
    text = resources.files("seeds").joinpath("registry.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _key(seed: int, node_id: str) -> bytes:
    """A beacon key derived from the simulation seed (used when the hub's is not given)."""
    return hashlib.sha256(f"storewave-sim:{seed}:{node_id}".encode()).digest()


def layout_from_seeds(
    store_id: str | None = None,
    seed: int = 20131001,
    noise_floor_db_spl: float = cal.DEFAULT_NOISE_FLOOR_DB_SPL,
    registry: dict[str, Any] | None = None,
    keys: dict[str, bytes] | None = None,
    schedules: dict[str, wire.EmitSchedule] | None = None,
) -> StoreLayout:
    """Build the layout of ``store_id`` (default: the first store) from the seed registry.

    ``keys`` maps node ids to the beacon keys the hub generated (so its check-in service
    verifies what the phones hear); nodes without one get a key derived from ``seed``.
    ``schedules`` maps node ids to the emit schedules the hub published in their
    configs; without one a beacon takes the turn the hub would give it (beacons of a
    store take turns in short-id order, :meth:`storewave.wire.EmitSchedule.time_shared`),
    so frames of neighbouring beacons never overlap at a phone (a collision loses both).
    Simulated time 0 stands for the start of the store's emission cycle.
    """
    reg = registry or load_registry()
    stores = {s["id"]: s for s in reg["stores"]}
    if not stores:
        raise ValueError("the registry has no stores")
    sid = store_id or next(iter(stores))
    if sid not in stores:
        raise ValueError(f"unknown store {sid!r}; known: {', '.join(sorted(stores))}")
    store = stores[sid]
    zones = {z["id"]: z for z in reg["zones"] if z["store_id"] == sid}
    nodes = [n for n in reg["nodes"] if n["store_id"] == sid and n.get("beacon")]
    if not nodes:
        raise ValueError(f"store {sid!r} has no beacons in the registry")
    size = ROOM_BY_TIER.get(store.get("tier", "medium"), ROOM_BY_TIER["medium"])
    room = Room(size_m=size)
    door = (size[0] / 2.0, DOOR_INSET_M, 1.2)
    turns = sorted(int(n["beacon"]["short_id"]) for n in nodes)
    beacons = []
    for i, node in enumerate(nodes):
        position = _beacon_position(i, len(nodes), size)
        zone = zones.get(node["zone_id"], {"name": node["zone_id"]})
        range_m = float(node["beacon"]["range_m"])
        short_id = int(node["beacon"]["short_id"])
        schedule = (schedules or {}).get(node["id"]) or wire.EmitSchedule.time_shared(
            turns.index(short_id), len(turns)
        )
        beacons.append(
            Beacon(
                node_id=node["id"],
                zone_id=node["zone_id"],
                zone_name=zone["name"],
                short_id=short_id,
                key=(keys or {}).get(node["id"]) or _key(seed, node["id"]),
                range_m=range_m,
                position=position,
                level_dbfs=cal.range_to_level_dbfs(range_m, noise_floor_db_spl),
                period_s=schedule.period_s,
                offset_s=schedule.offset_s,
            )
        )
    return StoreLayout(sid, store.get("name", sid), room, tuple(beacons), door)


def _beacon_position(index: int, count: int, size: tuple[float, float, float]) -> Point:
    """Entrance beacon above the door; the rest spread over the floor, front to back."""
    width, depth, _ = size
    if index == 0:
        return (width / 2.0, DOOR_INSET_M + 0.5, BEACON_HEIGHT_M)
    rest = count - 1
    first, span = ZONE_DEPTH_SPAN
    y = DOOR_INSET_M + (depth - 2 * DOOR_INSET_M) * (first + span * index / max(rest, 1))
    left, right = ZONE_SIDES
    x = width * (left if index % 2 else right) if rest > 1 else width / 2.0
    return (x, min(y, depth - DOOR_INSET_M), BEACON_HEIGHT_M)
