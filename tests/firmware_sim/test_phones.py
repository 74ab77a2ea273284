"""Walking phones in a seeded store: the real detector turns what they hear into a zone path."""

from __future__ import annotations

import numpy as np
import pytest

from edge.modem import codes
from firmware_sim import noise, phones, store
from firmware_sim.storesim import SIM_EPOCH_S, plan_phones

STORE = "fz-taijiang"  # a mall store with two zones: a short walk keeps the test quick


@pytest.fixture(scope="module")
def layout() -> store.StoreLayout:
    return store.layout_from_seeds(STORE, seed=1)


def test_path_walks_at_its_speed_and_dwells() -> None:
    path = phones.WalkPath(((0.0, 0.0), (3.0, 4.0)), (1.0, 2.0), speed_m_s=1.0, start_s=10.0)
    assert path.end_s == pytest.approx(10.0 + 1.0 + 5.0 + 2.0)
    pos = path.positions(np.array([10.5, 13.5, 16.5, 99.0]))
    assert pos[0, :2] == pytest.approx([0.0, 0.0])
    assert pos[1, :2] == pytest.approx([1.5, 2.0])  # half-way along the 5 m leg
    assert pos[2, :2] == pytest.approx([3.0, 4.0])
    assert pos[3, :2] == pytest.approx([3.0, 4.0])
    with pytest.raises(ValueError):
        phones.WalkPath(((0.0, 0.0),), (1.0, 2.0), speed_m_s=1.0)


def test_walking_phone_hears_the_zones_it_walks_through(layout: store.StoreLayout) -> None:
    counter = layout.beacons[-1]
    door = (layout.door[0], layout.door[1])
    stop = (counter.position[0] + 1.0, counter.position[1] - 0.5)
    path = phones.WalkPath((door, stop, door), (6.0, 12.0, 0.0), speed_m_s=1.1)
    phone = phones.Phone("phone-001", path, clock_ppm=60.0)
    scene = noise.store_scene(40.0)
    result = phones.simulate_visit(layout, phone, scene, np.random.default_rng(3), SIM_EPOCH_S)
    assert result.zone_path[0] == layout.beacons[0].zone_name  # the entrance first
    assert counter.zone_name in result.zone_path
    for entry in result.zones:
        payload = codes.from_hex(entry.checkin.code)
        beacon = layout.beacon_for(payload, entry.checkin.heard_at.timestamp())
        assert beacon is not None and beacon.zone_id == entry.zone_id
    firsts = {}
    for entry in result.zones:
        firsts.setdefault(entry.beacon, entry)
    for entry in firsts.values():  # time from entering the beacon's range to the app's decision
        assert entry.latency_s is not None and 0.0 <= entry.latency_s < 10.0
    assert result.frames_foreign == 0


def test_store_plan_is_seeded(layout: store.StoreLayout) -> None:
    a = plan_phones(layout, 3, 2.0, seed=9)
    b = plan_phones(layout, 3, 2.0, seed=9)
    c = plan_phones(layout, 3, 2.0, seed=10)
    assert [p.path for p in a] == [p.path for p in b]
    assert [p.path for p in a] != [p.path for p in c]
    with pytest.raises(ValueError):
        plan_phones(layout, 0, 2.0, seed=9)


def test_unknown_store_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown store"):
        store.layout_from_seeds("nowhere")


def test_hub_keys_replace_the_seeded_ones() -> None:
    hub_key = bytes(range(32))
    layout = store.layout_from_seeds(STORE, seed=1, keys={"fz-taijiang-n1": hub_key})
    entrance = next(b for b in layout.beacons if b.node_id == "fz-taijiang-n1")
    code = entrance.code_at(SIM_EPOCH_S)
    assert codes.verify_beacon_code(code, hub_key, codes.slot_of(SIM_EPOCH_S)) is not None
    assert layout.beacon_for(code, SIM_EPOCH_S) is entrance
    other = next(b for b in layout.beacons if b.node_id != "fz-taijiang-n1")
    assert other.key != hub_key
