"""Campaign evaluation: on one or more events, decide in the caller's transaction who grants what.

Order of decisions per live campaign (highest priority first): trigger, where, when
(cheap, from the cached index, no queries) -> audience and visit history -> exclusivity
-> holdout -> caps -> budget -> reward. Each decision is one ``campaign_grant`` row,
unique on (campaign, source event), so an event that arrives twice grants once; capped
and held-out decisions are rows too, never silently dropped.

Locks, always in this order, so that a transaction evaluating many customers (an MQTT
ingest batch) and one evaluating a single customer (a check-in, which locked its
customer first) can never wait on each other in a cycle:

1. the customers' rows, by id (``SELECT ... ORDER BY id FOR UPDATE``): per-customer caps
   and replay checks are exact because every evaluation of a customer holds this lock;
2. the budget rows of every campaign that may grant, by id, in one statement;
3. what the grants write: coupons (pool codes with ``SKIP LOCKED``), ledger lines, the
   customers' own points accounts, timers. Nothing after step 2 waits for a row that a
   transaction in steps 1-2 could be holding while waiting for us.

Writes are Core statements (one per table, many rows each), not ORM objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlmodel import Session

from hub.models.campaigns import CampaignGrant, GrantOutcome, RewardKind
from hub.models.coupons import Coupon
from hub.models.customers import Customer
from hub.models.registry import Store
from hub.models.types import new_id
from hub.services import coupons, points
from hub.services.campaigns import caps, facts, index, rules
from hub.services.campaigns.index import CampaignSnapshot
from hub.services.campaigns.rules import TriggerEvent
from storewave.wire import Grant

log = logging.getLogger(__name__)

# Points a campaign gives stay spendable for a year, then the durable timer expires them.
POINTS_VALIDITY = timedelta(days=365)
_HOLDS_SLOT = (GrantOutcome.GRANTED.value, GrantOutcome.HOLDOUT.value)

_GRANT = CampaignGrant.__table__  # type: ignore[attr-defined]
_COUPON = Coupon.__table__  # type: ignore[attr-defined]
_DECISION_COLUMNS = (
    "id",
    "campaign_id",
    "customer_id",
    "store_id",
    "source_event",
    "trigger",
    "outcome",
    "reason",
    "reward_kind",
    "coupon_id",
    "points",
    "title",
    "store_day",
    "at",
)
# Statements built once (building an expression costs more than running it on SQLite).
_INSERT_GRANTS = insert(_GRANT)
_EXISTING = (
    select(*(_GRANT.c[n] for n in _DECISION_COLUMNS), _COUPON.c.code)
    .select_from(_GRANT.outerjoin(_COUPON, _COUPON.c.id == _GRANT.c.coupon_id))
    .where(
        _GRANT.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
        _GRANT.c.source_event.in_(bindparam("keys", expanding=True)),
    )
)


@dataclass(slots=True)
class Decision:
    """One campaign's decision for one event: a ``campaign_grant`` row (plus the code)."""

    id: str
    campaign_id: str
    customer_id: str | None
    store_id: str
    source_event: str
    trigger: str
    outcome: str
    reason: str
    reward_kind: str
    coupon_id: str | None
    points: int | None
    title: str
    store_day: str
    at: datetime
    coupon_code: str | None = None
    replayed: bool = False

    def row(self) -> dict[str, Any]:
        """The grant row's columns."""
        return {name: getattr(self, name) for name in _DECISION_COLUMNS}


@dataclass
class _Plan:
    """One event's evaluation: its candidates, then what the customer is eligible for."""

    event: TriggerEvent
    store: Store | None
    candidates: list[CampaignSnapshot]
    eligible: list[CampaignSnapshot] = field(default_factory=list)
    day: str = ""
    keys: dict[str, str] = field(default_factory=dict)


def candidates_for(
    idx: index.CampaignIndex, store: Store, event: TriggerEvent
) -> list[CampaignSnapshot]:
    """Live campaigns whose trigger, where and when match ``event`` (no queries)."""
    return [
        c
        for c in idx.for_store(store)
        if rules.trigger_fires(c, event)
        and not rules.where_reasons(c, store, event.zone_id)
        and not rules.when_reasons(c, store, event.at)
    ]


