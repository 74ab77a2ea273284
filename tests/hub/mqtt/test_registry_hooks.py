"""Ingest with the registry hooks: seeded nodes applied, unknown ones dead-lettered."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.db import make_engine, migrate, session_scope
from hub.models.registry import Node
from hub.mqtt.hooks import ServiceHooks, default_hooks
from hub.mqtt.models import DeadLetter
from hub.mqtt.publisher import detection_payload
from hub.mqtt.store import BatchWriter, Incoming
from hub.security import HubCrypto
from hub.seed import load_seeds
from storewave.wire import NodeState, NodeStatus, utc_now

SECRET = b"k" * 32


def _seeded(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    migrate(engine)  # every branch, the ingest's included
    with session_scope(engine) as session:
        load_seeds(session, crypto=HubCrypto(SECRET))
    return engine


def test_registry_hooks_apply_and_refuse(tmp_path: Path) -> None:
    engine = _seeded(tmp_path)
    hooks = default_hooks()
    assert isinstance(hooks, ServiceHooks)
    now = utc_now()
    online = NodeStatus(state=NodeState.ONLINE, boot=1).to_bytes()
    result = BatchWriter(engine, hooks).write(
        [
            Incoming("sw/v1/nodes/fz-gulou-n1/status", online, now),
            Incoming("sw/v1/nodes/fz-gulou-n1/events", detection_payload("fz-gulou-n1", 1, 0), now),
            Incoming("sw/v1/nodes/ghost-n9/events", detection_payload("ghost-n9", 1, 0), now),
        ]
    )
    assert (result.stored, result.statuses, result.dead) == (1, 1, 1)
    with Session(engine) as session:
        node = session.get(Node, "fz-gulou-n1")
        assert node is not None and node.state == "online" and node.last_seen_at is not None
        [dead] = session.execute(select(DeadLetter)).scalars()
        assert dead.node == "ghost-n9" and "unknown node" in dead.reason
