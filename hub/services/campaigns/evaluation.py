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

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session

from hub.db import DriverStatement
from hub.models.campaigns import CampaignGrant, GrantOutcome, RewardKind
from hub.models.coupons import Coupon
from hub.models.customers import Customer
from hub.models.types import new_id
from hub.services import coupons, points
from hub.services.campaigns import caps, facts, index, rules, writes
from hub.services.campaigns.index import CampaignSnapshot
from hub.services.campaigns.rules import TriggerEvent
from storewave.wire import Grant

log = logging.getLogger(__name__)

# Points a campaign gives stay spendable for a year, then the durable timer expires them.
POINTS_VALIDITY = timedelta(days=365)
# Enum members' values as plain strings (an enum attribute lookup costs ~1 us, and the
# decision loop makes dozens per evaluation).
_GRANTED, _HOLDOUT, _CAPPED = (
    o.value for o in (GrantOutcome.GRANTED, GrantOutcome.HOLDOUT, GrantOutcome.CAPPED)
)
_POINTS, _COUPON_REWARD = RewardKind.POINTS.value, RewardKind.COUPON.value
_HOLDS_SLOT = (_GRANTED, _HOLDOUT)

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
    store: index.StoreFacts | None
    candidates: list[CampaignSnapshot]
    eligible: list[CampaignSnapshot] = field(default_factory=list)
    day: str = ""
    keys: dict[str, str] = field(default_factory=dict)


def candidates_for(
    idx: index.CampaignIndex, store: rules.StoreRules, event: TriggerEvent
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
    customer: Mapping[str, Any] | None = None,
) -> list[Decision]:
    """Decide every live campaign for ``event``; returns the decisions (new and replayed).

    The caller already holds the event's customer's row locked in this transaction (the
    check-in locks it first) when it passes ``customer`` (that row's ``id`` and
    ``facts.AUDIENCE_COLUMNS``) or ``locked`` (the loaded ORM row): evaluation then uses
    those values and neither reads nor locks the row again.
    """
    held: list[Mapping[str, Any]] = []
    if customer is not None:
        held.append(customer)
    elif locked is not None:
        held.append(facts.row_of(locked))
    return evaluate_many(session, [event], global_cap=global_cap, rows=held)[0]


def evaluate_many(
    session: Session,
    events: Sequence[TriggerEvent],
    *,
    global_cap: int | None = None,
    locked: Sequence[Customer] = (),
    rows: Sequence[Mapping[str, Any]] = (),
) -> list[list[Decision]]:
    """Decide every event (in order) in the caller's transaction; the decisions per event.

    All the customers are locked first (by id), then every budget any of them may use
    (by id): see the module docstring for why the order matters. Customers in
    ``locked`` (ORM rows) or ``rows`` (``id`` and ``facts.AUDIENCE_COLUMNS``) are already
    locked by the caller (before anything else it did).
    """
    cap = caps.global_daily_cap(session) if global_cap is None else global_cap
    held = {c.id: facts.row_of(c) for c in locked}
    held.update((r["id"], dict(r)) for r in rows)
    if len(events) == 1:
        return [_evaluate_single(session, events[0], cap, held)]
    idx = index.current(session)
    plans = []
    for event in events:
        store = index.store_facts(session, event.store_id, event.at)
        plans.append(_Plan(event, store, candidates_for(idx, store, event) if store else []))
    customer_ids = sorted({p.event.customer_id for p in plans if p.candidates})
    if not customer_ids:
        return [[] for _ in plans]
    customers = {cid: held[cid] for cid in customer_ids if cid in held}
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
        _plan_eligible(plan, known)
    budgets = caps.lock_budgets(
        session, {c.id for p in plans for c in p.eligible if c.budget_total is not None}
    )
    return [
        _evaluate_one(session, idx, plan, budgets, cap) if plan.candidates else [] for plan in plans
    ]


def _plan_eligible(plan: _Plan, known: rules.CustomerFacts) -> None:
    """Fill in who of the plan's candidates the customer is eligible for, the day, the keys."""
    assert plan.store is not None
    plan.eligible = [
        c
        for c in plan.candidates
        if not rules.audience_reasons(c, known)
        and not rules.history_reasons(c, known, plan.event.at)
    ]
    plan.day = rules.store_day(plan.store, plan.event.at)
    plan.keys = {c.id: rules.source_key(c, plan.event) for c in plan.candidates}


# Rebuilds of the index one evaluation may see (campaigns changing while it reads) before
# it goes on with the newest it built.
_VERSION_TRIES = 3


@dataclass(frozen=True, slots=True)
class _State:
    """One read of what an evaluation needs to know (``_STATE``)."""

    version: int | None
    counts: Any
    history: tuple[int, int, datetime | None]
    budgets: Any


