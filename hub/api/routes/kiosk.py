"""Kiosk endpoints: the customer at the kiosk (wallet, trials, order pickup), the counter queue,
visit ratings and their report."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, status

from hub.api.deps import ClockDep, ContextDep, SessionDep, require
from hub.api.routes.analytics import DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS
from hub.models.auth import Role
from hub.models.customers import Customer
from hub.models.kiosk import (
    KioskCustomerRef,
    KioskTrialStart,
    KioskWallet,
    PickupPublic,
    PickupRequest,
    RatingCreate,
    RatingPublic,
    RatingReportRow,
    ServiceStanding,
    TicketCalled,
    TicketIssued,
    TicketRequest,
    VisitRating,
)
from hub.models.registry import Store
from hub.models.services_catalogue import Trial, TrialPublic
from hub.services import kiosk
from hub.services.analytics import Period
from hub.services.auth import Principal, scoped_store
from hub.services.errors import Invalid

router = APIRouter(prefix="/v1", tags=["kiosk"])
_404 = {404: {"description": "Unknown customer, or a store outside the caller's scope"}}
_403 = {403: {"description": "The customer is not at this kiosk (code not_at_kiosk)"}}
Counter = Annotated[Principal, Depends(require(Role.ADMIN, Role.STORE_STAFF, Role.KIOSK))]
Kiosks = Annotated[Principal, Depends(require(Role.ADMIN, Role.KIOSK))]
Staff = Annotated[Principal, Depends(require(Role.ADMIN, Role.STORE_STAFF))]
RatingReaders = Annotated[
    Principal, Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.STORE_STAFF))
]
# The phone session the kiosk holds after a number + code sign-in (none for token presence).
PhoneSessionHeader = Annotated[
    str | None,
    Header(alias="X-Customer-Session", max_length=200,
           description="The customer's phone session (sws_...) after a number + code sign-in"),
]


def _customer_here(ctx: ContextDep, session: SessionDep, principal: Principal, store_id: str,
                   customer_id: str, phone_session: str | None) -> tuple[Store, Customer]:
    """Scope the store, then require the customer at its kiosk."""
    store = scoped_store(session, principal, store_id)
    return store, kiosk.customer_at_kiosk(session, ctx.crypto, ctx.clock, store, customer_id,
                                          phone_session)


@router.get("/stores/{store_id}/kiosk/customers/{customer_id}/wallet",
            response_model=KioskWallet, responses={**_403, **_404})
def customer_wallet(ctx: ContextDep, session: SessionDep, principal: Kiosks, store_id: str,
                    customer_id: str, phone_session: PhoneSessionHeader = None) -> KioskWallet:
    """Points and coupons of the customer at the kiosk (phone session or token heard here)."""
    _, customer = _customer_here(ctx, session, principal, store_id, customer_id, phone_session)
    return kiosk.wallet(session, customer)


@router.get("/stores/{store_id}/kiosk/customers/{customer_id}/services",
            response_model=list[ServiceStanding], responses={**_403, **_404})
def customer_services(
    ctx: ContextDep, session: SessionDep, principal: Kiosks, store_id: str, customer_id: str,
    phone_session: PhoneSessionHeader = None,
) -> list[ServiceStanding]:
    """Where the customer at the kiosk stands with each service (try, on trial, subscribed)."""
    _, customer = _customer_here(ctx, session, principal, store_id, customer_id, phone_session)
    return kiosk.service_standing(session, customer)


@router.post("/stores/{store_id}/kiosk/trials", response_model=TrialPublic,
             status_code=status.HTTP_201_CREATED, responses={**_403, **_404})
def start_trial(ctx: ContextDep, session: SessionDep, principal: Kiosks, store_id: str,
                body: KioskTrialStart, phone_session: PhoneSessionHeader = None) -> Trial:
    """The customer at the kiosk starts a free trial (channel kiosk; ARC checks eligibility)."""
    store, customer = _customer_here(ctx, session, principal, store_id, body.customer_id,
                                     phone_session)
    return kiosk.start_trial(session, store, customer, body, ctx.clock.now())


@router.post("/stores/{store_id}/kiosk/trials/{trial_id}/convert", response_model=TrialPublic,
             responses={**_403, **_404})
def convert_trial(ctx: ContextDep, session: SessionDep, principal: Kiosks, store_id: str,
                  trial_id: str, body: KioskCustomerRef,
                  phone_session: PhoneSessionHeader = None) -> Trial:
    """The customer at the kiosk keeps their trial service, paid (channel kiosk)."""
    _, customer = _customer_here(ctx, session, principal, store_id, body.customer_id,
                                 phone_session)
    return kiosk.convert_trial(session, customer, trial_id, ctx.clock.now())


@router.post("/stores/{store_id}/kiosk/pickups", response_model=PickupPublic,
             responses={**_403, **_404})
def pick_up(ctx: ContextDep, session: SessionDep, principal: Kiosks, store_id: str,
            body: PickupRequest, phone_session: PhoneSessionHeader = None) -> PickupPublic:
    """The customer at the kiosk checks in for their online order ready at this store."""
    store, customer = _customer_here(ctx, session, principal, store_id, body.customer_id,
                                     phone_session)
    return kiosk.pick_up(session, principal, store, customer, body.order_code, ctx.clock.now())


@router.post(
    "/stores/{store_id}/queue-tickets",
    response_model=TicketIssued,
    status_code=status.HTTP_201_CREATED,
    responses=_404,
)
def take_ticket(
    session: SessionDep, clock: ClockDep, principal: Counter, store_id: str, body: TicketRequest
) -> TicketIssued:
    """The next counter ticket, with how many are ahead and the estimated wait."""
    store = scoped_store(session, principal, store_id)
    return kiosk.take_ticket(session, store, body.customer_id, clock.now())


@router.post("/stores/{store_id}/queue-tickets/call-next", response_model=TicketCalled,
             responses=_404)
def call_next(session: SessionDep, clock: ClockDep, principal: Staff,
              store_id: str) -> TicketCalled:
    """Staff call the next waiting ticket to the counter (number null when nobody waits)."""
    store = scoped_store(session, principal, store_id)
    return kiosk.call_next(session, store, clock.now())


@router.post(
    "/stores/{store_id}/visit-ratings",
    response_model=RatingPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_404,
)
def rate_visit(
    session: SessionDep, clock: ClockDep, principal: Kiosks, store_id: str, body: RatingCreate
) -> VisitRating:
    """A 1-5 rating of today's visit with an optional comment (feeds service analytics)."""
    store = scoped_store(session, principal, store_id)
    return kiosk.rate_visit(session, store, body, clock.now())


@router.get("/analytics/visit-ratings", response_model=list[RatingReportRow])
def rating_report(session: SessionDep, clock: ClockDep, principal: RatingReaders,
                  start: date | None = None, end: date | None = None,
                  store_id: str | None = None) -> list[RatingReportRow]:
    """Visit ratings per store and local day (default: the last week); small groups: count only."""
    end = end or clock.now().date()
    start = start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if end < start or (end - start).days > MAX_PERIOD_DAYS:
        raise Invalid(f"need start <= end within {MAX_PERIOD_DAYS} days")
    return kiosk.rating_report(session, principal, Period(start, end), store_id)
