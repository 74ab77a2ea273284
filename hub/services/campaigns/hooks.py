"""Entry points the rest of the hub calls: check-ins, MQTT presence, kiosk sign-ins.

A check-in or a kiosk sign-in evaluates one customer at once. Presence events come in
MQTT ingest batches, many customers in one transaction: they are collected and evaluated
together just before that transaction commits, so that ``evaluation.evaluate_many`` can
lock every customer of the batch (by id) before any budget. Evaluating each event as it
is applied would lock customer A, then A's budgets and timers, then wait for customer B,
whose check-in may be waiting for those: a deadlock on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, col, select

from hub.models.checkins import Visit
from hub.models.customers import Customer
from hub.services.campaigns import evaluation
from hub.services.campaigns.rules import TriggerEvent
from storewave.wire import Grant

_PENDING_KEY = "campaigns_pending_presence"
_LISTENING_KEY = "campaigns_pending_listener"


def on_checkin(
    session: Session,
    now: datetime,
    customer_id: str,
    store_id: str,
    zone_id: str | None,
    visit: Visit,
    new_visit: bool,
    customer: Mapping[str, Any] | None = None,
) -> list[Grant]:
    """Grants for an accepted check-in, in the check-in's own transaction.

    The check-in has locked the customer's row before anything else (that is the first
    lock of the evaluation's order) and, when ``new_visit``, created the visit in this
    transaction. ``customer``: the locked row's ``id`` and ``facts.AUDIENCE_COLUMNS`` (the
    check-in selects them in its lock statement), so evaluation does not read or lock it
    again.
    """
    event = TriggerEvent(
        channel="checkin",
        event_id=visit.id,
        customer_id=customer_id,
        store_id=store_id,
        at=now,
        zone_id=zone_id,
        visit_id=visit.id,
        new_visit=new_visit,
        visit_started_at=visit.started_at,
        new_source=new_visit,
    )
    if customer is not None:
        return evaluation.to_wire(evaluation.evaluate(session, event, customer=customer))
    return evaluation.to_wire(
        evaluation.evaluate(session, event, locked=_loaded(session, customer_id))
    )


def _loaded(session: Session, customer_id: str) -> Customer | None:
    """The customer as the check-in loaded (and locked) it in this transaction, if it did.

    None when the session does not hold it loaded: evaluation then locks and reads it.
    """
    held = session.identity_map.get(session.identity_key(Customer, customer_id))
    if held is None or sa_inspect(held).expired_attributes:
        return None
    return held  # type: ignore[no-any-return]


def on_presence(
    session: Session,
    now: datetime,
    customer_id: str,
    store_id: str,
    zone_id: str | None,
    event_id: str,
) -> None:
    """A node heard the customer's phone token (zone entry, dwell): grants go to the inbox.

    Decided when the caller's transaction commits (see the module docstring), in that
    same transaction; the decisions are stored as grants, which the inbox API reads.
    """
    # Imported here: the check-in service imports this module (no import cycle at load).
    # A visit the check-in service would still extend is the visit this presence is part of.
    from hub.services.checkins import VISIT_IDLE

    visit = session.exec(
        select(Visit)
        .where(
            Visit.customer_id == customer_id,
            Visit.store_id == store_id,
            Visit.last_seen_at > now - VISIT_IDLE,
        )
        .order_by(col(Visit.started_at).desc())
    ).first()
    _defer(
        session,
        TriggerEvent(
            channel="mqtt",
            event_id=event_id,
            customer_id=customer_id,
            store_id=store_id,
            at=now,
            zone_id=zone_id,
            visit_id=visit.id if visit else None,
            visit_started_at=visit.started_at if visit else None,
        ),
    )


def _defer(session: Session, event: TriggerEvent) -> None:
    """Queue ``event`` for evaluation when the session's transaction commits."""
    if not session.info.get(_LISTENING_KEY):
        sa_event.listen(session, "before_commit", evaluate_pending)
        sa_event.listen(session, "after_transaction_end", _drop_pending)
        session.info[_LISTENING_KEY] = True
    session.info.setdefault(_PENDING_KEY, []).append(event)


def evaluate_pending(session: Session) -> None:
    """Evaluate the queued presence events together (also run by the commit itself)."""
    if session.in_nested_transaction():
        return  # a savepoint's release, not the transaction's commit
    pending: list[TriggerEvent] = session.info.pop(_PENDING_KEY, None) or []
    if pending:
        evaluation.evaluate_many(session, pending)


def _drop_pending(session: Session, transaction: Any) -> None:
    """A rolled-back transaction's queued events go with it."""
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)


def on_kiosk_signin(
    session: Session, now: datetime, customer_id: str, store_id: str, request_id: str
) -> list[Grant]:
    """Grants for a customer identifying themselves at a store's kiosk."""
    event = TriggerEvent(
        channel="kiosk", event_id=request_id, customer_id=customer_id, store_id=store_id, at=now
    )
    return evaluation.to_wire(evaluation.evaluate(session, event))
