"""Orders from online channels: idempotent intake, dispatch with a recorded decision, escalation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hub.models.auth import Role
from hub.models.customers import Customer
from hub.models.oao import (
    DispatchOutcome,
    OaoDispatch,
    OaoOrder,
    OaoRegionPolicy,
    OaoTransition,
    OrderCreate,
    OrderHistory,
    OrderPublic,
    OrderStatus,
)
from hub.models.registry import Alert, Region
from hub.models.types import new_id
from hub.services.auth import REGION_ROLES, STORE_ROLES, Principal
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.oao import config, deadlines, states
from hub.services.oao.dispatch import Decision, DispatchRequest, NoEligibleStore

log = logging.getLogger(__name__)

# Fields that must match when a channel resends a client order key (a true retry).
_IDENTITY_FIELDS = ("channel", "product", "region_id", "customer_id", "latitude", "longitude")
MAX_PAGE = 500
ALERT_NO_STORE = "oao_no_store"
ALERT_ESCALATED = "oao_escalated"


def actor_of(principal: Principal) -> str:
    """The audit name of a caller: role, then store/region, then key (never a person's name)."""
    scope = principal.store_id or principal.region_id or "-"
    return f"{principal.role.value}:{scope}:{principal.key_id or '-'}"


def create_order(
    session: Session, principal: Principal, spec: OrderCreate, now: datetime
) -> tuple[OaoOrder, bool]:
    """Take a channel's order and dispatch it; a resent client key returns the first order.

    Returns (order, created). A key reused for a different order is a Conflict.
    """
    if session.get(Region, spec.region_id) is None or not principal.sees_region(spec.region_id):
        raise NotFound(f"region {spec.region_id!r} not found")
    if spec.customer_id is not None and session.get(Customer, spec.customer_id) is None:
        raise Invalid(f"customer {spec.customer_id!r} does not exist", code="unknown_customer")
    existing = _by_key(session, spec.client_order_key)
    if existing is not None:
        return _same_order(existing, spec), False
    order = OaoOrder.model_validate(
        {
            **spec.model_dump(),
            "id": new_id("ord"),
            "created_at": now,
            "status": OrderStatus.RECEIVED.value,
        }
    )
    try:
        with session.begin_nested():
            session.add(order)
    except IntegrityError:
        # The same key arrived twice at once: the other request's order stands.
        found = _by_key(session, spec.client_order_key)
        if found is None:
            raise
        return _same_order(found, spec), False
    states.record(
        session,
        order.id,
        None,
        OrderStatus.RECEIVED,
        actor_of(principal),
        f"from channel {spec.channel.value}",
        now,
    )
    dispatch(session, order, now, actor="system:dispatch")
    log.info("order received", extra={"order_id": order.id, "channel": order.channel})
    return order, True


def _by_key(session: Session, key: str) -> OaoOrder | None:
    """The order with this client order key."""
    return session.exec(select(OaoOrder).where(OaoOrder.client_order_key == key)).first()


def _same_order(existing: OaoOrder, spec: OrderCreate) -> OaoOrder:
    """``existing`` if ``spec`` is a retry of it, else Conflict."""
    for name in _IDENTITY_FIELDS:
        if getattr(existing, name) != getattr(spec, name):
            raise Conflict(
                f"client_order_key {spec.client_order_key!r} was used for another "
                f"order ({name} differs)",
                code="client_key_reused",
            )
    return existing


def excluded_stores(session: Session, order_id: str) -> frozenset[str]:
    """Stores that declined the order or let it time out: never offered it again."""
    rows = session.exec(
        select(OaoDispatch.store_id).where(
            OaoDispatch.order_id == order_id,
            col(OaoDispatch.outcome).in_(
                (DispatchOutcome.REJECTED.value, DispatchOutcome.TIMED_OUT.value)
            ),
        )
    ).all()
    return frozenset(s for s in rows if s)


def dispatch(
    session: Session, order: OaoOrder, now: datetime, actor: str, cause: str = ""
) -> Decision | None:
    """Offer the order to the store its region's policy picks, or escalate; record why.

    ``cause`` (why it is dispatched again: a rejection, a timeout) heads the audit reason.
    Returns the decision, or None when the order went to the escalation queue.
    """
    lead = f"{cause}; " if cause else ""
    policy = config.get_policy(session, order.region_id)
    if order.hops >= policy.hop_limit:
        escalate(
            session,
            order,
            now,
            actor,
            f"{lead}hop limit {policy.hop_limit} reached without a store accepting",
        )
        return None
    store_set = config.build_store_set(session, order.region_id, now)
    request = DispatchRequest(
        order.latitude, order.longitude, order.product, order.channel, order.directed_store_id
    )
    try:
        excluded = excluded_stores(session, order.id) if order.hops else frozenset()
        decision = store_set.choose(request, config.policy_view(policy), excluded)
    except NoEligibleStore as exc:
        _record(session, order, exc.decision, now, DispatchOutcome.WITHDRAWN)
        nearest = next(
            (c.store_id for c in exc.decision.candidates if c.store_id in store_set.by_id), None
        )
        escalate(
            session,
            order,
            now,
            actor,
            f"{lead}no eligible store: {exc.decision.reason}",
            alert_kind=ALERT_NO_STORE,
            alert_store=nearest,
        )
        return None
    assert decision.store_id is not None  # choose() raises rather than return no store
    offer(session, order, decision, now, actor, cause, policy)
    return decision


def offer(
    session: Session,
    order: OaoOrder,
    decision: Decision,
    now: datetime,
    actor: str,
    cause: str = "",
    policy: OaoRegionPolicy | None = None,
) -> None:
    """Give the order to ``decision.store_id``: move, record, arm the SLA timers."""
    assert decision.store_id is not None
    previous = order.store_id
    states.move(
        session,
        order,
        OrderStatus.DISPATCHED,
        actor,
        (f"{cause}; " if cause else "")
        + f"{decision.policy}: {decision.reason}"
        + (f" (was {previous})" if previous else ""),
        now,
    )
    order.store_id = decision.store_id
    order.hops += 1
    order.dispatched_at = now
    session.add(order)
    _record(session, order, decision, now, DispatchOutcome.PENDING)
    region_policy = policy or config.get_policy(session, order.region_id)
    deadlines.arm(
        session, region_policy, order.id, order.priority, order.hops, decision.store_id, now
    )


def _record(
    session: Session, order: OaoOrder, decision: Decision, now: datetime, outcome: DispatchOutcome
) -> None:
    """Keep the decision: chosen store, policy, reason and every candidate's verdict."""
    session.add(
        OaoDispatch(
            order_id=order.id,
            hop=order.hops,
            store_id=decision.store_id,
            policy=decision.policy,
            reason=decision.reason[:500],
            candidates=decision.candidate_dicts(),
            decided_at=now,
            outcome=outcome.value,
            outcome_at=None if outcome is DispatchOutcome.PENDING else now,
        )
    )


def escalate(
    session: Session,
    order: OaoOrder,
    now: datetime,
    actor: str,
    reason: str,
    alert_kind: str = ALERT_ESCALATED,
    alert_store: str | None = None,
) -> None:
    """Send the order to a person (the escalation queue) and alert the region's ops."""
    states.move(session, order, OrderStatus.ESCALATED, actor, reason, now)
    order.escalation_reason = reason[:500]
    store_for_alert = alert_store or order.store_id
    order.store_id = None
    session.add(order)
    session.add(
        Alert(
            kind=alert_kind,
            store_id=store_for_alert,
            detail=f"order {order.id} (region {order.region_id}) escalated: {reason}"[:500],
            created_at=now,
        )
    )
    log.warning("order escalated", extra={"order_id": order.id, "region_id": order.region_id})


def scoped_order(
    session: Session, principal: Principal, order_id: str, *, for_update: bool = False
) -> OaoOrder:
    """An order the caller may see (locked for update if asked), else NotFound."""
    query = select(OaoOrder).where(OaoOrder.id == order_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    order = session.exec(query).first()
    if order is None or not _sees(principal, order):
        raise NotFound(f"order {order_id!r} not found")
    return order


def _sees(principal: Principal, order: OaoOrder) -> bool:
    """Admins see all; ops their region; store staff the orders offered to their store."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role in REGION_ROLES:
        return principal.role is Role.REGIONAL_OPS and order.region_id == principal.region_id
    if principal.role in STORE_ROLES:
        return order.store_id is not None and order.store_id == principal.store_id
    return False


def list_orders(
    session: Session, principal: Principal, status: OrderStatus | None, offset: int = 0
) -> Sequence[OaoOrder]:
    """Orders in the caller's scope, newest first (``status=escalated``: the queue)."""
    query = select(OaoOrder).order_by(col(OaoOrder.created_at).desc(), col(OaoOrder.id).desc())
    if principal.role is Role.REGIONAL_OPS:
        query = query.where(OaoOrder.region_id == principal.region_id)
    elif principal.role in STORE_ROLES:
        query = query.where(OaoOrder.store_id == principal.store_id)
    elif principal.role is not Role.ADMIN:
        return []
    if status is not None:
        query = query.where(OaoOrder.status == status.value)
    return session.exec(query.offset(offset).limit(MAX_PAGE)).all()


def history(session: Session, order: OaoOrder) -> OrderHistory:
    """The order with every dispatch decision and every audited transition, in order."""
    dispatches = session.exec(
        select(OaoDispatch).where(OaoDispatch.order_id == order.id).order_by(col(OaoDispatch.id))
    ).all()
    transitions = session.exec(
        select(OaoTransition)
        .where(OaoTransition.order_id == order.id)
        .order_by(col(OaoTransition.id))
    ).all()
    return OrderHistory.model_validate(
        {
            "order": OrderPublic.model_validate(order),
            "dispatches": [d.model_dump() for d in dispatches],
            "transitions": [t.model_dump() for t in transitions],
        }
    )
