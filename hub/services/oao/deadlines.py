"""SLA deadlines of one offer: the reminder and the re-dispatch, as durable timers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from hub.models.oao import DEFAULT_ACCEPT_MIN, DEFAULT_GRACE_MIN, OaoRegionPolicy
from hub.models.timers import Timer, TimerState

KIND_REMIND = "oao.remind"
KIND_REDISPATCH = "oao.redispatch"


def offer_key(order_id: str, hop: int) -> str:
    """Timer key of one offer: an order's hop n has its own pair of deadlines."""
    return f"{order_id}:{hop}"


def deadlines(
    policy: OaoRegionPolicy, priority: str, offered_at: datetime
) -> tuple[datetime, datetime]:
    """(reminder due, re-dispatch due) of an offer made at ``offered_at``."""
    accept = (policy.accept_minutes or {}).get(priority, DEFAULT_ACCEPT_MIN[priority])
    grace = (policy.grace_minutes or {}).get(priority, DEFAULT_GRACE_MIN[priority])
    remind_at = offered_at + timedelta(minutes=accept)
    return remind_at, remind_at + timedelta(minutes=grace)


def offer_timers(
    policy: OaoRegionPolicy,
    order_id: str,
    priority: str,
    hop: int,
    store_id: str,
    now: datetime,
) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    """The reminder and re-dispatch timers (kind, key, due, payload) of the offer ``hop``."""
    remind_at, redispatch_at = deadlines(policy, priority, now)
    payload = {"order_id": order_id, "hop": hop, "store_id": store_id}
    key = offer_key(order_id, hop)
    return [(KIND_REMIND, key, remind_at, payload), (KIND_REDISPATCH, key, redispatch_at, payload)]


def disarm(session: Session, order_id: str, hop: int) -> int:
    """Cancel an offer's pending deadlines (accepted, rejected, withdrawn); return how many.

    Timers a sweep has claimed right now are skipped, not waited for: the sweep holds
    them while it waits for this order's row lock, so waiting here would deadlock
    (seen on PostgreSQL). A skipped handler finds the offer answered and does nothing.
    """
    key = offer_key(order_id, hop)
    query = select(Timer.id).where(
        col(Timer.kind).in_((KIND_REMIND, KIND_REDISPATCH)),
        Timer.key == key,
        Timer.state == TimerState.PENDING,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.exec(query).all())
    if not ids:
        return 0
    session.execute(
        update(Timer)
        .where(col(Timer.id).in_(ids), Timer.state == TimerState.PENDING)
        .values(state=TimerState.CANCELLED)
    )
    return len(ids)
