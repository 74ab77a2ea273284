"""The order state machine: legal moves, a clear error for the rest, an audit row per move."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session

from hub.models.oao import OaoOrder, OaoTransition, OrderStatus
from hub.services.errors import Conflict

log = logging.getLogger(__name__)

S = OrderStatus
# Every legal move. dispatched -> dispatched is a re-dispatch to another store;
# escalated -> dispatched is ops handing the order to a store by hand.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.DISPATCHED, S.ESCALATED}),
    S.DISPATCHED: frozenset({S.DISPATCHED, S.ACCEPTED, S.ESCALATED}),
    S.ACCEPTED: frozenset({S.IN_PROGRESS, S.FAILED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED}),
    S.ESCALATED: frozenset({S.DISPATCHED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
}
# Orders a store is working on or has been offered: they count against its capacity.
OPEN_AT_STORE = (S.DISPATCHED.value, S.ACCEPTED.value, S.IN_PROGRESS.value)
SYSTEM_ACTOR = "system:sla"


class IllegalTransition(Conflict):
    """A move the state machine does not allow from the order's current status."""

    code = "illegal_transition"

    def __init__(self, order_id: str, current: str, wanted: str) -> None:
        """Say where the order is, what was asked, and what would be allowed."""
        allowed = sorted(s.value for s in TRANSITIONS[OrderStatus(current)])
        hint = f"allowed from {current}: {', '.join(allowed)}" if allowed else f"{current} is final"
        super().__init__(f"order {order_id} is {current}; cannot move to {wanted} ({hint})")


def check_move(order_id: str, current: str, to: OrderStatus) -> None:
    """Raise IllegalTransition unless an order in ``current`` may move to ``to``."""
    if to not in TRANSITIONS[OrderStatus(current)]:
        raise IllegalTransition(order_id, current, to.value)


def check(order: OaoOrder, to: OrderStatus) -> None:
    """Raise IllegalTransition unless ``order`` may move to ``to``."""
    check_move(order.id, order.status, to)


def transition_row(
    order_id: str,
    from_status: str | None,
    to: OrderStatus,
    actor: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """The audit row of one move (column values): one shape for single and batch writes."""
    return {
        "order_id": order_id,
        "from_status": from_status,
        "to_status": to.value,
        "actor": actor[:80],
        "reason": reason[:500],
        "at": now,
    }


def record(
    session: Session,
    order_id: str,
    from_status: str | None,
    to: OrderStatus,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    """Append the audit row of a move already applied to the order."""
    session.add(OaoTransition(**transition_row(order_id, from_status, to, actor, reason, now)))
    log.info("order moved", extra={"order_id": order_id, "from": from_status, "to": to.value})


def move(
    session: Session, order: OaoOrder, to: OrderStatus, actor: str, reason: str, now: datetime
) -> None:
    """Check, apply and audit a move of an order loaded in ``session``."""
    check(order, to)
    previous = order.status
    order.status = to.value
    session.add(order)
    record(session, order.id, previous, to, actor, reason, now)
