"""OAO order endpoints: channel intake, store actions, ops redirect, policies, store profiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from hub.api.deps import ContextDep, Operators, PageOffset, SessionDep, StoreStaff
from hub.models.oao import (
    OaoOrder,
    OrderAction,
    OrderCreate,
    OrderHistory,
    OrderPublic,
    OrderRedirect,
    OrderStatus,
    PolicyPublic,
    PolicyUpdate,
    StoreProfilePublic,
    StoreProfileUpdate,
)
from hub.services.auth import scoped_store
from hub.services.errors import NotFound
from hub.services.oao import actions, config, orders
from hub.services.oao import sla as _sla  # noqa: F401  (registers the SLA timer handlers)

router = APIRouter(prefix="/v1", tags=["oao"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
# Orders per POST /v1/orders/batch: one transaction holds the SQLite write lock well
# under a second for this many (the bench takes 10,000 in bursts of 500).
MAX_BATCH = 1_000
_409 = {409: {"description": "Illegal transition, already accepted, or offer withdrawn"}}


@router.post(
    "/orders",
    response_model=OrderPublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "A retry of an order already received"}, **_409},
)
def create_order(
    ctx: ContextDep,
    session: SessionDep,
    principal: Operators,
    body: OrderCreate,
    response: Response,
) -> OaoOrder:
    """Receive a channel's order and dispatch it at once (idempotent by client_order_key).

    An order no store can take is kept and put in the escalation queue (status escalated,
    with the reason) rather than refused: nothing the channel sent is lost.
    """
    order, created = orders.create_order(session, principal, body, ctx.clock.now())
    if not created:
        response.status_code = status.HTTP_200_OK
    return order


@router.post(
    "/orders/batch",
    response_model=list[OrderPublic],
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Every order of the batch was a retry of one already received"},
        **_404,
        **_409,
    },
)
def create_orders(
    ctx: ContextDep,
    session: SessionDep,
    principal: Operators,
    body: Annotated[list[OrderCreate], Body(min_length=1, max_length=MAX_BATCH)],
    response: Response,
) -> list[OaoOrder]:
    """Receive a channel's burst (up to 1,000 orders) and dispatch each, in one transaction.

    Same rules and outcome as one ``POST /v1/orders`` per order, in the given order (each
    order sees the store loads the ones before it left); the answer lists the orders in
    the same order. A resent client key (earlier or twice in the batch) gives the first
    order. A bad order (unknown region or customer, a key reused for another order) fails
    the whole batch with an error naming it, and nothing of it is stored.
    """
    results = orders.create_orders(session, principal, body, ctx.clock.now())
    if not any(created for _, created in results):
        response.status_code = status.HTTP_200_OK
    return orders.orders_by_id(session, [order_id for order_id, _ in results])


@router.get("/orders", response_model=list[OrderPublic])
def list_orders(
    session: SessionDep,
    principal: StoreStaff,
    status: OrderStatus | None = None,
    offset: PageOffset = 0,
) -> Sequence[OaoOrder]:
    """Orders in scope (``status=escalated`` is the escalation queue)."""
    return orders.list_orders(session, principal, status, offset)


@router.get("/orders/{order_id}", response_model=OrderPublic, responses=_404)
def get_order(session: SessionDep, principal: StoreStaff, order_id: str) -> OaoOrder:
    """One order."""
    return orders.scoped_order(session, principal, order_id)


@router.get("/orders/{order_id}/history", response_model=OrderHistory, responses=_404)
def order_history(session: SessionDep, principal: StoreStaff, order_id: str) -> OrderHistory:
    """Every dispatch decision (candidates, reason) and every audited transition."""
    return orders.history(session, orders.scoped_order(session, principal, order_id))


@router.post("/orders/{order_id}/accept", response_model=OrderPublic, responses={**_404, **_409})
def accept_order(
    ctx: ContextDep, session: SessionDep, principal: StoreStaff, order_id: str
) -> OaoOrder:
    """The offered store accepts; once accepted no other store can take the order."""
    return actions.accept(session, principal, order_id, ctx.clock.now())


@router.post("/orders/{order_id}/reject", response_model=OrderPublic, responses={**_404, **_409})
def reject_order(
    ctx: ContextDep, session: SessionDep, principal: StoreStaff, order_id: str, body: OrderAction
) -> OaoOrder:
    """The offered store declines with a reason; the order moves to the next store."""
    return actions.reject(session, principal, order_id, body.reason, ctx.clock.now())


@router.post("/orders/{order_id}/start", response_model=OrderPublic, responses={**_404, **_409})
def start_order(
    ctx: ContextDep, session: SessionDep, principal: StoreStaff, order_id: str
) -> OaoOrder:
    """Work on an accepted order has started."""
    return actions.start(session, principal, order_id, ctx.clock.now())


@router.post("/orders/{order_id}/complete", response_model=OrderPublic, responses={**_404, **_409})
def complete_order(
    ctx: ContextDep, session: SessionDep, principal: StoreStaff, order_id: str
) -> OaoOrder:
    """Activation done."""
    return actions.complete(session, principal, order_id, ctx.clock.now())


@router.post("/orders/{order_id}/fail", response_model=OrderPublic, responses={**_404, **_409})
def fail_order(
    ctx: ContextDep, session: SessionDep, principal: StoreStaff, order_id: str, body: OrderAction
) -> OaoOrder:
    """The store could not do it (reason required)."""
    return actions.fail(session, principal, order_id, body.reason, ctx.clock.now())


@router.post("/orders/{order_id}/redirect", response_model=OrderPublic, responses={**_404, **_409})
def redirect_order(
    ctx: ContextDep, session: SessionDep, principal: Operators, order_id: str, body: OrderRedirect
) -> OaoOrder:
    """Ops give an escalated (or waiting) order to a named store of its region."""
    return actions.redirect(
        session, principal, order_id, body.store_id, body.reason, ctx.clock.now()
    )


@router.get("/oao/policies/{region_id}", response_model=PolicyPublic, responses=_404)
def get_policy(session: SessionDep, principal: Operators, region_id: str) -> PolicyPublic:
    """The region's dispatch policy and SLA (defaults when never set)."""
    if not principal.sees_region(region_id):
        raise NotFound(f"region {region_id!r} not found")
    return PolicyPublic.model_validate(config.get_policy(session, region_id))


@router.put("/oao/policies/{region_id}", response_model=PolicyPublic, responses=_404)
def put_policy(
    session: SessionDep, principal: Operators, region_id: str, body: PolicyUpdate
) -> PolicyPublic:
    """Set the region's dispatch mode, channel rules, SLA minutes, hop limit, distance cap."""
    return PolicyPublic.model_validate(config.put_policy(session, principal, region_id, body))


@router.get("/oao/stores/{store_id}/profile", response_model=StoreProfilePublic, responses=_404)
def get_profile(session: SessionDep, principal: StoreStaff, store_id: str) -> StoreProfilePublic:
    """The store's OAO skills, order capacity and paired installer."""
    scoped_store(session, principal, store_id)
    return StoreProfilePublic.model_validate(config.get_profile(session, store_id))


@router.put("/oao/stores/{store_id}/profile", response_model=StoreProfilePublic, responses=_404)
def put_profile(
    session: SessionDep, principal: Operators, store_id: str, body: StoreProfileUpdate
) -> StoreProfilePublic:
    """Set the store's skills, order capacity and paired installer key."""
    return StoreProfilePublic.model_validate(config.put_profile(session, principal, store_id, body))
