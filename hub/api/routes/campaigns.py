"""Campaigns: define, approve and run them, dry-run the rules, read decisions; kiosk sign-ins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from hub.api.deps import ClockDep, Operators, PageOffset, PhoneCaller, SessionDep, require
from hub.models.auth import Role
from hub.models.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignGrant,
    CampaignPublic,
    CampaignState,
    DryRunRequest,
    DryRunResult,
    GrantPublic,
    Transition,
)
from hub.services.auth import Principal, scoped_store
from hub.services.campaigns import hooks, inbox, lifecycle
from hub.services.customers import get_customer
from storewave.wire import Grant

router = APIRouter(prefix="/v1", tags=["campaigns"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
Kiosks = Annotated[Principal, Depends(require(Role.ADMIN, Role.KIOSK))]


class TransitionRequest(BaseModel):
    """One lifecycle step."""

    transition: Transition


class KioskSignin(BaseModel):
    """A customer identified at the kiosk (by the phone token its node heard)."""

    customer_id: str = Field(max_length=40)
    request_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


@router.get("/campaigns", response_model=list[CampaignPublic])
def list_campaigns(
    session: SessionDep, principal: Operators, state: CampaignState | None = None
) -> Sequence[Campaign]:
    """Campaigns in the caller's scope."""
    return lifecycle.list_campaigns(session, principal, state)


@router.post("/campaigns", response_model=CampaignPublic, status_code=status.HTTP_201_CREATED)
def create_campaign(
    session: SessionDep, clock: ClockDep, principal: Operators, body: CampaignCreate
) -> Campaign:
    """Define a campaign (starts as a draft)."""
    return lifecycle.create(session, principal, body, clock.now())


@router.get("/campaigns/{campaign_id}", response_model=CampaignPublic, responses=_404)
def get_campaign(session: SessionDep, principal: Operators, campaign_id: str) -> Campaign:
    """One campaign."""
    return lifecycle.get(session, principal, campaign_id)


@router.put("/campaigns/{campaign_id}", response_model=CampaignPublic, responses=_404)
def replace_campaign(
    session: SessionDep,
    clock: ClockDep,
    principal: Operators,
    campaign_id: str,
    body: CampaignCreate,
) -> Campaign:
    """Rewrite a draft campaign."""
    return lifecycle.replace(session, principal, campaign_id, body, clock.now())


@router.post("/campaigns/{campaign_id}/transitions", response_model=CampaignPublic, responses=_404)
def transition_campaign(
    session: SessionDep,
    clock: ClockDep,
    principal: Operators,
    campaign_id: str,
    body: TransitionRequest,
) -> Campaign:
    """approve (by someone other than the author), launch, pause, resume, end."""
    return lifecycle.transition(session, principal, campaign_id, body.transition, clock.now())


@router.post("/campaigns/{campaign_id}/dry-run", response_model=DryRunResult, responses=_404)
def dry_run(
    session: SessionDep,
    clock: ClockDep,
    principal: Operators,
    campaign_id: str,
    body: DryRunRequest,
) -> DryRunResult:
    """Who would qualify at a store and time, and why; grants nothing."""
    return lifecycle.dry_run(session, principal, campaign_id, body, clock.now())


@router.get("/campaigns/{campaign_id}/grants", response_model=list[GrantPublic], responses=_404)
def campaign_grants(
    session: SessionDep, principal: Operators, campaign_id: str, offset: PageOffset = 0
) -> Sequence[CampaignGrant]:
    """The campaign's decisions: granted, holdout, and capped (with the cap's name)."""
    return lifecycle.decisions(session, principal, campaign_id, offset)


@router.post("/stores/{store_id}/kiosk-signins", response_model=list[Grant], responses=_404)
def kiosk_signin(
    session: SessionDep, clock: ClockDep, principal: Kiosks, store_id: str, body: KioskSignin
) -> list[Grant]:
    """A customer signed in at the store's kiosk: kiosk-sign-in campaigns grant here."""
    store = scoped_store(session, principal, store_id)
    customer = get_customer(session, body.customer_id)
    return hooks.on_kiosk_signin(session, clock.now(), customer.id, store.id, body.request_id)


@router.get("/me/inbox", response_model=list[GrantPublic])
def my_inbox(session: SessionDep, caller: PhoneCaller, unseen: bool = False) -> list[GrantPublic]:
    """Everything campaigns gave me (check-ins, zone entries, kiosk), newest first."""
    return inbox.inbox(session, caller.customer_id or "", unseen_only=unseen)


@router.post("/me/inbox/{grant_id}/seen", response_model=GrantPublic, responses=_404)
def mark_seen(
    session: SessionDep, clock: ClockDep, caller: PhoneCaller, grant_id: str
) -> GrantPublic:
    """Mark one inbox item as read."""
    return inbox.mark_seen(session, caller.customer_id or "", grant_id, clock.now())


@router.get(
    "/stores/{store_id}/customers/{customer_id}/inbox",
    response_model=list[GrantPublic],
    responses=_404,
)
def kiosk_inbox(
    session: SessionDep, principal: Kiosks, store_id: str, customer_id: str
) -> list[GrantPublic]:
    """What a present customer was given in this store (the kiosk's customer screen)."""
    store = scoped_store(session, principal, store_id)
    return inbox.inbox(session, customer_id, store_id=store.id)
