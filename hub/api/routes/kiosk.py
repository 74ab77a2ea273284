"""Kiosk endpoints: take a queue ticket for the counter, rate today's visit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from hub.api.deps import ClockDep, SessionDep, require
from hub.models.auth import Role
from hub.models.kiosk import RatingCreate, RatingPublic, TicketIssued, TicketRequest, VisitRating
from hub.services import kiosk
from hub.services.auth import Principal, scoped_store

router = APIRouter(prefix="/v1", tags=["kiosk"])
_404 = {404: {"description": "Unknown customer, or a store outside the caller's scope"}}
Counter = Annotated[Principal, Depends(require(Role.ADMIN, Role.STORE_STAFF, Role.KIOSK))]
Kiosks = Annotated[Principal, Depends(require(Role.ADMIN, Role.KIOSK))]


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
