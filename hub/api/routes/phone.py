"""The phone app's API: sign-in by one-time code, profile, erase, tokens, check-ins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlmodel import col, select

from hub.api.deps import ContextDep, PhoneCaller, PhoneSessionCaller, Public, SessionDep
from hub.api.fastpath import run_checkin
from hub.api.transactional import TransactionalRoute
from hub.models.checkins import Visit, VisitPublic
from hub.models.customers import (
    CustomerPublic,
    CustomerUpdate,
    OtpRequest,
    SessionIssued,
    SessionRequest,
)
from hub.services import checkins, customers, phone_auth
from storewave.wire import CheckinRequest, CheckinResponse, PhoneTokenResponse

router = APIRouter(prefix="/v1", tags=["phone app"], route_class=TransactionalRoute)
_bearer = HTTPBearer(auto_error=False)
# The phone's own recent visits: a screenful.
MY_VISITS_LIMIT = 50
_REFUSALS = {
    401: {"description": "Missing, unknown, expired or revoked session"},
    403: {
        "description": "Check-in refused: `code` says why (microphone_not_accepted, "
        "bad_code, store_closed, impossible_travel, ...)"
    },
    429: {"description": "Rate limited: see Retry-After"},
}


class OtpSent(BaseModel):
    """A code was queued for SMS."""

    expires_at: str


@router.post(
    "/phone/otp",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Public],
    responses={429: {"description": "Too many codes for this number"}},
)
def request_code(ctx: ContextDep, session: SessionDep, body: OtpRequest) -> OtpSent:
    """Send a one-time sign-in code by SMS (register and log in are the same step)."""
    expires = phone_auth.request_otp(session, ctx.crypto, ctx.clock, body.phone)
    return OtpSent(expires_at=expires.isoformat())


@router.post(
    "/phone/session",
    response_model=SessionIssued,
    dependencies=[Public],
    responses={401: {"description": "Wrong or expired code"}},
)
def sign_in(ctx: ContextDep, session: SessionDep, body: SessionRequest) -> SessionIssued:
    """Exchange the SMS code for a session token (creates the customer on first sign-in)."""
    token, customer, expires, new = phone_auth.open_session(
        session, ctx.crypto, ctx.clock, body.phone, body.code, body.device_id
    )
    return SessionIssued(token=token, customer_id=customer.id, expires_at=expires, new_customer=new)


@router.delete("/phone/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(
    ctx: ContextDep,
    session: SessionDep,
    _: PhoneCaller,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Revoke this session's token."""
    if credentials is not None:
        phone_auth.close_session(session, ctx.crypto, ctx.clock, credentials.credentials)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=CustomerPublic)
def get_me(session: SessionDep, caller: PhoneCaller) -> CustomerPublic:
    """The signed-in customer's profile, consents and tags."""
    return customers.to_public(session, customers.get_customer(session, caller.customer_id or ""))


@router.patch("/me", response_model=CustomerPublic)
def update_me(
    ctx: ContextDep, session: SessionDep, caller: PhoneCaller, body: CustomerUpdate
) -> CustomerPublic:
    """Change attributes and consents; accepting microphone use records the disclosure shown."""
    customer = customers.get_customer(session, caller.customer_id or "")
    customers.update_customer(session, customer, body, ctx.clock.now())
    return customers.to_public(session, customer)


@router.delete("/me", status_code=status.HTTP_200_OK)
def erase_me(session: SessionDep, caller: PhoneCaller) -> dict[str, int]:
    """Erase my data: phone, attributes, tags, sessions go; visits stay as anonymous counts."""
    customer = customers.get_customer(session, caller.customer_id or "")
    return {"visits_kept_anonymous": customers.erase_customer(session, customer)}


@router.get("/me/visits", response_model=list[VisitPublic])
def my_visits(session: SessionDep, caller: PhoneCaller) -> Sequence[VisitPublic]:
    """The signed-in customer's recent visits with their zone paths."""
    visits = session.exec(
        select(Visit)
        .where(Visit.customer_id == caller.customer_id)
        .order_by(col(Visit.started_at).desc())
        .limit(MY_VISITS_LIMIT)
    ).all()
    return [
        VisitPublic.model_validate(
            {**v.model_dump(), "zone_path": checkins.zone_path(session, v.id)}
        )
        for v in visits
    ]


@router.post("/phone/tokens", response_model=PhoneTokenResponse, status_code=201)
def new_token(ctx: ContextDep, session: SessionDep, caller: PhoneCaller) -> PhoneTokenResponse:
    """A short-lived 48-bit token to play so the store's node (and kiosk) can identify me."""
    return checkins.issue_phone_token(session, ctx.clock, caller.customer_id or "")


@router.post("/checkins", response_model=CheckinResponse, responses=_REFUSALS)
async def check_in(ctx: ContextDep, caller: PhoneSessionCaller, body: CheckinRequest) -> Response:
    """Check in with a beacon code the phone heard (verified against the slot window).

    Refused with 403 ``microphone_not_accepted`` until the customer has accepted the
    microphone-use disclosure (``PATCH /v1/me``).
    """
    # A well-formed request from a phone session never gets here: hub.api.fastpath serves
    # it ahead of the routing with the same run_checkin. This route answers the rest
    # (401/403 for other callers, 422 for bad bodies) and documents the endpoint.
    # One threadpool call holds the whole transaction (authentication included, see
    # PhoneSessionCaller); the result is already a validated wire model, serialised once.
    payload = await run_in_threadpool(run_checkin, ctx, caller, body)
    return Response(payload, media_type="application/json")
