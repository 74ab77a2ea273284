"""Campaign evaluation: on one event, decide in the caller's transaction who grants what.

Order of decisions per live campaign (highest priority first): trigger, where, when
(cheap, no queries) -> audience and visit history -> exclusivity -> holdout -> caps ->
budget -> reward. Each decision is one ``campaign_grant`` row, unique on (campaign,
source event), so an event that arrives twice grants once; capped and held-out
decisions are rows too, never silently dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from hub.models.campaigns import (
    Campaign,
    CampaignGrant,
    CampaignState,
    GrantOutcome,
    RewardKind,
)
from hub.models.checkins import Visit
from hub.models.coupons import Coupon, CouponTemplate
from hub.models.customers import Customer, CustomerTag
from hub.models.registry import Store
from hub.models.types import new_id
from hub.services import coupons, points
from hub.services.campaigns import caps, rules
from hub.services.campaigns.rules import CustomerFacts, TriggerEvent
from storewave.wire import Grant

log = logging.getLogger(__name__)

# Live-campaign rule snapshots per database URL: (version, campaigns). Detached copies,
# read-only once built, shared by the request threads; see ``live_campaigns``.
_CACHE: dict[str, tuple[tuple[object, ...], list[Campaign]]] = {}
_CACHE_LOCK = threading.Lock()

# Points a campaign gives stay spendable for a year, then the durable timer expires them.
POINTS_VALIDITY = timedelta(days=365)
_CONSENT_FIELDS = {
    "sms": "consent_marketing_sms",
    "push": "consent_marketing_push",
    "call": "consent_marketing_call",
    "analytics": "consent_analytics",
}
_HOLDS_SLOT = (GrantOutcome.GRANTED.value, GrantOutcome.HOLDOUT.value)


def live_campaigns(session: Session) -> Sequence[Campaign]:
    """Every live campaign, highest priority first (ties by id, so the order is stable).

    The rule snapshots are cached per database and reloaded when the set of live
    campaigns or any edit changes (one narrow (id, updated_at) query per check-in instead
    of building 200 ORM rows); budgets and caps are always read from the database.
    """
    version = tuple(
        session.exec(
            select(Campaign.id, Campaign.updated_at)
            .where(Campaign.state == CampaignState.LIVE.value)
            .order_by(col(Campaign.id))
        ).all()
    )
    key = str(session.get_bind().url)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
    snapshot = _load_snapshot(session)
    with _CACHE_LOCK:
        _CACHE[key] = (version, snapshot)
    return snapshot


def _load_snapshot(session: Session) -> list[Campaign]:
    """Detached copies of the live campaigns, highest priority first."""
    rows = session.exec(
        select(Campaign)
        .where(Campaign.state == CampaignState.LIVE.value)
        .order_by(col(Campaign.priority).desc(), col(Campaign.id))
    ).all()
    return [Campaign(**row.model_dump()) for row in rows]


def _may_run_at(campaign: Campaign, store: Store) -> bool:
    """The cheapest test first: most of 200 campaigns target other stores or regions."""
    where = campaign.where or {}
    stores = where.get("stores")
    if stores and store.id not in stores:
        return False
    regions = where.get("regions")
    if regions and store.region_id not in regions:
        return False
    return not campaign.region_id or campaign.region_id == store.region_id


def load_facts(
    session: Session, customer: Customer, store_id: str, visit_id: str | None
) -> CustomerFacts:
    """The customer's attributes, consents, tags and visit history (excluding this visit)."""
    tags = session.exec(
        select(CustomerTag.kind, CustomerTag.name).where(CustomerTag.customer_id == customer.id)
    ).all()
    at_store = Visit.store_id == store_id
    history = session.exec(
        select(
            func.count(),
            func.coalesce(func.sum(case((at_store, 1), else_=0)), 0),
            func.max(case((at_store, Visit.last_seen_at), else_=None)),
        ).where(Visit.customer_id == customer.id, Visit.id != (visit_id or ""))
    ).one()
    return CustomerFacts(
        gender=customer.gender,
        age_band=customer.age_band,
        postal_code=customer.postal_code,
        consents=frozenset(k for k, f in _CONSENT_FIELDS.items() if getattr(customer, f)),
        tags=frozenset(f"{kind}:{name}" for kind, name in tags),
        visits_before=int(history[0]),
        store_visits_before=int(history[1]),
        previous_store_visit_at=history[2],
    )


def evaluate(
    session: Session,
    event: TriggerEvent,
    *,
    global_cap: int = caps.GLOBAL_DAILY_CAP,
) -> list[CampaignGrant]:
    """Decide every live campaign for ``event``; returns the decisions (new and replayed)."""
    store = session.get(Store, event.store_id)
    if store is None:
        return []
    candidates = [
        c
        for c in live_campaigns(session)
        if _may_run_at(c, store)
        and rules.trigger_fires(c, event)
        and not rules.where_reasons(c, store, event.zone_id)
        and not rules.when_reasons(c, store, event.at)
    ]
    if not candidates:
        return []
    # The customer's row lock serialises every evaluation for this customer, which makes
    # per-customer caps and the replay check below exact (SQLite: BEGIN IMMEDIATE already).
    customer = session.exec(
        select(Customer).where(Customer.id == event.customer_id).with_for_update()
    ).first()
    if customer is None:
        return []
    facts = load_facts(session, customer, store.id, event.visit_id)
    day = rules.store_day(store, event.at)
    keys = {c.id: rules.source_key(c, event) for c in candidates}
    existing = {
        (g.campaign_id, g.source_event): g
        for g in session.exec(
            select(CampaignGrant).where(
                col(CampaignGrant.campaign_id).in_(list(keys)),
                col(CampaignGrant.source_event).in_(set(keys.values())),
            )
        )
    }
    counts = caps.load_counts(session, customer.id, day)
    # New grant rows are inserted together at the next flush, not one by one.
    with session.no_autoflush:
        return _decide_all(
            session, event, candidates, keys, existing, facts, counts, day, global_cap
        )


