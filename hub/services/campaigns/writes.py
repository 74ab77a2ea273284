"""What an evaluation writes, in as few statements as the database allows.

The budgets taken, the coupons issued (new codes, their expiry timers, the 'issued' audit
lines), the points credited (account, ledger lines, the expiry day's timer) and the
decisions (``campaign_grant`` rows) are one statement on PostgreSQL: data-modifying CTEs,
one round trip instead of up to eight, with the rows passed as JSON documents so the
statement's text never changes (parsed and planned once per connection). SQLite has no
data-modifying CTEs; there each table gets its own statement (nothing travels: SQLite
runs in the process).

The budget UPDATE keeps its guard (``budget_remaining >= n``) and the CHECK >= 0 keeps
its word: the statement reports how many budget rows it changed, and fewer than asked
fails the transaction (unreachable while evaluation holds the rows locked).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, text
from sqlmodel import Session

from hub.db import DriverStatement
from hub.models.campaigns import CampaignGrant
from hub.models.points import PointsAccount, PointsKind
from hub.models.timers import TimerState
from hub.models.types import UtcDateTime
from hub.services import coupons, points
from hub.services.campaigns import caps
from hub.services.errors import Invalid

_GRANT = CampaignGrant.__table__  # type: ignore[attr-defined]
_INSERT_GRANTS = insert(_GRANT)


@dataclass(frozen=True, slots=True)
class Budget:
    """Units to take from one campaign's budget."""

    campaign_id: str
    amount: int


_PG_WRITE = text(
    f"""
WITH budget AS (
    UPDATE campaign AS c SET budget_remaining = c.budget_remaining - x.n
    FROM jsonb_to_recordset(CAST(:budgets AS jsonb)) AS x(id text, n bigint)
    WHERE c.id = x.id AND c.budget_remaining >= x.n
      AND c.id = ANY(CAST(:budget_ids AS text[]))
    RETURNING c.id
), account AS (
    INSERT INTO points_account (customer_id, balance, updated_at)
    SELECT :customer_id, :total, :now WHERE :total > 0
    ON CONFLICT (customer_id) DO UPDATE
    SET balance = points_account.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at
    RETURNING balance
), ledger AS (
    INSERT INTO points_entry (customer_id, kind, delta, balance_after, idempotency_key,
                              reason, campaign_id, expires_at, actor, at)
    SELECT :customer_id, '{PointsKind.EARN.value}', x.delta,
           account.balance - :total + x.running, x.key, x.reason, x.campaign_id,
           x.expires_at, x.actor, :now
    FROM account, jsonb_to_recordset(CAST(:entries AS jsonb)) AS x(
        delta integer, running bigint, key text, reason text, campaign_id text,
        expires_at timestamptz, actor text)
), expiry AS (
    INSERT INTO timer (kind, "key", due_at, payload, state, attempts, created_at)
    SELECT '{points.EXPIRE_TIMER}', x.key, x.due_at, CAST('{{}}' AS json),
           '{TimerState.PENDING.value}', 0, :now
    FROM jsonb_to_recordset(CAST(:timers AS jsonb)) AS x(key text, due_at timestamptz)
    ON CONFLICT (kind, "key") DO NOTHING
), minted AS (
    INSERT INTO coupon (id, code, template_id, customer_id, campaign_id, state, issued_at,
                        expires_at, version)
    SELECT x.id, x.code, x.template_id, x.customer_id, x.campaign_id, x.state, x.issued_at,
           x.expires_at, x.version
    FROM jsonb_to_recordset(CAST(:coupons AS jsonb)) AS x(
        id text, code text, template_id text, customer_id text, campaign_id text, state text,
        issued_at timestamptz, expires_at timestamptz, version integer)
), coupon_expiry AS (
    INSERT INTO timer (kind, "key", due_at, payload, state, attempts, created_at)
    SELECT x.kind, x.key, x.due_at, CAST(x.payload AS json), x.state, x.attempts, x.created_at
    FROM jsonb_to_recordset(CAST(:coupon_timers AS jsonb)) AS x(
        kind text, key text, due_at timestamptz, payload jsonb, state text, attempts integer,
        created_at timestamptz)
), audit AS (
    INSERT INTO coupon_event (coupon_id, action, actor, store_id, client_key, reason, detail,
                              at)
    SELECT x.coupon_id, x.action, x.actor, x.store_id, x.client_key, x.reason,
           CAST(x.detail AS json), x.at
    FROM jsonb_to_recordset(CAST(:coupon_events AS jsonb)) AS x(
        coupon_id text, action text, actor text, store_id text, client_key text, reason text,
        detail jsonb, at timestamptz)
), decided AS (
    INSERT INTO campaign_grant (id, campaign_id, customer_id, store_id, source_event,
                                "trigger", outcome, reason, reward_kind, coupon_id, points,
                                title, store_day, at)
    SELECT x.id, x.campaign_id, x.customer_id, x.store_id, x.source_event, x."trigger",
           x.outcome, x.reason, x.reward_kind, x.coupon_id, x.points, x.title, x.store_day,
           x.at
    FROM jsonb_to_recordset(CAST(:grants AS jsonb)) AS x(
        id text, campaign_id text, customer_id text, store_id text, source_event text,
        "trigger" text, outcome text, reason text, reward_kind text, coupon_id text,
        points integer, title text, store_day text, at timestamptz)
)
SELECT (SELECT count(*) FROM budget) AS budgets_taken
"""
).bindparams(bindparam("now", type_=UtcDateTime))


