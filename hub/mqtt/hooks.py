"""What the ingest calls in the hub's services for each accepted message (the one guarded import).

``hub.services.node_events`` (the registry side) provides ``apply_node_event``,
``apply_node_status`` and, optionally, ``known_nodes``. Until it exists the ingest runs
with :class:`NullHooks` (every node known, nothing applied) and logs that once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

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
    """Calls ``hub.services.node_events``; without ``known_nodes`` every node counts as known."""

    def __init__(self, module: Any) -> None:
        """Bind the service functions of ``module``."""
        self._module = module
        self._known = getattr(module, "known_nodes", None)

    def known_nodes(self, session: Session, node_ids: Iterable[str]) -> set[str]:
        """Ask the registry which nodes exist."""
        ids = set(node_ids)
        return set(self._known(session, ids)) if self._known else ids

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
        from hub.services import node_events
    except ImportError:
        log.warning("hub.services.node_events not available: ingest stores events only")
        return NullHooks()
    return ServiceHooks(node_events)
