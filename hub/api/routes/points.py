"""Reward points: my balance and ledger, spend at a store, admin adjustments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from hub.api.deps import AdminOnly, ClockDep, PhoneCaller, SessionDep, require
from hub.models.auth import Role
from hub.models.points import (
    PointsAdjust,
    PointsBalance,
    PointsEntryPublic,
    PointsKind,
    PointsSpend,
)
from hub.services import points
from hub.services.auth import Principal, scoped_store
from hub.services.coupons import actor_of
from hub.services.customers import get_customer

router = APIRouter(prefix="/v1", tags=["points"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
_409 = {409: {"description": "Not enough points, or the client_key was used for another move"}}
Tills = Annotated[Principal, Depends(require(Role.ADMIN, Role.STORE_STAFF, Role.KIOSK))]


def _balance(session: SessionDep, customer_id: str) -> PointsBalance:
    """Balance plus the newest ledger lines."""
    return PointsBalance(
        customer_id=customer_id,
        balance=points.balance(session, customer_id),
        entries=[
            PointsEntryPublic.model_validate(e, from_attributes=True)
            for e in points.recent(session, customer_id)
        ],
    )


@router.get("/me/points", response_model=PointsBalance)
def my_points(session: SessionDep, caller: PhoneCaller) -> PointsBalance:
    """My points balance and recent ledger lines."""
    return _balance(session, caller.customer_id or "")


@router.get("/customers/{customer_id}/points", response_model=PointsBalance, responses=_404)
def customer_points(session: SessionDep, _: AdminOnly, customer_id: str) -> PointsBalance:
    """A customer's balance and ledger."""
    return _balance(session, get_customer(session, customer_id).id)


@router.post(
    "/customers/{customer_id}/points/spend",
    response_model=PointsEntryPublic,
    responses={**_404, **_409},
)
def spend(
    session: SessionDep,
    clock: ClockDep,
    principal: Tills,
    customer_id: str,
    body: PointsSpend,
    response: Response,
) -> PointsEntryPublic:
    """Spend points at the caller's store; a retry with the same client_key replays."""
    store = scoped_store(session, principal, body.store_id)
    customer = get_customer(session, customer_id)
    entry, replayed = points.move(
        session,
        customer.id,
        PointsKind.SPEND,
        -body.points,
        f"spend:{body.client_key}",
        clock.now(),
        reason=body.reason or f"spent at {store.id}",
        actor=actor_of(principal),
    )
    response.headers["Idempotent-Replayed"] = "true" if replayed else "false"
    return PointsEntryPublic.model_validate(entry, from_attributes=True)


@router.post(
    "/customers/{customer_id}/points/adjust",
    response_model=PointsEntryPublic,
    responses={**_404, **_409},
)
def adjust(
    session: SessionDep,
    clock: ClockDep,
    principal: AdminOnly,
    customer_id: str,
    body: PointsAdjust,
) -> PointsEntryPublic:
    """Correct a balance up or down, with a reason (never below zero)."""
    customer = get_customer(session, customer_id)
    entry, _ = points.move(
        session,
        customer.id,
        PointsKind.ADJUST,
        body.points,
        f"adjust:{body.client_key}",
        clock.now(),
        reason=body.reason,
        actor=actor_of(principal),
    )
    return PointsEntryPublic.model_validate(entry, from_attributes=True)
