"""Caps and budgets: per customer per store day, per campaign, global, and the total budget.

Per-customer counts are exact because evaluation holds the customer's row lock (the
check-in takes it first); the budget is shared between customers, so it is taken with
one conditional ``UPDATE campaign SET budget_remaining = budget_remaining - n WHERE
budget_remaining >= n``: the database serialises the decrements and never goes below 0.
"""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from hub.models.campaigns import Campaign, CampaignGrant, GrantOutcome

# Grants (all campaigns, all channels) one customer may get in one store calendar day:
# three keeps a rewarded visit special without making a second check-in pointless.
GLOBAL_DAILY_CAP = 3


def granted_today(session: Session, customer_id: str, day: str) -> int:
    """Grants the customer got on the store day ``day`` across every campaign."""
    return int(
        session.exec(
            select(func.count()).where(
                CampaignGrant.customer_id == customer_id,
                CampaignGrant.store_day == day,
                CampaignGrant.outcome == GrantOutcome.GRANTED.value,
            )
        ).one()
    )


def cap_reason(
    session: Session,
    campaign: Campaign,
    customer_id: str,
    day: str,
    global_today: int,
    global_cap: int,
) -> str | None:
    """The first cap the grant would break ("global_daily_cap", ...), or None."""
    if global_today >= global_cap:
        return "global_daily_cap"
    if campaign.cap_per_customer_day is not None or campaign.cap_per_customer_total is not None:
        base = select(func.count()).where(
            CampaignGrant.campaign_id == campaign.id,
            CampaignGrant.customer_id == customer_id,
            CampaignGrant.outcome == GrantOutcome.GRANTED.value,
        )
        if campaign.cap_per_customer_day is not None:
            today = session.exec(base.where(CampaignGrant.store_day == day)).one()
            if today >= campaign.cap_per_customer_day:
                return "campaign_daily_cap"
        total_cap = campaign.cap_per_customer_total
        if total_cap is not None and session.exec(base).one() >= total_cap:
            return "campaign_total_cap"
    return None


def take_budget(session: Session, campaign: Campaign, amount: int) -> bool:
    """Take ``amount`` from the campaign's budget atomically; False when not enough is left."""
    if campaign.budget_total is None:
        return True
    changed = session.exec(
        update(Campaign)  # type: ignore[call-overload]
        .where(col(Campaign.id) == campaign.id, col(Campaign.budget_remaining) >= amount)
        .values(budget_remaining=Campaign.budget_remaining - amount)
    ).rowcount
    return bool(changed)
