"""What stores and ops do to an order: accept (once), reject, start, complete, fail, redirect."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
from sqlalchemy import update
from sqlmodel import Session, select

from hub.models.auth import Role
from hub.models.oao import DispatchOutcome, OaoDispatch, OaoOrder, OrderStatus, Product
from hub.models.registry import Store
from hub.services.auth import STORE_ROLES, Principal
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.oao import config, deadlines, orders, sheets, states
from hub.services.oao.dispatch import Candidate, Decision
from hub.services.oao.geo import haversine_km

log = logging.getLogger(__name__)


def _order_for_store(
    session: Session, principal: Principal, order_id: str, for_update: bool = False
) -> OaoOrder:
    """The order, or a clear Conflict when it was offered to the caller's store but moved on."""
    try:
        return orders.scoped_order(session, principal, order_id, for_update=for_update)
    except NotFound:
        if (
            principal.role in STORE_ROLES
            and session.exec(
                select(OaoDispatch.id).where(
                    OaoDispatch.order_id == order_id, OaoDispatch.store_id == principal.store_id
                )
            ).first()
            is not None
        ):
            raise Conflict(
                f"order {order_id} is no longer offered to store {principal.store_id}",
                code="offer_withdrawn",
            ) from None
        raise


def _acting_store(principal: Principal, order: OaoOrder) -> str | None:
    """The store the caller acts for: its own (staff) or the order's (admin, ops)."""
    return principal.store_id if principal.role in STORE_ROLES else order.store_id


def _close_offer(
    session: Session,
    order_id: str,
    hop: int,
    outcome: DispatchOutcome,
    reason: str | None,
    now: datetime,
) -> None:
    """Set the outcome of the offer ``hop`` and cancel its deadlines."""
    row = session.exec(
        select(OaoDispatch).where(OaoDispatch.order_id == order_id, OaoDispatch.hop == hop)
    ).first()
    if row is not None and row.outcome == DispatchOutcome.PENDING.value:
        row.outcome, row.outcome_reason, row.outcome_at = outcome.value, reason, now
        session.add(row)
    deadlines.disarm(session, order_id, hop)


