"""What the ingest calls in the hub's services for each accepted message (the one guarded import).

``hub.services.node_events`` (the registry side) provides ``apply_node_event`` and
``apply_node_status``; which nodes exist (not revoked) is read from the registry's
``node`` table, so a message from an unknown node is dead-lettered before it is stored.
Without the registry the ingest runs with :class:`NullHooks` (every node known, nothing
applied) and logs that once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlmodel import Session

from storewave.wire import NodeStatus

log = logging.getLogger(__name__)


class NodeHooks(Protocol):
    """The registry-side effects of node messages, run inside the ingest's transaction."""

    def known_nodes(self, session: Session, node_ids: Iterable[str]) -> set[str]:
        """The subset of ``node_ids`` that are provisioned nodes."""
        ...

    def apply_event(self, session: Session, event: Any, received_at: datetime) -> None:
        """Apply one new (never seen before) event."""
        ...

    def apply_status(
        self, session: Session, node_id: str, status: NodeStatus, received_at: datetime
    ) -> None:
        """Apply a node's presence message (birth, Last Will, clean offline)."""
        ...


class NullHooks:
    """No registry: every node counts as known and nothing else happens (tests, bench)."""

    def known_nodes(self, session: Session, node_ids: Iterable[str]) -> set[str]:
        """Every node is known."""
        return set(node_ids)

    def apply_event(self, session: Session, event: Any, received_at: datetime) -> None:
        """Nothing to apply."""

    def apply_status(
        self, session: Session, node_id: str, status: NodeStatus, received_at: datetime
    ) -> None:
        """Nothing to apply."""


class ServiceHooks:
    """Calls ``hub.services.node_events``; known nodes are the registry's non-revoked ones."""

    def __init__(self, module: Any, node_model: Any, revoked_state: str) -> None:
        """Bind the service functions of ``module`` and the registry's Node table."""
        self._module = module
        self._node = node_model
        self._revoked = revoked_state

    def known_nodes(self, session: Session, node_ids: Iterable[str]) -> set[str]:
        """One query per batch: which of ``node_ids`` are provisioned and not revoked.

        It loads the nodes themselves, not only their ids: they stay in the session's
        identity map, so the per-event hooks find them without a query per node (with
        1,000 nodes in a batch that was 1,000 round trips on PostgreSQL).
        """
        ids = set(node_ids)
        nodes = session.execute(
            select(self._node).where(self._node.id.in_(ids), self._node.state != self._revoked)
        ).scalars().all()
        # The identity map holds objects weakly: keep them referenced for the session.
        session.info.setdefault("ingest_nodes", []).extend(nodes)
        return {node.id for node in nodes}

    def apply_event(self, session: Session, event: Any, received_at: datetime) -> None:
        """``node_events.apply_node_event``."""
        self._module.apply_node_event(session, event, received_at)

    def apply_status(
        self, session: Session, node_id: str, status: NodeStatus, received_at: datetime
    ) -> None:
        """``node_events.apply_node_status``."""
        self._module.apply_node_status(session, node_id, status, received_at)


def default_hooks() -> NodeHooks:
    """The registry's hooks when ``hub.services.node_events`` is importable, else NullHooks."""
    try:
        from hub.models.registry import Node, NodeState
        from hub.services import node_events
    except ImportError:
        log.warning("hub.services.node_events not available: ingest stores events only")
        return NullHooks()
    return ServiceHooks(node_events, Node, NodeState.REVOKED.value)