@functools.cache
def _state_statement(dialect: str, with_history: bool) -> Any:
    """The campaigns' version, the customer's grant counts and visit history (when a
    candidate reads it): one statement, one round trip. PostgreSQL adds the candidates'
    budgets, their rows locked (``caps.budgets_column_locked_pg``); SQLite adds them
    unlocked (see ``_sqlite_state``)."""
    columns = [index.version_column(), caps.counts_column(dialect)]
    if with_history:
        columns.extend(facts.HISTORY_COLUMNS)
    if dialect == "postgresql":
        columns.append(caps.budgets_column_locked_pg(index.version_expression()))
    return select(*columns)


def _read_state(
    session: Session,
    dialect: str,
    event: TriggerEvent,
    candidates: list[CampaignSnapshot],
    expected_version: int | None,
) -> _State:
    """Run ``_state_statement`` for the event's customer and these candidates (chosen by
    the index of ``expected_version``)."""
    with_history = facts.any_reads_history(candidates)
    params: dict[str, Any] = {"customer_id": event.customer_id}
    if with_history:
        params.update(store_id=event.store_id, visit_id=event.visit_id or "")
    budget_ids = sorted(c.id for c in candidates if c.budget_total is not None)
    if dialect == "sqlite":
        # The transaction holds the database's write lock since BEGIN IMMEDIATE, so a
        # plain read of the budgets is as exact as PostgreSQL's row locks (taken by the
        # same read there); the statement is compiled once and run on the driver's cursor,
        # as the writes are (``hub.db.DriverStatement``). It also tells whether the points
        # expiry timer the grants would schedule exists already: if so, the writes skip
        # its insert.
        params["budget_ids_json"] = json.dumps(budget_ids)
        expiry = points.expiry_key(event.at + POINTS_VALIDITY)
        params["expiry_key"] = expiry
        row = _sqlite_state(with_history).one(session.connection(), params)
        version, counts, *rest = row
        history = facts.NO_HISTORY
        if with_history:
            visits, here, previous = rest[:3]
            history = (visits, here, previous)
        if rest[-1]:
            points.remember_scheduled(session, expiry)
        return _State(version=version, counts=counts, history=history, budgets=rest[-2])
    statement = _state_statement(dialect, with_history)
    if dialect == "postgresql":
        params.update(budget_ids=budget_ids, expected_version=expected_version)
    row = session.connection().execute(statement, params).one()
    return _State(
        version=row.campaigns_version,
        counts=row.grant_counts,
        history=(
            (row.visits_before, row.store_visits_before, row.previous_store_visit_at)
            if with_history
            else facts.NO_HISTORY
        ),
        budgets=row.budgets if dialect == "postgresql" else None,
    )


_SQLITE_STATE: dict[bool, DriverStatement] = {}


def _sqlite_state(with_history: bool) -> DriverStatement:
    """The SQLite state read (with or without the history columns), built on first use
    (its time column read back as SQLAlchemy reads it)."""
    found = _SQLITE_STATE.get(with_history)
    if found is None:
        columns = [*_state_statement("sqlite", with_history).selected_columns]
        columns.extend((caps.budgets_column_sqlite(), points.expiry_timer_column()))
        found = _SQLITE_STATE[with_history] = DriverStatement(select(*columns))
    return found


def _evaluate_single(
    session: Session, event: TriggerEvent, global_cap: int, held: dict[str, Any]
) -> list[Decision]:
    """One event (a check-in, a kiosk sign-in): the fewest statements.

    The index cached in this process is checked by the same statement that reads the
    customer's grant counts and history and the budgets of the candidates that have one
    (PostgreSQL: their rows locked, in id order, by that statement; SQLite: read under the
    transaction's write lock): a changed version rebuilds the index and reads again (the
    rows were not locked then). Then the decisions are written.

    PostgreSQL thus locks the budget rows of every candidate, including those the
    customer turns out not to be eligible for (the audience is decided after the read):
    a few more rows held to the commit, for one round trip less.
    """
    store = index.store_facts(session, event.store_id, event.at)
    if store is None:
        return []
    idx = index.cached(session)
    checked = idx is None
    if idx is None:
        idx = index.current(session)
    candidates = candidates_for(idx, store, event)
    if not candidates and not checked:
        # Nothing here by the cached index: one version check (as any evaluation pays).
        idx = index.current(session)
        candidates = candidates_for(idx, store, event)
    if not candidates:
        return []
    row = held.get(event.customer_id)
    if row is None:
        row = facts.lock_customers(session, [event.customer_id]).get(event.customer_id)
        if row is None:
            return []
    dialect = session.get_bind().dialect.name
    for attempt in range(_VERSION_TRIES):
        state = _read_state(session, dialect, event, candidates, idx.version)
        if state.version == idx.version or attempt == _VERSION_TRIES - 1:
            break
        idx = index.current(session, state.version, known=True)
        candidates = candidates_for(idx, store, event)
        if not candidates:
            return []
    tags: frozenset[str] = frozenset()
    if facts.any_reads_tags(candidates):
        tags = facts.load_tags(session, [event.customer_id]).get(event.customer_id, frozenset())
    plan = _Plan(event, store, candidates)
    _plan_eligible(plan, facts.facts_of(row, tags, state.history))
    if dialect == "sqlite" or (dialect == "postgresql" and _read_locked(state, idx)):
        budgets = caps.budgets_of(state.budgets)
    else:
        budgets = caps.lock_budgets(
            session, {c.id for c in plan.eligible if c.budget_total is not None}
        )
    counts = caps.counts_of(state.counts, plan.day)
    return _evaluate_one(session, idx, plan, budgets, global_cap, counts)


