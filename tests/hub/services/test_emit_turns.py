"""Beacons of one store take turns: the hub gives each a distinct offset in the store's cycle."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.registry import BeaconCreate, Node, NodeCreate, NodeUpdate
from hub.services import provisioning
from storewave.wire import EMIT_SLOT_S, NodeConfig
from tests.hub.doubles import RecordingNodeControl
from tests.hub.factories import CRYPTO, seed


def _emits(control: RecordingNodeControl, prefix: str) -> dict[str, NodeConfig]:
    """The retained (latest) config of each node whose id starts with ``prefix``."""
    return {n: c[-1] for n, c in control.configs.items() if n.startswith(prefix)}


def _offsets(configs: dict[str, NodeConfig]) -> list[float]:
    return sorted(c.emit.offset_s for c in configs.values())


def test_seeded_stores_get_distinct_turns(
    engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> None:
    seed(engine, clock, node_control)
    gulou = _emits(node_control, "fz-gulou-")
    assert len(gulou) == 4
    assert {c.emit.period_s for c in gulou.values()} == {round(4 * EMIT_SLOT_S, 6)}
    assert _offsets(gulou) == [0.0, 0.55, 1.1, 1.65]
    # Turns follow short ids, so they do not depend on the order things were created.
    by_short = sorted(gulou.values(), key=lambda c: c.beacon.short_id if c.beacon else 0)
    assert [c.emit.offset_s for c in by_short] == [0.0, 0.55, 1.1, 1.65]
    lone = _emits(node_control, "fz-cangshan-")
    [config] = lone.values()
    assert (config.emit.period_s, config.emit.offset_s) == (1.0, 0.0)
    assert b"offset_s" not in config.to_bytes()  # a lone beacon's config is as before


def test_a_new_beacon_gives_every_beacon_of_its_store_a_new_turn(
    engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> None:
    seed(engine, clock, node_control)
    before = _emits(node_control, "fz-taijiang-")
    with Session(engine) as session:
        spec = NodeCreate(id="fz-taijiang-n9", store_id="fz-taijiang")
        provisioning.provision_node(session, CRYPTO, clock, node_control, spec)
        provisioning.create_beacon(
            session, CRYPTO, clock, node_control, BeaconCreate(node_id=spec.id, range_m=5)
        )
        session.commit()
    after = _emits(node_control, "fz-taijiang-")
    assert len(after) == 3 and _offsets(after) == [0.0, 0.55, 1.1]
    assert {c.emit.period_s for c in after.values()} == {round(3 * EMIT_SLOT_S, 6)}
    for node, config in before.items():  # republished with a newer version
        assert after[node].version > config.version


def test_moving_a_beacon_node_retimes_both_stores(
    engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> None:
    seed(engine, clock, node_control)
    with Session(engine) as session:
        moved = session.get(Node, "fz-taijiang-n2")
        assert moved is not None
        provisioning.move_node(
            session, CRYPTO, clock, node_control, moved, NodeUpdate(store_id="fz-cangshan")
        )
        session.commit()
    taijiang = _emits(node_control, "fz-taijiang-n1")
    assert taijiang["fz-taijiang-n1"].emit.period_s == 1.0  # alone again
    cangshan = {**_emits(node_control, "fz-cangshan-"),
                "fz-taijiang-n2": node_control.configs["fz-taijiang-n2"][-1]}
    assert _offsets(cangshan) == [0.0, 0.55]
    assert {c.emit.period_s for c in cangshan.values()} == {round(2 * EMIT_SLOT_S, 6)}
