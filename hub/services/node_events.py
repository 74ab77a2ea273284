"""What node events mean for the registry: presence from tokens, hearings, health, silence.

Called by MQTT ingest inside its transaction, once per new event; never commits itself.
An unknown node never raises: it becomes an ``unknown_node`` alert.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from edge.modem.codes import from_hex, kind_of, split_beacon_code
from hub.metrics import NODE_ALERTS
from hub.models.checkins import PhoneToken, Presence
from hub.models.registry import Alert, BeaconHearing, Node, NodeState
from hub.services.campaigns import hooks as campaign_hooks
from storewave.wire import (
    AnyEvent,
    CodeKind,
    CommandResultEvent,
    ConfigRejectedEvent,
    DetectionEvent,
    NodeStatus,
    SelfTestEvent,
    TelemetryEvent,
)
from storewave.wire import NodeState as WireNodeState

log = logging.getLogger(__name__)

# An unknown node publishing every second must not write an alert per message: one open
# alert per node is enough for an operator to act on.
UNKNOWN_NODE_ALERT = "unknown_node"
NODE_SILENT_ALERT = "node_silent"
NODE_LOST_ALERT = "node_lost"
CONFIG_REJECTED_ALERT = "config_rejected"
SELF_TEST_FAILED_ALERT = "self_test_failed"
# Telemetry fields copied into the node's health record.
_HEALTH_FIELDS = (
    "uptime_s",
    "version",
    "noise_floor_dbfs",
    "frames_heard",
    "queue_depth",
    "queue_dropped",
    "overruns",
)


def raise_alert(
    session: Session,
    kind: str,
    now: datetime,
    *,
    node_id: str | None = None,
    store_id: str | None = None,
    detail: str = "",
) -> Alert:
    """Open an alert, or return the open alert of the same kind for the same node."""
    existing = session.exec(
        select(Alert).where(
            Alert.kind == kind, Alert.node_id == node_id, col(Alert.resolved_at).is_(None)
        )
    ).first()
    if existing is not None:
        return existing
    alert = Alert(
        kind=kind, node_id=node_id, store_id=store_id, detail=detail[:500], created_at=now
    )
    session.add(alert)
    NODE_ALERTS.labels(kind).inc()
    log.warning("alert raised", extra={"kind": kind, "node_id": node_id})
    return alert


def _resolve_alerts(session: Session, node_id: str, kinds: tuple[str, ...], now: datetime) -> None:
    """Close the node's open alerts of ``kinds`` (it came back)."""
    for alert in session.exec(
        select(Alert).where(
            Alert.node_id == node_id,
            col(Alert.kind).in_(kinds),
            col(Alert.resolved_at).is_(None),
        )
    ):
        alert.resolved_at = now
        session.add(alert)


def _known_node(session: Session, node_id: str, now: datetime) -> Node | None:
    """The node, or None after recording an ``unknown_node`` alert."""
    node = session.get(Node, node_id)
    if node is None or node.state == NodeState.REVOKED:
        raise_alert(
            session,
            UNKNOWN_NODE_ALERT,
            now,
            node_id=node_id,
            detail="message from a node the registry does not know (or revoked)",
        )
        return None
    return node


def _seen(session: Session, node: Node, received_at: datetime) -> None:
    """A message from the node is a sign of life."""
    if node.last_seen_at is None or received_at > node.last_seen_at:
        node.last_seen_at = received_at
    if node.state in (NodeState.PROVISIONED, NodeState.LOST, NodeState.OFFLINE):
        node.state = NodeState.ONLINE.value
        _resolve_alerts(session, node.id, (NODE_SILENT_ALERT, NODE_LOST_ALERT), received_at)
    session.add(node)