def accept(session: Session, principal: Principal, order_id: str, now: datetime) -> OaoOrder:
    """Accept an offered order; of two stores (or two clerks) at once exactly one wins.

    The win is a conditional UPDATE (status still dispatched, still offered to this
    store): the database lets exactly one such statement match the row.
    """
    order = _order_for_store(session, principal, order_id)
    store_id = _acting_store(principal, order)
    hop = order.hops
    won = (
        session.execute(
            update(OaoOrder)
            .where(
                OaoOrder.id == order.id,  # type: ignore[arg-type]
                OaoOrder.status == OrderStatus.DISPATCHED.value,  # type: ignore[arg-type]
                OaoOrder.store_id == store_id,  # type: ignore[arg-type]
                OaoOrder.hops == hop,
            )  # type: ignore[arg-type]
            .values(status=OrderStatus.ACCEPTED.value, accepted_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )  # type: ignore[attr-defined]
    session.refresh(order)
    if not won:
        if order.status == OrderStatus.ACCEPTED.value:
            raise Conflict(
                f"order {order.id} was already accepted by store {order.store_id}",
                code="already_accepted",
            )
        if order.status == OrderStatus.DISPATCHED.value:
            raise Conflict(
                f"order {order.id} is no longer offered to store {store_id}", code="offer_withdrawn"
            )
        raise states.IllegalTransition(order.id, order.status, OrderStatus.ACCEPTED.value)
    states.record(
        session,
        order.id,
        OrderStatus.DISPATCHED.value,
        OrderStatus.ACCEPTED,
        orders.actor_of(principal),
        f"accepted by store {store_id}",
        now,
    )
    _close_offer(session, order.id, hop, DispatchOutcome.ACCEPTED, None, now)
    if order.product == Product.BROADBAND_INSTALL.value:
        sheets.open_for(session, order, now)
    log.info("order accepted", extra={"order_id": order.id, "store_id": store_id})
    return order


def reject(
    session: Session, principal: Principal, order_id: str, reason: str, now: datetime
) -> OaoOrder:
    """A store declines the offer with a reason; the order goes to the next store."""
    if not reason.strip():
        raise Invalid("a rejection needs a reason", code="reason_required")
    order = _order_for_store(session, principal, order_id, for_update=True)
    store_id = _acting_store(principal, order)
    if order.status != OrderStatus.DISPATCHED.value:
        raise states.IllegalTransition(order.id, order.status, "rejected")
    if order.store_id != store_id:
        raise Conflict(
            f"order {order.id} is not offered to store {store_id}", code="offer_withdrawn"
        )
    _close_offer(session, order.id, order.hops, DispatchOutcome.REJECTED, reason, now)
    orders.dispatch(
        session, order, now, orders.actor_of(principal), cause=f"rejected by {store_id}: {reason}"
    )
    return order


def _advance(
    session: Session,
    principal: Principal,
    order_id: str,
    to: OrderStatus,
    reason: str,
    now: datetime,
) -> OaoOrder:
    """Move an accepted order along (in progress, completed, failed) for its store."""
    order = _order_for_store(session, principal, order_id, for_update=True)
    store_id = _acting_store(principal, order)
    if order.store_id != store_id:
        raise Conflict(f"order {order.id} belongs to another store", code="offer_withdrawn")
    states.move(session, order, to, orders.actor_of(principal), reason, now)
    if to in (OrderStatus.COMPLETED, OrderStatus.FAILED):
        order.finished_at = now
        session.add(order)
    return order


def start(session: Session, principal: Principal, order_id: str, now: datetime) -> OaoOrder:
    """The store starts work on an accepted order (visit under way)."""
    return _advance(session, principal, order_id, OrderStatus.IN_PROGRESS, "work started", now)


def complete(session: Session, principal: Principal, order_id: str, now: datetime) -> OaoOrder:
    """Activation done."""
    return _advance(session, principal, order_id, OrderStatus.COMPLETED, "activation done", now)


def fail(
    session: Session, principal: Principal, order_id: str, reason: str, now: datetime
) -> OaoOrder:
    """The store could not do it; the reason is kept."""
    if not reason.strip():
        raise Invalid("a failure needs a reason", code="reason_required")
    return _advance(session, principal, order_id, OrderStatus.FAILED, reason, now)


def redirect(
    session: Session, principal: Principal, order_id: str, store_id: str, reason: str, now: datetime
) -> OaoOrder:
    """Ops hand an escalated (or still offered) order to a named store of its region."""
    if principal.role not in (Role.ADMIN, Role.REGIONAL_OPS):
        raise NotFound(f"order {order_id!r} not found")
    order = orders.scoped_order(session, principal, order_id, for_update=True)
    store = session.get(Store, store_id)
    if store is None or store.region_id != order.region_id:
        raise Invalid(f"{store_id!r} is not a store of region {order.region_id}")
    states.check(order, OrderStatus.DISPATCHED)
    store_set = config.build_store_set(session, order.region_id, now)
    state = store_set.by_id[store_id]
    verdict = store_set.verdict(state, order.product, frozenset())
    if verdict.startswith("does not do"):
        raise Invalid(f"store {store_id} {verdict}", code="store_lacks_skill")
    if order.status == OrderStatus.DISPATCHED.value:
        _close_offer(session, order.id, order.hops, DispatchOutcome.WITHDRAWN, reason, now)
    distance = float(
        haversine_km(
            order.latitude, order.longitude, np.array([store.latitude]), np.array([store.longitude])
        )[0]
    )
    decision = Decision(
        store_id, "manual", f"ops redirected: {reason}", [Candidate(store_id, distance, verdict)]
    )
    order.escalation_reason = None
    orders.offer(session, order, decision, now, orders.actor_of(principal))
    return order
