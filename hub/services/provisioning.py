"""Node provisioning: one-time MQTT credentials, beacons, and the versioned retained config."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from edge.modem.codes import DEFAULT_SLOT_S, DEFAULT_SLOT_WINDOW, MAX_SHORT_ID, new_beacon_key
from hub.clock import Clock
from hub.models.registry import (
    Beacon,
    BeaconCreate,
    Node,
    NodeCreate,
    NodeState,
    NodeUpdate,
    Store,
    Zone,
)
from hub.security import HubCrypto
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.levels import range_to_level_dbfs
from hub.services.ports import NodeControl
from storewave.wire import BeaconKey, CommandName, EmitSchedule, NodeCommand, NodeConfig

log = logging.getLogger(__name__)

NODE_PASSWORD_PURPOSE = "node-password"
# 192 random bits: an MQTT password nobody types, so no slow KDF is needed to store it.
NODE_PASSWORD_BYTES = 24
# A set_beacon command older than this is stale (the retained config has moved on).
COMMAND_TTL = timedelta(minutes=10)


def _check_zone(session: Session, store_id: str, zone_id: str | None) -> None:
    """Refuse a zone that is not in ``store_id``."""
    if zone_id is None:
        return
    zone = session.get(Zone, zone_id)
    if zone is None or zone.store_id != store_id:
        raise Invalid(f"zone {zone_id!r} is not a zone of store {store_id!r}")


def _new_password(crypto: HubCrypto) -> tuple[str, str]:
    """A fresh MQTT password and its keyed hash."""
    password = secrets.token_urlsafe(NODE_PASSWORD_BYTES)
    return password, crypto.keyed_hash(NODE_PASSWORD_PURPOSE, password)


def provision_node(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    control: NodeControl,
    spec: NodeCreate,
) -> tuple[Node, str]:
    """Register a node and give the broker its credentials; return the node and its password."""
    if session.get(Store, spec.store_id) is None:
        raise Invalid(f"store {spec.store_id!r} does not exist")
    _check_zone(session, spec.store_id, spec.zone_id)
    if session.get(Node, spec.id) is not None:
        raise Conflict(f"node {spec.id!r} already exists; reset its credentials instead")
    password, password_hash = _new_password(crypto)
    node = Node(
        id=spec.id,
        store_id=spec.store_id,
        zone_id=spec.zone_id,
        password_hash=password_hash,
        created_at=clock.now(),
    )
    session.add(node)
    session.flush()
    control.set_credentials(node.id, password)
    publish_config(session, crypto, clock, control, node)
    log.info("node provisioned", extra={"node_id": node.id, "store_id": node.store_id})
    return node, password


def reset_credentials(session: Session, crypto: HubCrypto, control: NodeControl, node: Node) -> str:
    """Replace the node's MQTT password; the old one stops working at the broker."""
    password, node.password_hash = _new_password(crypto)
    if node.state == NodeState.REVOKED:
        node.state = NodeState.PROVISIONED.value
    session.add(node)
    control.set_credentials(node.id, password)
    return password


def revoke_node(session: Session, control: NodeControl, node: Node) -> None:
    """Take the node's broker access away; its history stays."""
    node.state = NodeState.REVOKED.value
    session.add(node)
    control.revoke(node.id)


def move_node(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    control: NodeControl,
    node: Node,
    spec: NodeUpdate,
) -> Node:
    """Move a node to another store/zone (no re-flash: the mapping lives in the hub)."""
    store_id = spec.store_id or node.store_id
    zone_id = spec.zone_id if "zone_id" in spec.model_fields_set else node.zone_id
    if store_id != node.store_id and "zone_id" not in spec.model_fields_set:
        zone_id = None
    if session.get(Store, store_id) is None:
        raise Invalid(f"store {store_id!r} does not exist")
    _check_zone(session, store_id, zone_id)
    old_store = node.store_id
    node.store_id, node.zone_id = store_id, zone_id
    session.add(node)
    beacon = session.exec(select(Beacon).where(Beacon.node_id == node.id)).first()
    if beacon is not None:
        beacon.store_id, beacon.zone_id = store_id, zone_id
        session.add(beacon)
        if store_id != old_store:  # both stores' beacons take new turns
            session.flush()
            for affected in (old_store, store_id):
                republish_store(session, crypto, clock, control, affected)
    return node


def _next_short_id(session: Session) -> int:
    """The lowest unused short id above the highest in use (ids are never reused)."""
    highest = session.exec(select(func.max(Beacon.short_id))).one()
    short_id = 1 if highest is None else highest + 1
    if short_id > MAX_SHORT_ID:
        raise Conflict("no beacon short ids left in this deployment")
    return short_id


