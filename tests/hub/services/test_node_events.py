"""Node events applied to the registry: presence, hearings, health, status, silence, unknowns."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from edge.modem.codes import beacon_code, new_phone_token, to_hex
from hub.clock import ManualClock
from hub.models.checkins import PhoneToken, Presence
from hub.models.customers import Customer
from hub.models.registry import Alert, BeaconHearing, Node
from hub.security import HubCrypto
from hub.seed import load_seeds
from hub.services.node_events import apply_node_event, apply_node_status, mark_silent_nodes
from storewave.wire import (
    CodeKind,
    DetectionBody,
    DetectionEvent,
    NodeStatus,
    TelemetryBody,
    TelemetryEvent,
)
from storewave.wire import NodeState as WireState
from tests.hub.conftest import TEST_SECRET

HEARTBEAT_SILENCE_S = 90.0


def _seeded(engine: Engine, clock: ManualClock) -> None:
    with Session(engine) as session:
        load_seeds(session, crypto=HubCrypto(TEST_SECRET.encode()), clock=clock)
        session.commit()


def _detection(
    node: str, code: str, kind: CodeKind, clock: ManualClock, seq: int = 1, count: int = 1
) -> DetectionEvent:
    body = DetectionBody(
        code=code, kind=kind, snr_db=12.0, confidence=0.9, first_heard=clock.now(), count=count
    )
    return DetectionEvent(node=node, boot=1, seq=seq, ts=clock.now(), body=body)


def test_token_detection_binds_presence(engine: Engine, clock: ManualClock) -> None:
    """A phone token heard by a node puts its customer in that node's store and zone."""
    _seeded(engine, clock)
    token = to_hex(new_phone_token())
    with Session(engine) as session:
        session.add(Customer(id="cus_1", phone_hash="h", phone_enc="e", created_at=clock.now()))
        session.flush()
        session.add(
            PhoneToken(
                token=token,
                customer_id="cus_1",
                issued_at=clock.now(),
                expires_at=clock.now() + timedelta(minutes=2),
            )
        )
        session.commit()
        apply_node_event(
            session, _detection("fz-gulou-n4", token, CodeKind.TOKEN, clock), clock.now()
        )
        session.commit()
        presence = session.get(Presence, "cus_1")
        assert presence is not None
        assert (presence.store_id, presence.zone_id, presence.node_id) == (
            "fz-gulou",
            "fz-gulou-counter",
            "fz-gulou-n4",
        )
        assert session.get(Node, "fz-gulou-n4").state == "online"


def test_expired_token_binds_nothing(engine: Engine, clock: ManualClock) -> None:
    """A token heard after its expiry is ignored."""
    _seeded(engine, clock)
    token = to_hex(new_phone_token())
    with Session(engine) as session:
        session.add(Customer(id="cus_1", phone_hash="h", phone_enc="e", created_at=clock.now()))
        session.flush()
        session.add(
            PhoneToken(
                token=token,
                customer_id="cus_1",
                issued_at=clock.now(),
                expires_at=clock.now() + timedelta(minutes=2),
            )
        )
        session.commit()
        clock.advance(timedelta(minutes=3))
        apply_node_event(
            session, _detection("fz-gulou-n4", token, CodeKind.TOKEN, clock), clock.now()
        )
        session.commit()
        assert session.get(Presence, "cus_1") is None


def test_beacon_detection_records_neighbour_hearing(engine: Engine, clock: ManualClock) -> None:
    """A node hearing another beacon's code records it per (node, beacon)."""
    _seeded(engine, clock)
    code = to_hex(beacon_code(102, bytes(32), 1))
    with Session(engine) as session:
        for seq in (1, 2):
            event = _detection("fz-gulou-n1", code, CodeKind.BEACON, clock, seq)
            apply_node_event(session, event, clock.now())
        session.commit()
        hearing = session.get(BeaconHearing, ("fz-gulou-n1", 102))
        assert hearing is not None and hearing.count == 2


