"""Caps and budgets: per customer per store day, per campaign, global, and the total budget.

Per-customer counts are exact because evaluation holds the customer's row lock (taken
before anything else). Budgets are shared between customers: evaluation locks the rows
of every campaign it may pay from, by id, in one statement (``lock_budgets``; a check-in
on PostgreSQL locks them in its one read of the customer's state with
``budgets_column_locked_pg``; on SQLite the transaction holds the database's write
lock), decides against what it read, and then takes what it used with one conditional ``UPDATE
campaign SET budget_remaining = budget_remaining - n WHERE budget_remaining >= n`` per
campaign (the guard, with the CHECK >= 0, would fail the transaction rather than
overrun). The global cap across campaigns comes from the hub's settings
(``[hub.campaigns] global_daily_cap``), registered per database by ``configure``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from hub.models.campaigns import Campaign, CampaignGrant, GrantOutcome
from hub.services.campaigns.index import CampaignSnapshot, database_key
from storewave.settings import CampaignSettings

_CAMPAIGN = Campaign.__table__  # type: ignore[attr-defined]
_GRANT = CampaignGrant.__table__  # type: ignore[attr-defined]
# The seeds' value, kept for callers that name it; the setting is what evaluation uses.
GLOBAL_DAILY_CAP = CampaignSettings().global_daily_cap

TAKE_BUDGET = (
    update(_CAMPAIGN)
    .where(_CAMPAIGN.c.id == bindparam("cid"), _CAMPAIGN.c.budget_remaining >= bindparam("n"))
    .values(budget_remaining=_CAMPAIGN.c.budget_remaining - bindparam("n"))
)
_LOCK_BUDGETS = (
    select(_CAMPAIGN.c.id, _CAMPAIGN.c.budget_remaining)
    .where(_CAMPAIGN.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_CAMPAIGN.c.id)
    .with_for_update()
)
_COUNTS = (
    select(_GRANT.c.campaign_id, _GRANT.c.store_day, func.count())
    .where(
        _GRANT.c.customer_id == bindparam("customer_id"),
        _GRANT.c.outcome == GrantOutcome.GRANTED.value,
    )
    .group_by(_GRANT.c.campaign_id, _GRANT.c.store_day)
)

_GROUPED = _COUNTS.subquery()
_GROUPED_N = list(_GROUPED.c)[2]
# The same reads as one column each (JSON), for a statement that reads other things in
# the same trip (the check-in's one read of the customer's state).
_AGGREGATES = {
    "sqlite": (func.json_group_array, func.json_array),
    "postgresql": (func.json_agg, func.json_build_array),
}


def counts_column(dialect: str) -> Any:
    """``load_counts``' rows as one JSON array column (parameter ``customer_id``)."""
    group, array = _AGGREGATES[dialect]
    g = _GROUPED.c
    return (
        select(group(array(g.campaign_id, g.store_day, _GROUPED_N)))
        .scalar_subquery()
        .label("grant_counts")
    )


def budgets_column_sqlite() -> Any:
    """Budgets left of the campaigns ``budget_ids_json`` (a JSON array) as one JSON object
    column, unlocked: only for SQLite, whose transactions hold the database's write lock
    from their start. One statement text for any number of campaigns (compiled once)."""
    ids = func.json_each(bindparam("budget_ids_json")).table_valued("value")
    b = (
        select(_CAMPAIGN.c.id, _CAMPAIGN.c.budget_remaining)
        .where(_CAMPAIGN.c.id.in_(select(ids.c.value)))
        .subquery()
    )
    return (
        select(func.json_group_object(b.c.id, b.c.budget_remaining))
        .scalar_subquery()
        .label("budgets")
    )