def _json(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a JSON array, times as ISO 8601 with their UTC offset."""
    return json.dumps(rows, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _expiry_day(expires_at: datetime) -> tuple[str, datetime]:
    """The expiry timer of a lot (see ``points._schedule_expiry``): its key and due time."""
    day = expires_at.astimezone(UTC).date()
    return points.expiry_key(expires_at), datetime.combine(day + timedelta(days=1), time.min, UTC)


def write(
    session: Session,
    customer_id: str,
    now: datetime,
    budgets: Sequence[Budget],
    credits: Sequence[points.Credit],
    grants: Sequence[dict[str, Any]],
    minted: coupons.CampaignIssue | None = None,
) -> None:
    """Take the budgets, insert the coupons ``minted`` (pool codes were claimed already),
    credit the points, insert the grant rows."""
    if any(c.delta <= 0 for c in credits):
        raise Invalid("a credit needs a positive amount")
    minted = minted or coupons.CampaignIssue([], [], [], [])
    if session.get_bind().dialect.name != "postgresql":
        _write_each(session, customer_id, now, budgets, credits, grants, minted)
        return
    total = sum(c.delta for c in credits)
    entries, running = [], 0
    for c in credits:
        running += c.delta
        entries.append(
            {
                "delta": c.delta,
                "running": running,
                "key": c.key,
                "reason": c.reason,
                "campaign_id": c.campaign_id,
                "expires_at": c.expires_at,
                "actor": c.actor,
            }
        )
    timers = [
        {"key": key, "due_at": due}
        for key, due in sorted(
            {_expiry_day(c.expires_at) for c in credits if c.expires_at is not None}
        )
    ]
    per_campaign: dict[str, int] = {}
    for b in budgets:
        per_campaign[b.campaign_id] = per_campaign.get(b.campaign_id, 0) + b.amount
    taken = (
        session.connection()
        .execute(
            _PG_WRITE,
            {
                "budgets": _json([{"id": k, "n": n} for k, n in sorted(per_campaign.items())]),
                "budget_ids": sorted(per_campaign),
                "customer_id": customer_id,
                "total": total,
                "now": now,
                "entries": _json(entries),
                "timers": _json(timers),
                "grants": _json(grants),
                "coupons": _json(minted.coupons),
                "coupon_timers": _json(minted.timers),
                "coupon_events": _json(minted.events),
            },
        )
        .scalar_one()
    )
    if taken != len(per_campaign):
        # Unreachable while the rows stay locked; fail the transaction rather than overrun.
        raise RuntimeError("a campaign budget changed under its lock")
    _expire_account(session, customer_id)


_ENTRY_KEYS = (
    "customer_id",
    "kind",
    "delta",
    "balance_after",
    "idempotency_key",
    "reason",
    "campaign_id",
    "expires_at",
    "actor",
    "at",
)


# The columns of the rows ``coupons.mint_for_campaigns`` returns.
_COUPON_KEYS = (
    "id",
    "code",
    "template_id",
    "customer_id",
    "campaign_id",
    "state",
    "issued_at",
    "expires_at",
    "version",
)
_TIMER_KEYS = ("kind", "key", "due_at", "payload", "state", "attempts", "created_at")
_EVENT_KEYS = ("coupon_id", "action", "actor", "store_id", "client_key", "reason", "detail", "at")


@dataclass(frozen=True)
class _SqliteStatements:
    take_budget: DriverStatement
    credit: DriverStatement
    entries: DriverStatement
    expiry_timer: DriverStatement
    grants: DriverStatement
    coupons: DriverStatement
    coupon_timers: DriverStatement
    coupon_events: DriverStatement


_SQLITE: dict[str, _SqliteStatements] = {}


def _sqlite(session: Session, grant_keys: Sequence[str]) -> _SqliteStatements:
    """The SQLite statements, compiled on first use."""
    dialect = session.get_bind().dialect
    found = _SQLITE.get(dialect.name)
    if found is None:
        pts = points.statements_for(session)
        found = _SQLITE[dialect.name] = _SqliteStatements(
            take_budget=DriverStatement(caps.TAKE_BUDGET),
            credit=DriverStatement(pts.credit),
            entries=DriverStatement(insert(points.ENTRY), _ENTRY_KEYS),
            expiry_timer=DriverStatement(pts.expiry_timer),
            grants=DriverStatement(_INSERT_GRANTS, grant_keys),
            coupons=DriverStatement(insert(coupons.COUPON), _COUPON_KEYS),
            coupon_timers=DriverStatement(insert(coupons.TIMER), _TIMER_KEYS),
            coupon_events=DriverStatement(insert(coupons.EVENT), _EVENT_KEYS),
        )
    return found


def _write_each(
    session: Session,
    customer_id: str,
    now: datetime,
    budgets: Sequence[Budget],
    credits: Sequence[points.Credit],
    grants: Sequence[dict[str, Any]],
    minted: coupons.CampaignIssue,
) -> None:
    """SQLite: one statement per table (``hub.db.DriverStatement``)."""
    if not grants:
        return
    sql = _sqlite(session, list(grants[0]))
    conn = session.connection()
    if minted.coupons:
        sql.coupons.run_many(conn, minted.coupons)
    if minted.timers:
        sql.coupon_timers.run_many(conn, minted.timers)
        sql.coupon_events.run_many(conn, minted.events)
    per_campaign: dict[str, int] = {}
    for b in budgets:
        per_campaign[b.campaign_id] = per_campaign.get(b.campaign_id, 0) + b.amount
    if per_campaign:
        params = [{"cid": cid, "n": n} for cid, n in sorted(per_campaign.items())]
        if sql.take_budget.run_many(conn, params) != len(params):
            # Unreachable under SQLite's write lock; fail the transaction rather than overrun.
            raise RuntimeError("a campaign budget changed under its lock")
    if credits:
        total = sum(c.delta for c in credits)
        (after,) = sql.credit.one(conn, {"customer_id": customer_id, "total": total, "now": now})
        rows = points.earn_rows(customer_id, credits, int(after), now)
        sql.entries.run_many(conn, rows)
        for expires_at in sorted({c.expires_at for c in credits if c.expires_at is not None}):
            key, due = _expiry_day(expires_at)
            if points.expiry_scheduled(session, key):
                continue
            sql.expiry_timer.run(conn, {"key": key, "due_at": due, "now": now})
            points.remember_scheduled(session, key)
        _expire_account(session, customer_id)
    sql.grants.run_many(conn, grants)


def _expire_account(session: Session, customer_id: str) -> None:
    """The ORM may hold this customer's points account from earlier: it is stale now."""
    account = session.identity_map.get(session.identity_key(PointsAccount, customer_id))
    if account is not None:
        session.expire(account)