def _read_locked(state: _State, idx: index.CampaignIndex) -> bool:
    """Whether PostgreSQL's state read locked the candidates' budget rows: it does when
    the campaigns' version it read is the one the candidates came from."""
    return idx.version is not None and state.version == idx.version


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
    counts: caps.GrantCounts | None = None,
) -> list[Decision]:
    """Walk one event's candidates in priority order, then write what was decided.

    ``counts``: the customer's grant counts if already read (else one query here).
    """
    event = plan.event
    # A source created in this transaction (the visit a check-in just opened) cannot
    # have decisions yet: no replay lookup.
    existing = {} if event.new_source else _existing(session, plan)
    eligible = {c.id for c in plan.eligible}
    if counts is None:
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
        if decision.outcome == _GRANTED:
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
        outcome=_GRANTED,
        reason="",
        reward_kind=campaign.reward_kind,
        coupon_id=None,
        points=None,
        title=campaign.title,
        store_day=plan.day,
        at=event.at,
    )
    if rules.in_holdout(campaign, event.customer_id):
        decision.outcome = _HOLDOUT
    elif reason := caps.cap_reason(campaign, counts, global_cap):
        decision.outcome, decision.reason = _CAPPED, reason
    elif not caps.reserve_budget(budgets, campaign, _cost(campaign)):
        decision.outcome, decision.reason = _CAPPED, "budget_exhausted"
    if decision.outcome != _GRANTED:
        # DEBUG: a holdout or a cap is routine (every tenth customer may be held out) and
        # the decision row already records it; INFO here was a line per check-in.
        log.debug(
            "campaign grant not given",
            extra={"campaign": campaign.id, "outcome": decision.outcome, "reason": decision.reason},
        )
    elif campaign.reward_kind == _POINTS:
        decision.points = campaign.points
    return decision


def _cost(campaign: CampaignSnapshot) -> int:
    """Budget units one grant uses: one coupon, or the campaign's points."""
    return 1 if campaign.reward_kind == _COUPON_REWARD else int(campaign.points or 0)


def _write(
    session: Session,
    idx: index.CampaignIndex,
    event: TriggerEvent,
    new: list[Decision],
    paid: list[tuple[CampaignSnapshot, Decision]],
) -> None:
    """Issue the coupons, then take the budgets, credit the points, insert the grant rows."""
    wanted = [
        coupons.CampaignCoupon(
            template_id=c.coupon_template_id or "",
            valid_days=idx.template_valid_days[c.coupon_template_id or ""],
            campaign_id=c.id,
        )
        for c, _ in paid
        if c.reward_kind == _COUPON_REWARD
    ]
    minted = coupons.mint_for_campaigns(
        session, wanted, event.customer_id, event.at, idx.pooled_templates
    )
    if minted.ran_dry:
        index.pools_ran_dry(session, minted.ran_dry)
    issued = iter(minted.issued)
    credits = []
    for campaign, decision in paid:
        if campaign.reward_kind == _COUPON_REWARD:
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
    budgets = [writes.Budget(c.id, _cost(c)) for c, _ in paid if c.budget_total is not None]
    grants = [d.row() for d in new]
    writes.write(session, event.customer_id, event.at, budgets, credits, grants, minted)


def to_wire(decisions: Sequence[Decision]) -> list[Grant]:
    """The granted decisions as the wire's Grant list."""
    return [
        Grant(
            campaign_id=d.campaign_id,
            kind="coupon" if d.reward_kind == _COUPON_REWARD else "points",
            coupon_code=d.coupon_code,
            points=d.points,
            title=d.title,
        )
        for d in decisions
        if d.outcome == _GRANTED
    ]