def evaluate(
    session: Session,
    event: TriggerEvent,
    *,
    global_cap: int | None = None,
    locked: Customer | None = None,
) -> list[Decision]:
    """Decide every live campaign for ``event``; returns the decisions (new and replayed).

    ``locked``: the event's customer, whose row the caller already holds locked in this
    transaction (the check-in locks it first): its loaded attributes are used as they are.
    """
    held = [locked] if locked is not None else []
    return evaluate_many(session, [event], global_cap=global_cap, locked=held)[0]


def evaluate_many(
    session: Session,
    events: Sequence[TriggerEvent],
    *,
    global_cap: int | None = None,
    locked: Sequence[Customer] = (),
) -> list[list[Decision]]:
    """Decide every event (in order) in the caller's transaction; the decisions per event.

    All the customers are locked first (by id), then every budget any of them may use
    (by id): see the module docstring for why the order matters. Customers in
    ``locked`` are already locked by the caller (before anything else it did).
    """
    idx = index.current(session)
    cap = caps.global_daily_cap(session) if global_cap is None else global_cap
    plans = []
    for event in events:
        store = session.get(Store, event.store_id)
        plans.append(_Plan(event, store, candidates_for(idx, store, event) if store else []))
    customer_ids = sorted({p.event.customer_id for p in plans if p.candidates})
    if not customer_ids:
        return [[] for _ in plans]
    customers = {c.id: facts.row_of(c) for c in locked if c.id in customer_ids}
    missing = [cid for cid in customer_ids if cid not in customers]
    if missing:
        customers.update(facts.lock_customers(session, missing))
    considered = [c for p in plans for c in p.candidates]
    tags = facts.load_tags(session, list(customers)) if facts.any_reads_tags(considered) else {}
    with_history = facts.any_reads_history(considered)
    for plan in plans:
        row = customers.get(plan.event.customer_id)
        if row is None or plan.store is None:
            plan.candidates = []
            continue
        known = facts.facts(
            session,
            row,
            tags.get(row["id"], frozenset()),
            plan.store.id,
            plan.event.visit_id,
            with_history,
        )
        plan.eligible = [
            c
            for c in plan.candidates
            if not rules.audience_reasons(c, known)
            and not rules.history_reasons(c, known, plan.event.at)
        ]
        plan.day = rules.store_day(plan.store, plan.event.at)
        plan.keys = {c.id: rules.source_key(c, plan.event) for c in plan.candidates}
    budgets = caps.lock_budgets(
        session, {c.id for p in plans for c in p.eligible if c.budget_total is not None}
    )
    return [
        _evaluate_one(session, idx, plan, budgets, cap) if plan.candidates else [] for plan in plans
    ]


def _existing(session: Session, plan: _Plan) -> dict[str, Decision]:
    """Decisions already stored for this event (a replay), by campaign, codes included."""
    rows = session.connection().execute(
        _EXISTING, {"campaigns": list(plan.keys), "keys": sorted(set(plan.keys.values()))}
    )
    out = {}
    for row in rows.mappings():
        if plan.keys.get(row["campaign_id"]) == row["source_event"]:
            values = {n: row[n] for n in _DECISION_COLUMNS}
            out[row["campaign_id"]] = Decision(**values, coupon_code=row["code"], replayed=True)
    return out


def _evaluate_one(
    session: Session,
    idx: index.CampaignIndex,
    plan: _Plan,
    budgets: dict[str, int],
    global_cap: int,
) -> list[Decision]:
    """Walk one event's candidates in priority order, then write what was decided."""
    event = plan.event
    # A source created in this transaction (the visit a check-in just opened) cannot
    # have decisions yet: no replay lookup.
    existing = {} if event.new_source else _existing(session, plan)
    eligible = {c.id for c in plan.eligible}
    counts = caps.load_counts(session, event.customer_id, plan.day)
    decisions: list[Decision] = []
    new: list[Decision] = []
    paid: list[tuple[CampaignSnapshot, Decision]] = []
    slot_taken = False
    for campaign in plan.candidates:
        prior = existing.get(campaign.id)
        if prior is not None:
            decisions.append(prior)
            slot_taken = slot_taken or prior.outcome in _HOLDS_SLOT
            if campaign.exclusive and prior.outcome in _HOLDS_SLOT:
                break
            continue
        if campaign.id not in eligible:
            continue
        if campaign.exclusive and slot_taken:
            continue  # an exclusive campaign only grants alone
        decision = _decide(campaign, plan, counts, budgets, global_cap)
        decisions.append(decision)
        new.append(decision)
        if decision.outcome == GrantOutcome.GRANTED.value:
            counts.record(campaign.id)
            paid.append((campaign, decision))
        if decision.outcome in _HOLDS_SLOT:
            slot_taken = True
            if campaign.exclusive:
                break
    if new:
        _write(session, idx, event, new, paid)
    return decisions