def _decide_all(
    session: Session,
    event: TriggerEvent,
    candidates: Sequence[Campaign],
    keys: dict[str, str],
    existing: dict[tuple[str, str], CampaignGrant],
    facts: CustomerFacts,
    counts: caps.GrantCounts,
    day: str,
    global_cap: int,
) -> list[CampaignGrant]:
    """Walk the candidates in priority order: replays, audience, exclusivity, decisions."""
    decisions: list[CampaignGrant] = []
    credits: list[points.Credit] = []
    slot_taken = False
    for campaign in candidates:
        key = keys[campaign.id]
        prior = existing.get((campaign.id, key))
        if prior is not None:
            decisions.append(prior)
            slot_taken = slot_taken or prior.outcome in _HOLDS_SLOT
            if campaign.exclusive and prior.outcome in _HOLDS_SLOT:
                break
            continue
        if rules.audience_reasons(campaign, facts) or rules.history_reasons(
            campaign, facts, event.at
        ):
            continue
        if campaign.exclusive and slot_taken:
            continue  # an exclusive campaign only grants alone
        grant = _decide(session, campaign, event, key, day, counts, global_cap, credits)
        decisions.append(grant)
        if grant.outcome == GrantOutcome.GRANTED.value:
            counts.record(campaign.id)
        if grant.outcome in _HOLDS_SLOT:
            slot_taken = True
            if campaign.exclusive:
                break
    points.credit_many(session, event.customer_id, credits, event.at)
    return decisions


def _decide(
    session: Session,
    campaign: Campaign,
    event: TriggerEvent,
    key: str,
    day: str,
    counts: caps.GrantCounts,
    global_cap: int,
    credits: list[points.Credit],
) -> CampaignGrant:
    """Holdout, caps, budget and reward; the grant row records the outcome either way.

    No savepoint: source keys carry the customer and evaluation holds the customer's
    row lock, so a duplicate cannot reach the insert; the unique constraint stays as the
    guard that would fail the whole transaction rather than pay twice.
    """
    grant = CampaignGrant(
        id=new_id("grt"),
        campaign_id=campaign.id,
        customer_id=event.customer_id,
        store_id=event.store_id,
        source_event=key,
        trigger=campaign.trigger,
        outcome=GrantOutcome.GRANTED.value,
        reward_kind=campaign.reward_kind,
        title=campaign.title,
        store_day=day,
        at=event.at,
    )
    if rules.in_holdout(campaign, event.customer_id):
        grant.outcome = GrantOutcome.HOLDOUT.value
    elif reason := caps.cap_reason(campaign, counts, global_cap):
        grant.outcome, grant.reason = GrantOutcome.CAPPED.value, reason
    if grant.outcome != GrantOutcome.GRANTED.value:
        session.add(grant)
        log.info(
            "campaign grant not given",
            extra={"campaign": campaign.id, "outcome": grant.outcome, "reason": grant.reason},
        )
        return grant
    if caps.take_budget(session, campaign, _cost(campaign)):
        _reward(session, campaign, grant, event.at, credits)
    else:
        grant.outcome, grant.reason = GrantOutcome.CAPPED.value, "budget_exhausted"
    session.add(grant)
    return grant


def _cost(campaign: Campaign) -> int:
    """Budget units one grant uses: one coupon, or the campaign's points."""
    return 1 if campaign.reward_kind == RewardKind.COUPON.value else int(campaign.points or 0)


def _reward(
    session: Session,
    campaign: Campaign,
    grant: CampaignGrant,
    now: datetime,
    credits: list[points.Credit],
) -> None:
    """Issue the coupon now; queue the points (credited together after the last decision)."""
    customer_id = grant.customer_id or ""
    if campaign.reward_kind == RewardKind.COUPON.value:
        template = session.get(CouponTemplate, campaign.coupon_template_id)
        assert template is not None  # checked when the campaign was created
        coupon = coupons.issue(session, template, customer_id, now, campaign_id=campaign.id)
        grant.coupon_id = coupon.id
    else:
        credits.append(
            points.Credit(
                delta=int(campaign.points or 0),
                key=f"grant:{grant.id}",
                reason=campaign.title or campaign.name,
                campaign_id=campaign.id,
                expires_at=now + POINTS_VALIDITY,
            )
        )
        grant.points = campaign.points


def to_wire(session: Session, decisions: Sequence[CampaignGrant]) -> list[Grant]:
    """The granted decisions as the wire's Grant list (coupon codes looked up)."""
    out = []
    for grant in decisions:
        if grant.outcome != GrantOutcome.GRANTED.value:
            continue
        code = None
        if grant.coupon_id:
            coupon = session.get(Coupon, grant.coupon_id)
            code = coupon.code if coupon else None
        out.append(
            Grant(
                campaign_id=grant.campaign_id,
                kind="coupon" if grant.reward_kind == RewardKind.COUPON.value else "points",
                coupon_code=code,
                points=grant.points,
                title=grant.title,
            )
        )
    return out