def test_debounced_detection_adds_its_reported_count(engine: Engine, clock: ManualClock) -> None:
    """A detection standing for several hearings (``count``) adds all of them, not one."""
    _seeded(engine, clock)
    code = to_hex(beacon_code(102, bytes(32), 1))
    with Session(engine) as session:
        for seq, count in ((1, 3), (2, 4)):
            event = _detection("fz-gulou-n1", code, CodeKind.BEACON, clock, seq, count)
            apply_node_event(session, event, clock.now())
        session.commit()
        hearing = session.get(BeaconHearing, ("fz-gulou-n1", 102))
        assert hearing is not None and hearing.count == 7


def test_telemetry_updates_health_and_last_seen(engine: Engine, clock: ManualClock) -> None:
    """Telemetry stores health counters and the reported config version."""
    _seeded(engine, clock)
    body = TelemetryBody(uptime_s=12, version="0.1", queue_depth=3, config_version=2)
    with Session(engine) as session:
        apply_node_event(
            session, TelemetryEvent(node="xm-huli-n1", boot=4, seq=9, body=body), clock.now()
        )
        session.commit()
        node = session.get(Node, "xm-huli-n1")
        assert node.last_seen_at == clock.now()
        assert node.health["queue_depth"] == 3 and node.reported_config_version == 2


def test_unknown_node_is_one_alert_not_a_crash(engine: Engine, clock: ManualClock) -> None:
    """Messages from a node the registry does not know raise one open alert."""
    body = TelemetryBody(uptime_s=1, version="0.1")
    with Session(engine) as session:
        for seq in range(3):
            apply_node_event(
                session, TelemetryEvent(node="ghost-1", boot=1, seq=seq, body=body), clock.now()
            )
        apply_node_status(
            session, "ghost-1", NodeStatus(state=WireState.ONLINE, boot=1), clock.now()
        )
        session.commit()
        alerts = session.exec(select(Alert).where(Alert.node_id == "ghost-1")).all()
        assert [a.kind for a in alerts] == ["unknown_node"]


def test_status_and_silence(engine: Engine, clock: ManualClock) -> None:
    """Birth -> online; missed heartbeats -> offline with an alert; a message resolves it."""
    _seeded(engine, clock)
    with Session(engine) as session:
        apply_node_status(
            session, "fz-taijiang-n1", NodeStatus(state=WireState.ONLINE, boot=2), clock.now()
        )
        session.commit()
        assert mark_silent_nodes(session, clock.now(), HEARTBEAT_SILENCE_S) == []
        clock.advance(timedelta(seconds=HEARTBEAT_SILENCE_S + 1))
        assert mark_silent_nodes(session, clock.now(), HEARTBEAT_SILENCE_S) == ["fz-taijiang-n1"]
        session.commit()
        node = session.get(Node, "fz-taijiang-n1")
        assert node.state == "offline"
        alert = session.exec(select(Alert).where(Alert.kind == "node_silent")).one()
        assert alert.resolved_at is None
        apply_node_event(
            session,
            TelemetryEvent(
                node="fz-taijiang-n1", boot=2, seq=1, body=TelemetryBody(uptime_s=5, version="0.1")
            ),
            clock.now(),
        )
        session.commit()
        session.refresh(alert)
        assert (
            alert.resolved_at is not None and session.get(Node, "fz-taijiang-n1").state == "online"
        )


def test_last_will_raises_lost_alert(engine: Engine, clock: ManualClock) -> None:
    """A Last Will marks the node lost and alerts."""
    _seeded(engine, clock)
    with Session(engine) as session:
        apply_node_status(
            session, "xm-jimei-n1", NodeStatus(state=WireState.LOST, boot=3), clock.now()
        )
        session.commit()
        assert session.get(Node, "xm-jimei-n1").state == "lost"
        assert (
            session.exec(select(Alert).where(Alert.kind == "node_lost")).one().node_id
            == "xm-jimei-n1"
        )
