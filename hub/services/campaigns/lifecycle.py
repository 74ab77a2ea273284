"""Campaign lifecycle (draft -> approved -> live <-> paused -> ended), scope, and dry runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from hub.models.auth import Role
from hub.models.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignGrant,
    CampaignState,
    DryRunRequest,
    DryRunResult,
    DryRunVerdict,
    Transition,
    Trigger,
)
from hub.models.coupons import CouponTemplate
from hub.models.customers import Customer
from hub.models.registry import Region, Store
from hub.models.timers import Timer
from hub.models.types import new_id
from hub.services.auth import Principal, scoped_store
from hub.services.campaigns import facts, rules
from hub.services.coupons import actor_of
from hub.services.errors import Conflict, Forbidden, Invalid, NotFound
from hub.services.timers import schedule, timer_handler

log = logging.getLogger(__name__)

S = CampaignState
# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[Transition, tuple[frozenset[CampaignState], CampaignState]] = {
    Transition.APPROVE: (frozenset({S.DRAFT}), S.APPROVED),
    Transition.LAUNCH: (frozenset({S.APPROVED}), S.LIVE),
    Transition.PAUSE: (frozenset({S.LIVE}), S.PAUSED),
    Transition.RESUME: (frozenset({S.PAUSED}), S.LIVE),
    Transition.END: (frozenset({S.DRAFT, S.APPROVED, S.LIVE, S.PAUSED}), S.ENDED),
}
END_TIMER = "campaign.end"
# A campaign's decisions list shows at most this many rows per page.
GRANTS_PAGE = 200


def _sees(principal: Principal, campaign: Campaign) -> bool:
    """Admins see every campaign; regional ops the campaigns of their region."""
    return principal.role is Role.ADMIN or (
        campaign.region_id is not None and principal.sees_region(campaign.region_id)
    )


def get(session: Session, principal: Principal, campaign_id: str) -> Campaign:
    """A campaign in the caller's scope, or NotFound."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or not _sees(principal, campaign):
        raise NotFound(f"campaign {campaign_id!r} not found")
    return campaign


def list_campaigns(
    session: Session, principal: Principal, state: CampaignState | None
) -> Sequence[Campaign]:
    """Campaigns in the caller's scope, optionally in one state."""
    query = select(Campaign).order_by(col(Campaign.created_at))
    if state is not None:
        query = query.where(Campaign.state == state.value)
    return [c for c in session.exec(query).all() if _sees(principal, c)]


def _check_spec(session: Session, principal: Principal, spec: CampaignCreate) -> None:
    """Scope and references: region, stores, template all exist and are the caller's."""
    if principal.role is not Role.ADMIN and spec.region_id != principal.region_id:
        raise NotFound(f"region {spec.region_id!r} not found")
    if spec.region_id and session.get(Region, spec.region_id) is None:
        raise Invalid(f"region {spec.region_id!r} does not exist")
    for store_id in spec.where.stores:
        store = scoped_store(session, principal, store_id)
        if spec.region_id and store.region_id != spec.region_id:
            raise Invalid(f"store {store_id!r} is outside region {spec.region_id!r}")
    if spec.reward.coupon_template_id:
        template = session.get(CouponTemplate, spec.reward.coupon_template_id)
        if template is None or (
            template.region_id is not None and template.region_id != spec.region_id
        ):
            raise Invalid("coupon_template_id is not a template of this region")


def create(session: Session, principal: Principal, spec: CampaignCreate, now: datetime) -> Campaign:
    """A new campaign in draft."""
    _check_spec(session, principal, spec)
    campaign = Campaign(
        id=new_id("cmp"), created_by=actor_of(principal), created_at=now, updated_at=now
    )
    _apply(campaign, spec)
    session.add(campaign)
    return campaign


def _apply(campaign: Campaign, spec: CampaignCreate) -> None:
    """Copy a spec's fields onto the row."""
    campaign.name = spec.name
    campaign.region_id = spec.region_id
    campaign.trigger = spec.trigger.value
    campaign.trigger_param = spec.trigger_param
    campaign.audience = spec.audience.model_dump(mode="json")
    campaign.where = spec.where.model_dump(mode="json")
    campaign.when = spec.when.model_dump(mode="json")
    campaign.reward_kind = spec.reward.kind.value
    campaign.coupon_template_id = spec.reward.coupon_template_id
    campaign.points = spec.reward.points
    campaign.title = spec.reward.title
    campaign.cap_per_customer_day = spec.caps.per_customer_per_day
    campaign.cap_per_customer_total = spec.caps.per_customer_total
    campaign.budget_total = spec.caps.budget
    campaign.budget_remaining = spec.caps.budget
    campaign.priority = spec.priority
    campaign.exclusive = spec.exclusive
    campaign.holdout_share = spec.holdout_share