def create_beacon(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    control: NodeControl,
    spec: BeaconCreate,
    short_id: int | None = None,
) -> Beacon:
    """Give a node a beacon identity (fresh key) and republish its config."""
    node = session.get(Node, spec.node_id)
    if node is None:
        raise Invalid(f"node {spec.node_id!r} does not exist")
    if session.exec(select(Beacon).where(Beacon.node_id == node.id)).first() is not None:
        raise Conflict(f"node {node.id!r} already has a beacon; change its range or rotate it")
    if short_id is not None and session.get(Beacon, short_id) is not None:
        raise Conflict(f"beacon short id {short_id} is taken")
    beacon = Beacon(
        short_id=short_id if short_id is not None else _next_short_id(session),
        node_id=node.id,
        store_id=node.store_id,
        zone_id=node.zone_id,
        key_enc=crypto.encrypt(new_beacon_key().hex()),
        range_m=spec.range_m,
        level_dbfs=range_to_level_dbfs(spec.range_m),
        slot_s=DEFAULT_SLOT_S,
        created_at=clock.now(),
    )
    session.add(beacon)
    session.flush()
    # Every beacon of the store gets its turn again (the cycle has one more turn).
    republish_store(session, crypto, clock, control, node.store_id)
    return beacon


def change_range(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    control: NodeControl,
    beacon: Beacon,
    range_m: float,
) -> Beacon:
    """Set a beacon's range (hence its output level) and republish the node's config."""
    beacon.range_m = range_m
    beacon.level_dbfs = range_to_level_dbfs(range_m)
    session.add(beacon)
    publish_config(session, crypto, clock, control, _node_of(session, beacon))
    return beacon


def rotate_key(
    session: Session, crypto: HubCrypto, clock: Clock, control: NodeControl, beacon: Beacon
) -> Beacon:
    """Give a beacon a new key; the old one stays valid for the slot window only."""
    now = clock.now()
    beacon.previous_key_enc = beacon.key_enc
    # Codes the node emitted with the old key until it applied the new config.
    beacon.previous_key_until = now + timedelta(seconds=beacon.slot_s * (DEFAULT_SLOT_WINDOW + 1))
    beacon.key_enc = crypto.encrypt(new_beacon_key().hex())
    beacon.rotated_at = now
    session.add(beacon)
    publish_config(session, crypto, clock, control, _node_of(session, beacon))
    return beacon


def _node_of(session: Session, beacon: Beacon) -> Node:
    """The node a beacon belongs to."""
    node = session.get(Node, beacon.node_id)
    if node is None:  # the foreign key makes this unreachable
        raise NotFound(f"node {beacon.node_id!r} not found")
    return node


def emit_slot(session: Session, beacon: Beacon) -> tuple[int, int]:
    """(this beacon's turn, beacons in its store): turns follow short ids, which never change.

    Beacons of one store share the air, so each emits in its own slot of the store's
    cycle (:meth:`storewave.wire.EmitSchedule.time_shared`) instead of on top of another.
    """
    ids = list(
        session.exec(
            select(Beacon.short_id)
            .where(Beacon.store_id == beacon.store_id)
            .order_by(col(Beacon.short_id))
        )
    )
    return ids.index(beacon.short_id), len(ids)


def build_config(
    crypto: HubCrypto,
    node: Node,
    beacon: Beacon | None,
    with_key: bool,
    slot: tuple[int, int] = (0, 1),
) -> NodeConfig:
    """The node's config at its current version; ``beacon`` only when ``with_key``.

    ``slot`` is the beacon's (turn, turns in its store), from :func:`emit_slot`.
    """
    if beacon is None:
        emit = EmitSchedule(enabled=False)
    else:
        emit = EmitSchedule.time_shared(*slot, level_dbfs=beacon.level_dbfs)
    return NodeConfig(
        version=node.config_version,
        emit=emit,
        beacon=_beacon_key(crypto, beacon) if beacon is not None and with_key else None,
    )


def _beacon_key(crypto: HubCrypto, beacon: Beacon) -> BeaconKey:
    """The wire form of a beacon's identity (contains the secret key)."""
    return BeaconKey(
        short_id=beacon.short_id, key_hex=crypto.decrypt(beacon.key_enc), slot_s=beacon.slot_s
    )


def publish_config(
    session: Session, crypto: HubCrypto, clock: Clock, control: NodeControl, node: Node
) -> NodeConfig:
    """Bump the node's config version and publish it retained (key out of it on amqtt)."""
    node.config_version += 1
    session.add(node)
    beacon = session.exec(select(Beacon).where(Beacon.node_id == node.id)).first()
    safe = control.retained_secrets_safe
    slot = emit_slot(session, beacon) if beacon is not None else (0, 1)
    config = build_config(crypto, node, beacon, with_key=safe, slot=slot)
    control.publish_config(node.id, config)
    if beacon is not None and not safe:
        control.send_command(
            node.id, set_beacon_command(crypto, clock.now(), beacon, node.config_version)
        )
    return config


def republish_store(
    session: Session, crypto: HubCrypto, clock: Clock, control: NodeControl, store_id: str
) -> None:
    """Publish a new config to every beacon node of ``store_id`` (their turns changed)."""
    node_ids = session.exec(
        select(Beacon.node_id).where(Beacon.store_id == store_id).order_by(col(Beacon.short_id))
    ).all()
    for node_id in node_ids:
        node = session.get(Node, node_id)
        if node is not None:
            publish_config(session, crypto, clock, control, node)


def set_beacon_command(
    crypto: HubCrypto, now: datetime, beacon: Beacon, version: int
) -> NodeCommand:
    """The non-retained command that carries the beacon key when retained messages leak."""
    return NodeCommand(
        cmd=CommandName.SET_BEACON,
        expires_at=now + COMMAND_TTL,
        args={"beacon": _beacon_key(crypto, beacon).model_dump(), "config_version": version},
    )
