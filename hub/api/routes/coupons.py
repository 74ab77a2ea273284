"""Coupons: templates and code pools (operators), redemption and reversal (store), my coupons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlmodel import Session

from hub.api.deps import ClockDep, Operators, PhoneCaller, SessionDep, StoreStaff, require
from hub.models.auth import Role
from hub.models.coupons import (
    Coupon,
    CouponEvent,
    CouponEventPublic,
    CouponPublic,
    CouponTemplate,
    CouponTemplateCreate,
    CouponTemplatePublic,
    IssueRequest,
    PoolImport,
    PoolImported,
    RedeemRequest,
    ReverseRequest,
    VoidRequest,
)
from hub.services import coupon_templates, coupons
from hub.services.auth import Principal
from hub.services.customers import get_customer
from hub.services.errors import NotFound

router = APIRouter(prefix="/v1", tags=["coupons"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
_409 = {409: {"description": "The coupon is not in a state that allows this (`code` says which)"}}
Redeemers = Annotated[
    Principal, Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.STORE_STAFF, Role.KIOSK))
]


@router.get("/coupon-templates", response_model=list[CouponTemplatePublic])
def list_templates(session: SessionDep, principal: Operators) -> Sequence[CouponTemplate]:
    """Coupon templates in the caller's scope."""
    return coupon_templates.list_templates(session, principal)


@router.post(
    "/coupon-templates", response_model=CouponTemplatePublic, status_code=status.HTTP_201_CREATED
)
def create_template(
    session: SessionDep, clock: ClockDep, principal: Operators, body: CouponTemplateCreate
) -> CouponTemplate:
    """A coupon template: value / percent / free item, minimum spend, validity, stores."""
    return coupon_templates.create_template(session, principal, body, clock.now())


@router.post("/coupon-templates/{template_id}/pool", response_model=PoolImported, responses=_404)
def import_pool(
    session: SessionDep, clock: ClockDep, principal: Operators, template_id: str, body: PoolImport
) -> PoolImported:
    """Import pre-made codes; issuing uses them before generating new ones."""
    template = coupon_templates.get_template(session, principal, template_id)
    return coupon_templates.import_pool(session, template, body.codes, clock.now())


@router.post(
    "/coupon-templates/{template_id}/issue",
    response_model=CouponPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_404,
)
def issue_coupon(
    session: SessionDep, clock: ClockDep, principal: Operators, template_id: str, body: IssueRequest
) -> Coupon:
    """Give a customer a coupon by hand (service recovery, a complaint)."""
    template = coupon_templates.get_template(session, principal, template_id)
    customer = get_customer(session, body.customer_id)
    return coupons.issue(
        session, template, customer.id, clock.now(), actor=coupons.actor_of(principal)
    )


@router.post("/coupons/redeem", response_model=CouponPublic, responses={**_404, **_409})
def redeem(
    session: SessionDep,
    clock: ClockDep,
    principal: Redeemers,
    body: RedeemRequest,
    response: Response,
) -> Coupon:
    """Redeem a code at the caller's store, once; a retry with the same client_key replays."""
    coupon, replayed = coupons.redeem(session, principal, body, clock.now())
    response.headers["Idempotent-Replayed"] = "true" if replayed else "false"
    return coupon


@router.post(
    "/coupons/{coupon_id}/reverse", response_model=CouponPublic, responses={**_404, **_409}
)
def reverse(
    session: SessionDep,
    clock: ClockDep,
    principal: StoreStaff,
    coupon_id: str,
    body: ReverseRequest,
) -> Coupon:
    """Undo a redemption (refund, till error), with a reason in the audit trail."""
    coupon, _ = coupons.reverse(session, principal, coupon_id, body, clock.now())
    return coupon


@router.post("/coupons/{coupon_id}/void", response_model=CouponPublic, responses={**_404, **_409})
def void(
    session: SessionDep, clock: ClockDep, principal: Operators, coupon_id: str, body: VoidRequest
) -> Coupon:
    """Void an unredeemed coupon for good."""
    _scoped_coupon(session, principal, coupon_id)
    return coupons.void(session, principal, coupon_id, body.reason, clock.now())


@router.get("/coupons/{coupon_id}/events", response_model=list[CouponEventPublic], responses=_404)
def coupon_events(
    session: SessionDep, principal: Operators, coupon_id: str
) -> Sequence[CouponEvent]:
    """A coupon's audit trail: issued, redeemed, reversed, voided, expired; who and why."""
    _scoped_coupon(session, principal, coupon_id)
    return coupons.history(session, coupon_id)


def _scoped_coupon(session: Session, principal: Principal, coupon_id: str) -> Coupon:
    """The coupon if its template is in the caller's scope."""
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("coupon not found")
    coupon_templates.get_template(session, principal, coupon.template_id)
    return coupon


@router.get("/me/coupons", response_model=list[CouponPublic])
def my_coupons(session: SessionDep, caller: PhoneCaller) -> Sequence[Coupon]:
    """My coupons, newest first."""
    return coupons.customer_coupons(session, caller.customer_id or "")