def apply_node_event(session: Session, event: AnyEvent, received_at: datetime) -> None:
    """Apply one new (never before seen) event from a node to the hub's state."""
    node = _known_node(session, event.node, received_at)
    if node is None:
        return
    _seen(session, node, received_at)
    if isinstance(event, DetectionEvent):
        if event.body.kind is CodeKind.TOKEN:
            _bind_presence(session, node, event, received_at)
        else:
            _record_hearing(
                session, node, event.body.code, event.body.snr_db, received_at, event.body.count
            )
    elif isinstance(event, TelemetryEvent):
        health = dict(node.health or {})
        health.update({f: getattr(event.body, f) for f in _HEALTH_FIELDS})
        node.health = health
        node.reported_config_version = event.body.config_version
    elif isinstance(event, ConfigRejectedEvent):
        node.reported_config_version = event.body.kept_version
        raise_alert(
            session,
            CONFIG_REJECTED_ALERT,
            received_at,
            node_id=node.id,
            store_id=node.store_id,
            detail=f"config v{event.body.version} rejected: {event.body.reason}",
        )
    elif isinstance(event, SelfTestEvent):
        if event.body.heard_code is not None and event.body.snr_db is not None:
            _record_hearing(session, node, event.body.heard_code, event.body.snr_db, received_at)
        if not event.body.ok:
            raise_alert(
                session,
                SELF_TEST_FAILED_ALERT,
                received_at,
                node_id=node.id,
                store_id=node.store_id,
                detail=event.body.detail,
            )
    elif isinstance(event, CommandResultEvent) and not event.body.ok:
        log.info(
            "node command failed",
            extra={"node_id": node.id, "command_id": str(event.body.command_id)},
        )
    session.add(node)


def _bind_presence(session: Session, node: Node, event: DetectionEvent, at: datetime) -> None:
    """A phone token heard by the node: the token's customer is at the node's store/zone."""
    token = session.get(PhoneToken, event.body.code)
    if token is None or token.expires_at < event.body.first_heard:
        log.info("unknown or expired phone token heard", extra={"node_id": node.id})
        return
    presence = session.get(Presence, token.customer_id)
    if presence is None:
        presence = Presence(
            customer_id=token.customer_id, store_id=node.store_id, node_id=node.id, seen_at=at
        )
    presence.store_id, presence.zone_id, presence.node_id, presence.seen_at = (
        node.store_id,
        node.zone_id,
        node.id,
        at,
    )
    session.add(presence)
    # Zone-entry and dwell campaigns decide here, in the ingest transaction; what they
    # grant lands in the customer's inbox (GET /v1/me/inbox).
    campaign_hooks.on_presence(
        session, at, token.customer_id, node.store_id, node.zone_id, str(event.id)
    )


def _record_hearing(
    session: Session, node: Node, code_hex: str, snr_db: float, at: datetime, count: int = 1
) -> None:
    """A beacon code heard ``count`` times (a debounced detection, or one self-test hearing)."""
    payload = from_hex(code_hex)
    if kind_of(payload) is not CodeKind.BEACON:
        return
    short_id = split_beacon_code(payload).short_id
    hearing = session.get(BeaconHearing, (node.id, short_id))
    if hearing is None:
        hearing = BeaconHearing(node_id=node.id, short_id=short_id, last_heard_at=at, snr_db=snr_db)
    hearing.last_heard_at, hearing.snr_db = at, snr_db
    hearing.count += count
    session.add(hearing)


def apply_node_status(
    session: Session, node_id: str, status: NodeStatus, received_at: datetime
) -> None:
    """Birth / Last Will / clean shutdown of a node."""
    node = _known_node(session, node_id, received_at)
    if node is None:
        return
    node.boot = status.boot
    if status.state is WireNodeState.ONLINE:
        _seen(session, node, received_at)
    elif status.state is WireNodeState.LOST:
        node.state = NodeState.LOST.value
        raise_alert(
            session,
            NODE_LOST_ALERT,
            received_at,
            node_id=node.id,
            store_id=node.store_id,
            detail=f"connection lost (boot {status.boot})",
        )
    else:
        node.state = NodeState.OFFLINE.value
    session.add(node)


def mark_silent_nodes(session: Session, now: datetime, max_silence_s: float) -> list[str]:
    """Nodes online but silent for over ``max_silence_s``: mark them offline and alert."""
    cutoff = now - timedelta(seconds=max_silence_s)
    silent = session.exec(
        select(Node).where(
            col(Node.state).in_([NodeState.ONLINE.value, NodeState.LOST.value]),
            col(Node.last_seen_at) < cutoff,
        )
    ).all()
    for node in silent:
        node.state = NodeState.OFFLINE.value
        session.add(node)
        raise_alert(
            session,
            NODE_SILENT_ALERT,
            now,
            node_id=node.id,
            store_id=node.store_id,
            detail=f"no message for more than {max_silence_s:.0f} s",
        )
    return [node.id for node in silent]