def _decide(
    campaign: CampaignSnapshot,
    plan: _Plan,
    counts: caps.GrantCounts,
    budgets: dict[str, int],
    global_cap: int,
) -> Decision:
    """Holdout, caps and budget (read under lock): the outcome, before anything is written."""
    event = plan.event
    decision = Decision(
        id=new_id("grt"),
        campaign_id=campaign.id,
        customer_id=event.customer_id,
        store_id=event.store_id,
        source_event=plan.keys[campaign.id],
        trigger=campaign.trigger,
        outcome=GrantOutcome.GRANTED.value,
        reason="",
        reward_kind=campaign.reward_kind,
        coupon_id=None,
        points=None,
        title=campaign.title,
        store_day=plan.day,
        at=event.at,
    )
    if rules.in_holdout(campaign, event.customer_id):
        decision.outcome = GrantOutcome.HOLDOUT.value
    elif reason := caps.cap_reason(campaign, counts, global_cap):
        decision.outcome, decision.reason = GrantOutcome.CAPPED.value, reason
    elif not caps.reserve_budget(budgets, campaign, _cost(campaign)):
        decision.outcome, decision.reason = GrantOutcome.CAPPED.value, "budget_exhausted"
    if decision.outcome != GrantOutcome.GRANTED.value:
        log.info(
            "campaign grant not given",
            extra={"campaign": campaign.id, "outcome": decision.outcome, "reason": decision.reason},
        )
    elif campaign.reward_kind == RewardKind.POINTS.value:
        decision.points = campaign.points
    return decision


def _cost(campaign: CampaignSnapshot) -> int:
    """Budget units one grant uses: one coupon, or the campaign's points."""
    return 1 if campaign.reward_kind == RewardKind.COUPON.value else int(campaign.points or 0)


def _write(
    session: Session,
    idx: index.CampaignIndex,
    event: TriggerEvent,
    new: list[Decision],
    paid: list[tuple[CampaignSnapshot, Decision]],
) -> None:
    """Take the budgets, issue the coupons, credit the points, insert the grant rows."""
    caps.take_budgets(session, [(c, _cost(c)) for c, _ in paid if c.budget_total is not None])
    wanted = [
        coupons.CampaignCoupon(
            template_id=c.coupon_template_id or "",
            valid_days=idx.template_valid_days[c.coupon_template_id or ""],
            campaign_id=c.id,
        )
        for c, _ in paid
        if c.reward_kind == RewardKind.COUPON.value
    ]
    issued = iter(coupons.issue_for_campaigns(session, wanted, event.customer_id, event.at))
    credits = []
    for campaign, decision in paid:
        if campaign.reward_kind == RewardKind.COUPON.value:
            decision.coupon_id, decision.coupon_code = next(issued)
        else:
            credits.append(
                points.Credit(
                    delta=int(campaign.points or 0),
                    key=f"grant:{decision.id}",
                    reason=campaign.title or campaign.name,
                    campaign_id=campaign.id,
                    expires_at=event.at + POINTS_VALIDITY,
                )
            )
    points.credit_many(session, event.customer_id, credits, event.at)
    session.connection().execute(_INSERT_GRANTS, [d.row() for d in new])


def to_wire(decisions: Sequence[Decision]) -> list[Grant]:
    """The granted decisions as the wire's Grant list."""
    return [
        Grant(
            campaign_id=d.campaign_id,
            kind="coupon" if d.reward_kind == RewardKind.COUPON.value else "points",
            coupon_code=d.coupon_code,
            points=d.points,
            title=d.title,
        )
        for d in decisions
        if d.outcome == GrantOutcome.GRANTED.value
    ]