def replace(
    session: Session, principal: Principal, campaign_id: str, spec: CampaignCreate, now: datetime
) -> Campaign:
    """Rewrite a draft (an approved or running campaign is frozen: end it and start anew)."""
    campaign = get(session, principal, campaign_id)
    if campaign.state != S.DRAFT.value:
        raise Conflict(f"only a draft can be edited; this one is {campaign.state}")
    _check_spec(session, principal, spec)
    _apply(campaign, spec)
    campaign.updated_at = now
    session.add(campaign)
    return campaign


def transition(
    session: Session, principal: Principal, campaign_id: str, step: Transition, now: datetime
) -> Campaign:
    """Move a campaign along its lifecycle; approval records who, and needs a second person."""
    campaign = get(session, principal, campaign_id)
    sources, target = TRANSITIONS[step]
    if CampaignState(campaign.state) not in sources:
        raise Conflict(
            f"cannot {step.value} a campaign that is {campaign.state}", code="bad_transition"
        )
    actor = actor_of(principal)
    if step is Transition.APPROVE:
        if campaign.created_by == actor:
            raise Forbidden("a campaign is approved by someone other than its author")
        campaign.approved_by, campaign.approved_at = actor, now
    campaign.state = target.value
    campaign.updated_at = now
    session.add(campaign)
    ends_at = (campaign.when or {}).get("ends_at")
    if target is S.LIVE and ends_at:
        # The rules already stop granting at ends_at; the timer also closes the lifecycle.
        schedule(session, END_TIMER, campaign.id, datetime.fromisoformat(ends_at), now=now)
    log.info("campaign transition", extra={"campaign": campaign.id, "state": target.value})
    return campaign


@timer_handler(END_TIMER)
def _end_at_ends_at(session: Session, timer: Timer, now: datetime) -> None:
    """Durable-timer handler: a live or paused campaign past its ends_at is ended."""
    session.exec(
        update(Campaign)  # type: ignore[call-overload]
        .where(
            col(Campaign.id) == timer.key,
            col(Campaign.state).in_((S.LIVE.value, S.PAUSED.value)),
        )
        .values(state=S.ENDED.value, updated_at=now)
    )


def decisions(
    session: Session, principal: Principal, campaign_id: str, offset: int
) -> Sequence[CampaignGrant]:
    """The campaign's grant decisions (granted, holdout, capped with reason), newest first."""
    get(session, principal, campaign_id)
    return session.exec(
        select(CampaignGrant)
        .where(CampaignGrant.campaign_id == campaign_id)
        .order_by(col(CampaignGrant.at).desc(), col(CampaignGrant.id))
        .offset(offset)
        .limit(GRANTS_PAGE)
    ).all()


def dry_run(
    session: Session, principal: Principal, campaign_id: str, req: DryRunRequest, now: datetime
) -> DryRunResult:
    """Who would qualify at ``req.store_id`` and time ``req.at``, and why (nothing granted)."""
    campaign = get(session, principal, campaign_id)
    store: Store = scoped_store(session, principal, req.store_id)
    at = req.at or now
    zone_id = req.zone_id
    if zone_id is None and Trigger(campaign.trigger) is Trigger.ZONE_ENTRY:
        zone_id = (campaign.where.get("zones") or [None])[0]
    common = rules.where_reasons(campaign, store, zone_id) + rules.when_reasons(campaign, store, at)
    query = select(Customer).order_by(col(Customer.id))
    if req.customer_ids:
        query = query.where(col(Customer.id).in_(req.customer_ids))
    verdicts = []
    for customer in session.exec(query.limit(req.limit)).all():
        known = facts.load_facts(session, customer, store.id, None)
        reasons = list(common)
        reasons += rules.audience_reasons(campaign, known)
        reasons += rules.history_reasons(campaign, known, at)
        holdout = not reasons and rules.in_holdout(campaign, customer.id)
        verdicts.append(
            DryRunVerdict(
                customer_id=customer.id,
                qualifies=not reasons,
                holdout=holdout,
                reasons=reasons
                or (["qualifies (holdout: gets nothing)"] if holdout else ["qualifies"]),
            )
        )
    return DryRunResult(
        campaign_id=campaign.id,
        store_id=store.id,
        at=at,
        checked=len(verdicts),
        qualifying=sum(v.qualifies for v in verdicts),
        verdicts=verdicts,
    )