def budgets_column_locked_pg(version: Any) -> Any:
    """PostgreSQL: the budgets left of the campaigns ``budget_ids`` (an array), their rows
    locked in id order (as ``lock_budgets`` locks them), as one JSON object column, for the
    check-in's one read of the customer's state. The rows are locked only if the campaigns'
    ``version`` (a column of the same statement) is still ``expected_version``: the caller
    chose the ids from its index of that version, and with another version it reads again
    with other ids, which must not be locked after these out of id order."""
    locked = (
        select(_CAMPAIGN.c.id, _CAMPAIGN.c.budget_remaining)
        .where(
            _CAMPAIGN.c.id == any_(bindparam("budget_ids", type_=postgresql.ARRAY(String))),
            version == bindparam("expected_version", type_=BigInteger),
        )
        .order_by(_CAMPAIGN.c.id)
        .with_for_update()
        .subquery()
    )
    return (
        select(func.json_object_agg(locked.c.id, locked.c.budget_remaining))
        .scalar_subquery()
        .label("budgets")
    )


def _decoded(raw: Any) -> Any:
    """A JSON aggregate as the driver hands it back (PostgreSQL: decoded; SQLite: text)."""
    return json.loads(raw) if isinstance(raw, str) else raw


def counts_of(raw: Any, day: str) -> GrantCounts:
    """``counts_column``'s value as the counts ``load_counts`` would give."""
    counts = GrantCounts(day=day)
    for campaign_id, store_day, n in _decoded(raw) or ():
        counts.total[campaign_id] += n
        if store_day == day:
            counts.today[campaign_id] += n
            counts.global_today += n
    return counts


def budgets_of(raw: Any) -> dict[str, int]:
    """``budgets_column_sqlite``'s value as ``lock_budgets`` would give."""
    return {cid: int(left or 0) for cid, left in (_decoded(raw) or {}).items()}


# Per database URL: the campaign settings the hub was started with (default: the seeds').
_SETTINGS: dict[str, CampaignSettings] = {}
_SETTINGS_LOCK = threading.Lock()


_DEFAULTS = CampaignSettings()


def configure(database_url: str, settings: CampaignSettings) -> None:
    """Use ``settings`` for every evaluation on ``database_url`` (the hub calls this at start)."""
    with _SETTINGS_LOCK:
        _SETTINGS[database_url] = settings


def global_daily_cap(session: Session) -> int:
    """Grants one customer may get per store day across all campaigns, for this database."""
    settings = _SETTINGS.get(database_key(session.get_bind()))
    return (settings or _DEFAULTS).global_daily_cap


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
    for campaign_id, store_day, n in session.connection().execute(
        _COUNTS, {"customer_id": customer_id}
    ):
        counts.total[campaign_id] += n
        if store_day == day:
            counts.today[campaign_id] += n
            counts.global_today += n
    return counts


def cap_reason(campaign: CampaignSnapshot, counts: GrantCounts, global_cap: int) -> str | None:
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


def lock_budgets(session: Session, campaign_ids: Iterable[str]) -> dict[str, int]:
    """Lock the campaigns' rows in id order (one statement); what is left of each budget."""
    ids = sorted(campaign_ids)
    if not ids:
        return {}
    rows = session.connection().execute(_LOCK_BUDGETS, {"ids": ids})
    return {cid: int(remaining or 0) for cid, remaining in rows}


def reserve_budget(budgets: dict[str, int], campaign: CampaignSnapshot, amount: int) -> bool:
    """Count ``amount`` against the locked budget read; False when not enough is left."""
    if campaign.budget_total is None:
        return True
    left = budgets.get(campaign.id, 0)
    if left < amount:
        return False
    budgets[campaign.id] = left - amount
    return True


def take_budgets(session: Session, taken: Sequence[tuple[CampaignSnapshot, int]]) -> None:
    """Write the reserved amounts: the conditional UPDATE for each campaign, in one call."""
    take_amounts(session, [(campaign.id, amount) for campaign, amount in taken])


def take_amounts(session: Session, taken: Sequence[tuple[str, int]]) -> None:
    """``take_budgets`` by campaign id."""
    per_campaign: Counter[str] = Counter()
    for campaign_id, amount in taken:
        per_campaign[campaign_id] += amount
    if not per_campaign:
        return
    params = [{"cid": cid, "n": n} for cid, n in sorted(per_campaign.items())]
    changed = session.connection().execute(TAKE_BUDGET, params).rowcount
    if changed != len(params):
        # Unreachable while the rows stay locked; fail the transaction rather than overrun.
        raise RuntimeError("a campaign budget changed under its lock")
