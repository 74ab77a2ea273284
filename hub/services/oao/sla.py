"""SLA timer handlers: remind the store at the first deadline, move the order on at the second.

Import this module wherever ``hub.services.timers.run_due`` runs, so the handlers are
registered (the API's order routes import it).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import insert, update
from sqlmodel import Session, select

from hub.models.customers import OutboxMessage
from hub.models.oao import DispatchOutcome, OaoDispatch, OaoOrder, OrderStatus
from hub.models.registry import Alert
from hub.models.timers import Timer
from hub.services import timers
from hub.services.oao import deadlines, orders, states

log = logging.getLogger(__name__)

# The outbox has no staff addressee column: staff messages use this channel and a plain
# ``store:<id>`` address (not personal data, so nothing to encrypt); see the README.
STAFF_CHANNEL = "staff"
ALERT_TIMEOUT = "oao_timeout"


def staff_address(store_id: str) -> str:
    """The outbox address of a store's staff inbox."""
    return f"store:{store_id}"


def _live_offer(session: Session, timer: Timer) -> OaoOrder | None:
    """The order if the timer's offer is still the current, unanswered one (else None)."""
    order = session.exec(
        select(OaoOrder)
        .where(OaoOrder.id == timer.payload["order_id"])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if (
        order is None
        or order.status != OrderStatus.DISPATCHED.value
        or order.hops != timer.payload["hop"]
        or order.store_id != timer.payload["store_id"]
    ):
        return None
    return order


def _offer_row(session: Session, order: OaoOrder) -> OaoDispatch | None:
    """The dispatch record of the order's current offer."""
    return session.exec(
        select(OaoDispatch).where(OaoDispatch.order_id == order.id, OaoDispatch.hop == order.hops)
    ).first()


@timers.timer_handler(deadlines.KIND_REMIND)
def remind(session: Session, timer: Timer, now: datetime) -> None:
    """First deadline: a reminder to the store's staff (outbox, sent once).

    Plain statements rather than ORM objects: a sweep runs this for every open order
    whose reminder is due, and the unit of work cost several times the SQL.
    """
    payload = timer.payload
    query = select(OaoOrder.product, OaoOrder.priority).where(  # type: ignore[call-overload]
        OaoOrder.id == payload["order_id"],
        OaoOrder.status == OrderStatus.DISPATCHED.value,
        OaoOrder.hops == payload["hop"],
        OaoOrder.store_id == payload["store_id"],
    )
    live = session.execute(query.with_for_update()).first()
    if live is None:
        return
    order_id, hop, store_id = payload["order_id"], payload["hop"], payload["store_id"]
    session.execute(
        insert(OutboxMessage).values(
            channel=STAFF_CHANNEL,
            recipient_enc=staff_address(store_id),
            body=f"Reminder: order {order_id} ({live.product}, {live.priority}) is waiting for "
            f"your store to accept it.",
            dedupe_key=f"oao:remind:{order_id}:{hop}",
            created_at=now,
        )
    )
    session.execute(
        update(OaoDispatch)
        .where(OaoDispatch.order_id == order_id, OaoDispatch.hop == hop)  # type: ignore[arg-type]
        .values(reminded_at=now)
    )
    log.info("order reminder queued", extra={"order_id": order_id, "store_id": store_id})


@timers.timer_handler(deadlines.KIND_REDISPATCH)
def redispatch(session: Session, timer: Timer, now: datetime) -> None:
    """Second deadline: the store timed out; alert ops and offer the next recommended store."""
    order = _live_offer(session, timer)
    if order is None:
        return
    store_id = order.store_id
    row = _offer_row(session, order)
    if row is not None:
        row.outcome = DispatchOutcome.TIMED_OUT.value
        row.outcome_reason = "no answer by the SLA deadline"
        row.outcome_at = now
        session.add(row)
    session.add(
        Alert(
            kind=ALERT_TIMEOUT,
            store_id=store_id,
            detail=f"order {order.id} (region {order.region_id}) not accepted by "
            f"{store_id} in time; re-dispatching",
            created_at=now,
        )
    )
    orders.dispatch(session, order, now, states.SYSTEM_ACTOR, cause=f"{store_id} timed out")
