"""Caps and budgets: per customer per store day, per campaign, global, and the total budget.

Per-customer counts are exact because evaluation holds the customer's row lock (the
check-in takes it first); the budget is shared between customers, so it is taken with
one conditional ``UPDATE campaign SET budget_remaining = budget_remaining - n WHERE
budget_remaining >= n``: the database serialises the decrements and never goes below 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from hub.models.campaigns import Campaign, CampaignGrant, GrantOutcome

# Grants (all campaigns, all channels) one customer may get in one store calendar day:
# three keeps a rewarded visit special without making a second check-in pointless.
GLOBAL_DAILY_CAP = 3


@dataclass
class GrantCounts:
    """The customer's granted grants, read once per evaluation (under the customer lock)."""

    day: str
    today: Counter[str] = field(default_factory=Counter)  # campaign -> grants this store day
    total: Counter[str] = field(default_factory=Counter)  # campaign -> grants ever
    global_today: int = 0

    def record(self, campaign_id: str) -> None:
        """Count a grant just made in this evaluation."""
        self.today[campaign_id] += 1
        self.total[campaign_id] += 1
        self.global_today += 1


def load_counts(session: Session, customer_id: str, day: str) -> GrantCounts:
    """One grouped query: grants per (campaign, store day) of this customer."""
    counts = GrantCounts(day=day)
    rows = session.exec(
        select(CampaignGrant.campaign_id, CampaignGrant.store_day, func.count())
        .where(
            CampaignGrant.customer_id == customer_id,
            CampaignGrant.outcome == GrantOutcome.GRANTED.value,
        )
        .group_by(col(CampaignGrant.campaign_id), col(CampaignGrant.store_day))
    ).all()
    for campaign_id, store_day, n in rows:
        counts.total[campaign_id] += n
        if store_day == day:
            counts.today[campaign_id] += n
            counts.global_today += n
    return counts


def cap_reason(campaign: Campaign, counts: GrantCounts, global_cap: int) -> str | None:
    """The first cap a grant would break ("global_daily_cap", ...), or None."""
    if counts.global_today >= global_cap:
        return "global_daily_cap"
    daily = campaign.cap_per_customer_day
    if daily is not None and counts.today[campaign.id] >= daily:
        return "campaign_daily_cap"
    total = campaign.cap_per_customer_total
    if total is not None and counts.total[campaign.id] >= total:
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
