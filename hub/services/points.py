"""Reward points: append-only ledger, balance never negative, idempotent by client key.

Every movement first locks the customer's ``points_account`` row (SQLite: the write
lock of ``BEGIN IMMEDIATE``), then looks up its idempotency key, then moves the balance
with ``UPDATE ... WHERE balance + delta >= 0``: a concurrent spend waits for the lock and
then sees the committed balance, so two spends can never both take the last points.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from hub.models.points import PointsAccount, PointsEntry, PointsKind
from hub.models.timers import Timer, TimerState
from hub.models.types import UtcDateTime
from hub.services.errors import Conflict, Invalid
from hub.services.timers import schedule, timer_handler

log = logging.getLogger(__name__)

EXPIRE_TIMER = "points.expire"
_SCHEDULED_INFO_KEY = "points_expiry_scheduled"
# How many ledger lines a balance view shows.
RECENT_ENTRIES = 50
_ACCOUNT = PointsAccount.__table__  # type: ignore[attr-defined]
_ENTRY = ENTRY = PointsEntry.__table__  # type: ignore[attr-defined]
_TIMER = Timer.__table__  # type: ignore[attr-defined]


def _lock_account(session: Session, customer_id: str, now: datetime) -> PointsAccount:
    """The customer's account row, created if missing, locked for this transaction."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.exec(
        insert(PointsAccount)  # type: ignore[call-overload]
        .values(customer_id=customer_id, balance=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["customer_id"])
    )
    account = session.exec(
        select(PointsAccount)
        .where(PointsAccount.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return account


def move(
    session: Session,
    customer_id: str,
    kind: PointsKind,
    delta: int,
    key: str,
    now: datetime,
    *,
    reason: str = "",
    actor: str = "",
    campaign_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[PointsEntry, bool]:
    """Append one ledger line and move the balance; returns (entry, replayed).

    The same ``key`` again returns the first entry (and changes nothing); the same key
    with a different customer or amount is a Conflict, not a silent replay.
    """
    if delta == 0:
        raise Invalid("a points movement needs a non-zero amount")
    debit_kinds = (PointsKind.SPEND, PointsKind.EXPIRE)
    if (kind is PointsKind.EARN and delta < 0) or (kind in debit_kinds and delta > 0):
        raise Invalid(f"{kind.value} has the wrong sign")
    account = _lock_account(session, customer_id, now)
    prior = session.exec(select(PointsEntry).where(PointsEntry.idempotency_key == key)).first()
    if prior is not None:
        if prior.customer_id != customer_id or prior.delta != delta or prior.kind != kind:
            raise Conflict("client_key was already used for another movement", code="key_reused")
        return prior, True
    # Read before the UPDATE: the ORM synchronises ``account.balance`` with it.
    before = account.balance
    if before + delta < 0:
        raise Conflict(
            f"not enough points: balance {before}, needs {-delta}",
            code="insufficient_points",
        )
    changed = session.exec(
        update(PointsAccount)  # type: ignore[call-overload]
        .where(
            col(PointsAccount.customer_id) == customer_id,
            col(PointsAccount.balance) + delta >= 0,
        )
        .values(balance=PointsAccount.balance + delta, updated_at=now)
    ).rowcount
    if not changed:  # unreachable while the row lock holds; kept as the invariant's guard
        raise Conflict("not enough points", code="insufficient_points")
    entry = PointsEntry(
        customer_id=customer_id,
        kind=kind.value,
        delta=delta,
        balance_after=before + delta,
        idempotency_key=key,
        reason=reason,
        campaign_id=campaign_id,
        expires_at=expires_at,
        actor=actor,
        at=now,
    )
    session.add(entry)
    session.flush()
    if expires_at is not None and delta > 0:
        _schedule_expiry(session, customer_id, expires_at, now)
    return entry, False


@dataclass(frozen=True)
class Credit:
    """One earn line of a batch (``credit_many``)."""

    delta: int
    key: str
    reason: str
    campaign_id: str | None
    expires_at: datetime | None
    actor: str = "campaign"


def credit_many(
    session: Session, customer_id: str, credits: Sequence[Credit], now: datetime
) -> None:
    """Earn several lines under keys nobody can have used yet (new grants' ids), at once.

    The hot path of campaign grants: no replay lookup; the balance moves once, by the
    total, with one upsert ``... ON CONFLICT DO UPDATE ... RETURNING balance`` (which
    creates the account on a customer's first credit and takes its row lock); the ledger
    lines go in one statement, each with its running ``balance_after``; the expiry timer
    is one ``INSERT ... ON CONFLICT DO NOTHING`` per expiry day.
    """
    if not credits:
        return
    if any(c.delta <= 0 for c in credits):
        raise Invalid("a credit needs a positive amount")
    total = sum(c.delta for c in credits)
    statements = _statements(session)
    conn = session.connection()
    after = int(
        conn.execute(
            statements.credit, {"customer_id": customer_id, "total": total, "now": now}
        ).scalar_one()
    )
    rows = earn_rows(customer_id, credits, after, now)
    conn.execute(insert(_ENTRY), rows)
    for expires_at in sorted({c.expires_at for c in credits if c.expires_at is not None}):
        _ensure_expiry_timer(session, expires_at, now)
    # The ORM may hold this account from earlier in the transaction: it is stale now.
    account = session.identity_map.get(session.identity_key(PointsAccount, customer_id))
    if account is not None:
        session.expire(account)


def earn_rows(
    customer_id: str, credits: Sequence[Any], balance_after: int, now: datetime
) -> list[dict[str, Any]]:
    """Ledger rows for ``credits`` (in order) that left the balance at ``balance_after``."""
    running = balance_after - sum(c.delta for c in credits)
    rows = []
    for c in credits:
        running += c.delta
        rows.append(
            {
                "customer_id": customer_id,
                "kind": PointsKind.EARN.value,
                "delta": c.delta,
                "balance_after": running,
                "idempotency_key": c.key,
                "reason": c.reason,
                "campaign_id": c.campaign_id,
                "expires_at": c.expires_at,
                "actor": c.actor,
                "at": now,
            }
        )
    return rows


@dataclass(frozen=True)
class _Statements:
    """The credit path's upserts for one dialect, built once."""

    credit: Any  # create the account or add to it; RETURNING the new balance
    expiry_timer: Any  # the expiry day's timer unless it exists


_STATEMENTS: dict[str, _Statements] = {}


def _statements(session: Session) -> _Statements:
    """The upserts for the session's dialect (PostgreSQL or SQLite: both have ON CONFLICT)."""
    dialect = session.get_bind().dialect.name
    found = _STATEMENTS.get(dialect)
    if found is None:
        insert_for = pg_insert if dialect == "postgresql" else sqlite_insert
        total, now = bindparam("total"), bindparam("now", type_=UtcDateTime)
        credit = (
            insert_for(_ACCOUNT)
            .values(customer_id=bindparam("customer_id"), balance=total, updated_at=now)
            .on_conflict_do_update(
                index_elements=["customer_id"],
                set_={"balance": _ACCOUNT.c.balance + total, "updated_at": now},
            )
            .returning(_ACCOUNT.c.balance)
        )
        timer = (
            insert_for(_TIMER)
            .values(
                kind=EXPIRE_TIMER,
                key=bindparam("key"),
                due_at=bindparam("due_at", type_=UtcDateTime),
                payload={},
                state=TimerState.PENDING.value,
                attempts=0,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["kind", "key"])
        )
        found = _STATEMENTS[dialect] = _Statements(credit=credit, expiry_timer=timer)
    return found


def statements_for(session: Session) -> Any:
    """The credit path's statements for the session's dialect: ``credit`` (the account
    upsert, RETURNING the balance) and ``expiry_timer`` (the day's timer unless it exists)."""
    return _statements(session)


def expiry_key(expires_at: datetime) -> str:
    """The key of the expiry timer of a lot expiring at ``expires_at``: its UTC day."""
    return expires_at.astimezone(UTC).date().isoformat()


def expiry_timer_column() -> Any:
    """Whether the expiry timer ``expiry_key`` (a parameter) exists, as a column, for a
    statement that reads other things in the same trip (SQLite's one read of a check-in's
    state: under the transaction's write lock, a timer seen there cannot go away)."""
    return (
        select(func.count())
        .where(_TIMER.c.kind == EXPIRE_TIMER, _TIMER.c.key == bindparam("expiry_key"))
        .scalar_subquery()
        .label("expiry_scheduled")
    )


def expiry_scheduled(session: Session, key: str) -> bool:
    """Whether this transaction has already made sure the expiry timer ``key`` exists."""
    return key in _scheduled(session)


def remember_scheduled(session: Session, key: str) -> None:
    """Note that this transaction made sure the expiry timer ``key`` exists."""
    _remember_scheduled(session, key)


def _ensure_expiry_timer(session: Session, expires_at: datetime, now: datetime) -> None:
    """The expiry day's timer (see ``_schedule_expiry``) in one statement: insert if missing."""
    day = expires_at.astimezone(UTC).date()
    key = day.isoformat()
    if key in _scheduled(session):
        return
    day_end = datetime.combine(day + timedelta(days=1), time.min, UTC)
    session.connection().execute(
        _statements(session).expiry_timer, {"key": key, "due_at": day_end, "now": now}
    )
    _remember_scheduled(session, key)


def balance(session: Session, customer_id: str) -> int:
    """The customer's current balance (0 without an account)."""
    account = session.get(PointsAccount, customer_id)
    return account.balance if account else 0


def recent(session: Session, customer_id: str) -> Sequence[PointsEntry]:
    """The customer's newest ledger lines."""
    return session.exec(
        select(PointsEntry)
        .where(PointsEntry.customer_id == customer_id)
        .order_by(col(PointsEntry.id).desc())
        .limit(RECENT_ENTRIES)
    ).all()


def ledger_sum(session: Session, customer_id: str) -> int:
    """The sum of every ledger line: always equal to the balance (tests check it)."""
    total = session.exec(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.customer_id == customer_id
        )
    ).one()
    return int(total)


def _schedule_expiry(
    session: Session, customer_id: str, expires_at: datetime, now: datetime
) -> None:
    """One timer per expiry day (UTC) for everybody, due at the end of that day.

    After the day's first credit the timer exists, so a grant costs one lookup (and
    none for the next credits of the same transaction) instead of a timer row per lot,
    and the timer table grows by one row a day, not one per customer.
    """
    day = expires_at.astimezone(UTC).date()
    key = day.isoformat()
    # Within one transaction the same key needs scheduling once.
    if key in _scheduled(session):
        return
    day_end = datetime.combine(day + timedelta(days=1), time.min, UTC)
    schedule(session, EXPIRE_TIMER, key, day_end, now=now)
    _remember_scheduled(session, key)


def _scheduled(session: Session) -> set[str]:
    """The expiry timers this transaction has made sure of (see ``_remember_scheduled``)."""
    memo = session.info.get(_SCHEDULED_INFO_KEY)
    if memo is None or memo[0] is not _innermost(session):
        return set()
    return memo[1]  # type: ignore[no-any-return]


def _remember_scheduled(session: Session, key: str) -> None:
    """Note that this transaction has made sure the expiry timer ``key`` exists.

    The note holds for the innermost transaction it was made in (savepoint or not): when
    another is current (the next transaction, a savepoint begun or ended since), it is
    void, so a rolled-back schedule is made again (an ON CONFLICT DO NOTHING insert: a
    redundant one costs nothing). No session event listener is needed for this.
    """
    current = _innermost(session)
    memo = session.info.get(_SCHEDULED_INFO_KEY)
    if memo is None or memo[0] is not current:
        memo = session.info[_SCHEDULED_INFO_KEY] = (current, set())
    memo[1].add(key)


def _innermost(session: Session) -> Any:
    """The session's current savepoint, else its transaction (None outside one)."""
    return session.get_nested_transaction() or session.get_transaction()


def expiring_customers(day: date) -> Any:
    """The customers with a lot expiring on UTC ``day``, in id order (the sweep's lock
    order); read by the partial index on ``expires_at``."""
    start = datetime.combine(day, time.min, UTC)
    return (
        select(PointsEntry.customer_id)
        .where(
            col(PointsEntry.delta) > 0,
            col(PointsEntry.expires_at) >= start,
            col(PointsEntry.expires_at) < start + timedelta(days=1),
        )
        .distinct()
        .order_by(col(PointsEntry.customer_id))
    )


@timer_handler(EXPIRE_TIMER)
def _expire_day(session: Session, timer: Timer, now: datetime) -> None:
    """Expire the points of every customer with a lot expiring on the timer's day."""
    day = date.fromisoformat(timer.key)
    for customer_id in session.exec(expiring_customers(day)).all():
        expire_customer(session, customer_id, now, f"expire:{customer_id}:{timer.key}")


def expire_customer(session: Session, customer_id: str, now: datetime, key: str) -> int:
    """Expire what is left of the customer's lots whose date has passed; returns the amount.

    Debits (spends, expiries, negative adjustments) are taken from the lots that expire
    first, so what remains of the expired lots is ``credits(expired lots) - all debits``;
    that much (at most the balance) goes, in one ledger line.
    """
    account = _lock_account(session, customer_id, now)
    credits = session.exec(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.customer_id == customer_id,
            col(PointsEntry.delta) > 0,
            col(PointsEntry.expires_at).is_not(None),
            col(PointsEntry.expires_at) <= now,
        )
    ).one()
    debits = -session.exec(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.customer_id == customer_id, col(PointsEntry.delta) < 0
        )
    ).one()
    amount = min(account.balance, max(0, int(credits) - int(debits)))
    if amount > 0:
        move(
            session,
            customer_id,
            PointsKind.EXPIRE,
            -amount,
            key,
            now,
            reason="points past their date",
            actor="system",
        )
    return amount
