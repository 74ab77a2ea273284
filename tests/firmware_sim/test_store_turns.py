"""Two beacons of one store, configured by the hub, take turns and both decode in the store."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlmodel import Session

from edge.modem.detector import StreamingDetector
from edge.modem.frame import FRAME_DURATION_S
from firmware_sim import noise, store
from firmware_sim.acoustics import Still, render
from hub.clock import ManualClock
from hub.db import make_engine, migrate
from hub.security import HubCrypto
from hub.seed import load_seeds
from storewave.levels import DEFAULT_NOISE_FLOOR_DB_SPL
from storewave.wire import NodeConfig
from tests.hub.doubles import RecordingNodeControl

STORE = "fz-taijiang"  # two zones, two beacons (ranges 10 m and 3 m)
FS = 48_000
LISTEN_S = 10.0
WALL0_S = 1_790_000_000.0
# Inside both beacons' ranges: 2.4 m from the 3 m counter beacon, 5.3 m from the door's.
PHONE = (8.0, 6.6, 1.2)


@pytest.fixture(scope="module")
def hub_configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NodeConfig]:
    """The retained configs the hub published for the store's nodes after seeding."""
    db = tmp_path_factory.mktemp("hub") / "hub.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    control = RecordingNodeControl()
    with Session(engine) as session:
        load_seeds(session, crypto=HubCrypto(b"turns-test-secret-0123456789abcdef"),
                   clock=ManualClock(datetime(2026, 11, 30, 3, tzinfo=UTC)),
                   node_control=control)
        session.commit()
    engine.dispose()
    return {n: c[-1] for n, c in control.configs.items() if n.startswith(f"{STORE}-")}


def _layout(configs: dict[str, NodeConfig]) -> store.StoreLayout:
    keys = {n: bytes.fromhex(c.beacon.key_hex) for n, c in configs.items() if c.beacon}
    schedules = {n: c.emit for n, c in configs.items()}
    return store.layout_from_seeds(STORE, keys=keys, schedules=schedules)


def test_hub_turns_keep_frames_apart(hub_configs: dict[str, NodeConfig]) -> None:
    assert len(hub_configs) == 2
    layout = _layout(hub_configs)
    assert {b.offset_s for b in layout.beacons} == {c.emit.offset_s for c in hub_configs.values()}
    starts = [(t, b.node_id) for b, t, _ in layout.emissions(0.0, 60.0, WALL0_S)]
    assert {n for _, n in starts} == set(hub_configs)
    for (a, _), (b, _) in zip(starts, starts[1:], strict=False):
        assert b - a >= FRAME_DURATION_S  # the next frame starts after this one ended


def test_both_beacons_decode_at_a_phone_in_the_store(hub_configs: dict[str, NodeConfig]) -> None:
    layout = _layout(hub_configs)
    emissions = layout.emissions(0.0, LISTEN_S, WALL0_S)
    frames = [store.emission(b, t, code, FS) for b, t, code in emissions]
    n = int(LISTEN_S * FS)
    heard = render(layout.room, frames, Still(PHONE), 0.0, n, FS)
    scene = noise.store_scene(DEFAULT_NOISE_FLOOR_DB_SPL)
    audio = (heard + scene.render(n, FS, np.random.default_rng(7))).astype(np.float32)
    detector = StreamingDetector(FS)
    found = []
    for i in range(0, n, FS // 50):  # 20 ms blocks, as a phone app feeds it
        found += detector.feed(audio[i : i + FS // 50])
    found += detector.flush()
    decoded: Counter[str] = Counter()
    for detection in found:
        beacon = layout.beacon_for(detection.payload, WALL0_S + detection.t_s)
        assert beacon is not None  # nothing heard that the store did not emit
        decoded[beacon.node_id] += 1
    sent = Counter(b.node_id for b, _, _ in emissions)
    for node, count in sent.items():  # most frames of each beacon decode
        assert decoded[node] >= 0.7 * count, (node, decoded, sent)
