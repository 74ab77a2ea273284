"""SLA timer handlers: remind the store at the first deadline, move the order on at the second.

Both are batch handlers (``hub.services.timers.batch_timer_handler``): a sweep hands over
every due deadline of a kind at once, and the handler does its writes in a few
statements per batch (one lock query, one statement per table), whatever the count.
A batch of one is the single-timer case: there is no separate per-timer code. The
dispatch rules themselves (exclusions, hop limit, escalation, audit, next timers) are
``hub.services.oao.orders.DispatchRun``'s, the same code the intake runs.

Import this module wherever ``hub.services.timers.run_due`` runs, so the handlers are
registered (the API's order routes import it).
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, select

from hub.models.oao import DispatchOutcome, OaoDispatch, OrderStatus
from hub.services import timers
from hub.services.bulk import BulkSql
from hub.services.oao import deadlines, orders, states

log = logging.getLogger(__name__)

# The outbox has no staff addressee column: staff messages use this channel and a plain
# ``store:<id>`` address (not personal data, so nothing to encrypt); see the README.
STAFF_CHANNEL = "staff"
ALERT_TIMEOUT = "oao_timeout"
TIMEOUT_REASON = "no answer by the SLA deadline"


def _ticket(row: Any) -> orders.Ticket:
    """A ticket from a driver row (SQLite hands timestamps back as text)."""
    ticket = orders.Ticket.from_row(row)
    if ticket.dispatched_at is not None:
        ticket.dispatched_at = timers.utc_value(ticket.dispatched_at)
    return ticket


def staff_address(store_id: str) -> str:
    """The outbox address of a store's staff inbox."""
    return f"store:{store_id}"


def _live_offers(
    session: Session, due: Sequence[timers.DueTimer], columns: Sequence[str]
) -> list[Any]:
    """Order rows (named tuples of ``columns``) whose current, unanswered offer is the one
    a due timer is for.

    The rows are locked (PostgreSQL) in id order, so two sweeps, or a sweep and a store
    answering, take turns on an order instead of both acting on the same offer; a timer
    whose offer was answered, withdrawn or superseded is stale and does nothing. Read
    with the driver: a burst reads thousands of rows and needs none of the ORM's work.
    """
    wanted = {}
    for timer in due:
        payload = timer.payload
        wanted[payload["order_id"]] = (payload["hop"], payload["store_id"])
    sql = BulkSql(session)
    record = _record_type(tuple(columns))
    lock = " FOR UPDATE" if sql.postgres else ""
    rows: dict[str, Any] = {}
    for part in orders.chunks(sorted(wanted)):
        query = (
            f"SELECT {', '.join(columns)} FROM oao_order "
            f"WHERE id IN ({', '.join('?' * len(part))}) ORDER BY id{lock}"
        )
        rows.update((row.id, row) for row in map(record._make, sql.rows(query, part)))
    live = []
    for order_id, (hop, store_id) in wanted.items():
        row = rows.get(order_id)
        if (
            row is not None
            and row.status == _DISPATCHED
            and row.hops == hop
            and row.store_id == store_id
        ):
            live.append(row)
    return live


_DISPATCHED = OrderStatus.DISPATCHED.value
_REMIND_COLUMNS = ("id", "status", "hops", "store_id", "product", "priority")


@lru_cache(maxsize=8)
def _record_type(columns: tuple[str, ...]) -> Any:
    """A named tuple type for rows of ``columns``."""
    return namedtuple("OrderRow", columns)  # noqa: PYI024


def _queue_reminders(session: Session, live: Sequence[Any], now: datetime) -> None:
    """A reminder to each offered store's staff (outbox, once per offer) and the offer's mark."""
    if not live:
        return
    sql = BulkSql(session)
    at = sql.dt(now)
    sql.many(
        "INSERT INTO outbox (channel, recipient_enc, body, dedupe_key, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
        [
            (
                STAFF_CHANNEL,
                staff_address(row.store_id),
                f"Reminder: order {row.id} ({row.product}, {row.priority}) is waiting for "
                f"your store to accept it.",
                f"oao:remind:{row.id}:{row.hops}",
                at,
            )
            for row in live
        ],
    )
    sql.many(
        "UPDATE oao_dispatch SET reminded_at = ? WHERE order_id = ? AND hop = ?",
        [(at, row.id, row.hops) for row in live],
    )
    log.info("order reminders queued", extra={"count": len(live)})


@timers.batch_timer_handler(deadlines.KIND_REMIND)
def remind(session: Session, due: list[timers.DueTimer], now: datetime) -> None:
    """First deadline: a reminder to the store's staff (outbox, sent once)."""
    _queue_reminders(session, _live_offers(session, due, _REMIND_COLUMNS), now)


@timers.batch_timer_handler(deadlines.KIND_REDISPATCH)
def redispatch(session: Session, due: list[timers.DueTimer], now: datetime) -> None:
    """Second deadline: the store timed out; alert ops and offer the next recommended store.

    An offer whose reminder has not run yet (a sweep that comes late past both deadlines
    finds both due) gets it first, as deadlines taken in time order would have.
    """
    live = _live_offers(session, due, orders.Ticket.COLUMNS)
    if not live:
        return
    unreminded: set[tuple[str, int]] = set()
    for part in orders.chunks([row.id for row in live]):
        unreminded.update(
            (order_id, hop)
            for order_id, hop in session.execute(
                select(OaoDispatch.order_id, OaoDispatch.hop).where(  # type: ignore[call-overload]
                    col(OaoDispatch.order_id).in_(part), col(OaoDispatch.reminded_at).is_(None)
                )
            )
        )
    _queue_reminders(session, [r for r in live if (r.id, r.hops) in unreminded], now)
    sql = BulkSql(session)
    at = sql.dt(now)
    sql.many(
        "UPDATE oao_dispatch SET outcome = ?, outcome_reason = ?, outcome_at = ? "
        "WHERE order_id = ? AND hop = ?",
        [(DispatchOutcome.TIMED_OUT.value, TIMEOUT_REASON, at, r.id, r.hops) for r in live],
    )
    orders.insert_alerts(
        sql,
        [
            {
                "kind": ALERT_TIMEOUT,
                "store_id": row.store_id,
                "detail": f"order {row.id} (region {row.region_id}) not accepted by "
                f"{row.store_id} in time; re-dispatching",
                "created_at": now,
            }
            for row in live
        ],
    )
    run = orders.DispatchRun(session, now)
    run.dispatch_all(
        [(_ticket(row), f"{row.store_id} timed out") for row in live],
        states.SYSTEM_ACTOR,
    )
    run.flush()
