"""Durable timers: schedule work for later, run it exactly once when due, survive restarts.

Every time-driven rule of the hub (coupon expiry, OAO acceptance deadlines, journey
steps) is a row in ``timer``. ``run_due`` claims due rows in batches (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL so several hub processes share the work; SQLite's
``BEGIN IMMEDIATE`` serialises writers instead), runs each handler inside a savepoint
together with marking the timer done, and commits the batch: a handler's effects and
the "done" mark land together or not at all, so a crash never runs a step twice.
After downtime, overdue timers simply run on the next sweep (catch-up).

A kind whose work is naturally set-based (journey steps: thousands of instances due at
the same moment) registers a *batch* handler instead: it gets every claimed timer of
its kind at once and does its writes in a few statements; the batch and its "done"
marks still commit together. One query claims the due timers of every kind this
process handles, in due order. A batch handler runs without a savepoint; if it raises,
the transaction is rolled back and the same timers run again one at a time, each in a
savepoint, so a single bad timer is isolated (retried with backoff, failed after N tries).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hub.clock import Clock
from hub.models.timers import Timer, TimerState
from hub.models.types import UtcDateTime
from hub.services.bulk import BulkSql
from hub.services.periodic import PeriodicWorker

log = logging.getLogger(__name__)

TimerHandler = Callable[[Session, Timer, datetime], None]


class DueTimer(NamedTuple):
    """A claimed timer as a batch handler sees it (plain values, no ORM object).

    A named tuple: a sweep makes one per claimed timer (hundreds of thousands in a
    journey wave) and a tuple is made three times faster than a frozen dataclass.
    """

    id: int
    kind: str
    key: str
    due_at: datetime
    raw_payload: Any  # JSON text (SQLite) or the decoded value (PostgreSQL)
    attempts: int

    @property
    def payload(self) -> dict[str, Any]:
        """The payload, decoded on first use (a handler that keys on ``key`` never pays)."""
        raw = self.raw_payload
        return json.loads(raw) if isinstance(raw, str) else dict(raw or {})


@lru_cache(maxsize=1024)
def _utc_text(raw: str) -> datetime:
    return datetime.fromisoformat(raw).replace(tzinfo=UTC)


def utc_value(value: Any) -> datetime:
    """A timestamp as the driver returns it (SQLite text, PostgreSQL aware) in UTC."""
    return _utc_text(value) if isinstance(value, str) else value.astimezone(UTC)


_utc = utc_value


BatchHandler = Callable[[Session, list[DueTimer], datetime], None]

# Timers claimed per transaction: large enough that 10,000 due timers take a few dozen
# commits, small enough that one batch holds the SQLite write lock for well under a second.
DEFAULT_BATCH = 500
# A handler that raises is retried with exponential backoff starting here ...
RETRY_BASE_S = 30.0
# ... and given up on (state failed, logged) after this many attempts: a bug or a
# permanently broken dependency needs a person, not an endless loop.
MAX_ATTEMPTS = 5
# Background sweep period: timers fire at most this late.
DEFAULT_SWEEP_INTERVAL_S = 1.0
# Timers per batch-handler call: a few set-based statements over this many rows keep the
# SQLite write lock for a fraction of a second.
DEFAULT_SET_BATCH = 2_000

# Per-timer kinds (OAO acceptance deadlines) are latency-sensitive; batch kinds (journey
# steps) are not: while a sweep works through a backlog of batch-kind timers due earlier
# (a wave of 100,000 journey steps takes tens of seconds), the per-timer kinds get a
# claim of their own this often, so they wait at most about one sweep interval. Each such
# claim walks past the backlog in the due index: once a second it costs ~1-2 %.
SINGLE_KINDS_MAX_WAIT_S = DEFAULT_SWEEP_INTERVAL_S

_HANDLERS: dict[str, TimerHandler] = {}
_BATCH_HANDLERS: dict[str, tuple[BatchHandler, int]] = {}


def timer_handler(kind: str) -> Callable[[TimerHandler], TimerHandler]:
    """Register ``fn(session, timer, now)`` as the handler of timers of ``kind``."""

    def register(fn: TimerHandler) -> TimerHandler:
        existing = _HANDLERS.get(kind)
        if (existing is not None and existing is not fn) or kind in _BATCH_HANDLERS:
            raise ValueError(f"timer kind {kind!r} already has a handler")
        _HANDLERS[kind] = fn
        return fn

    return register


def batch_timer_handler(
    kind: str, batch: int = DEFAULT_SET_BATCH
) -> Callable[[BatchHandler], BatchHandler]:
    """Register ``fn(session, due_timers, now)`` to run up to ``batch`` timers of ``kind`` at once.

    The handler must treat each timer exactly as a one-timer call would (a timer is
    also handed over alone when its batch failed); it runs in the sweep's transaction
    together with the timers' "done" mark, which is rolled back whole if it raises.
    """

    def register(fn: BatchHandler) -> BatchHandler:
        existing = _BATCH_HANDLERS.get(kind)
        if (existing is not None and existing[0] is not fn) or kind in _HANDLERS:
            raise ValueError(f"timer kind {kind!r} already has a handler")
        _BATCH_HANDLERS[kind] = (fn, batch)
        return fn

    return register


def registered_kinds() -> frozenset[str]:
    """The kinds that have a handler in this process."""
    return frozenset(_HANDLERS) | frozenset(_BATCH_HANDLERS)


def schedule(
    session: Session,
    kind: str,
    key: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> Timer:
    """Schedule ``kind``/``key`` at ``due_at``; a second call for the same pair returns the first.

    Runs in the caller's transaction, so the timer exists exactly when the business
    change that needs it commits.
    """
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    existing = _find(session, kind, key)
    if existing is not None:
        return existing
    timer = Timer(
        kind=kind,
        key=key,
        due_at=due_at,
        payload=payload or {},
        # Audit only: when the timer was made (the wall clock unless the caller passes
        # its own clock's time).
        created_at=now or datetime.now(UTC),
    )
    try:
        with session.begin_nested():
            session.add(timer)
    except IntegrityError:
        # Someone else scheduled the same (kind, key) concurrently: theirs stands.
        found = _find(session, kind, key)
        if found is None:
            raise
        return found
    return timer


def schedule_many(
    session: Session,
    rows: Sequence[tuple[str, str, datetime, dict[str, Any]]],
    *,
    now: datetime,
) -> None:
    """Schedule many ``(kind, key, due_at, payload)`` in one statement.

    Same rule as ``schedule``: a ``(kind, key)`` already scheduled keeps its first timer
    (``ON CONFLICT DO NOTHING``, so a concurrent scheduler never fails the batch). Runs in
    the caller's transaction.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    bind = UtcDateTime().bind_processor(dialect) or (lambda value: value)
    stamps: dict[datetime, Any] = {}
    # Timers made together often share one payload object (an offer's two deadlines).
    encoded: dict[int, tuple[dict[str, Any], str]] = {}
    created = bind(now)
    params = []
    for kind, key, due_at, payload in rows:
        if due_at.tzinfo is None:
            raise ValueError("due_at must be timezone-aware")
        due = stamps.get(due_at)
        if due is None:
            due = stamps[due_at] = bind(due_at)
        text = encoded.get(id(payload))
        if text is None or text[0] is not payload:
            text = encoded[id(payload)] = (payload, json.dumps(payload, separators=(",", ":")))
        params.append((kind, key, due, text[1], created))
    # The driver's executemany straight away: per-row parameter processing in SQLAlchemy
    # would cost more than the insert when an intake or a sweep arms thousands at once.
    sql = _SCHEDULE_PG if dialect.name == "postgresql" else _SCHEDULE_SQLITE
    connection.exec_driver_sql(sql, params)


_SCHEDULE_SQLITE = (
    "INSERT INTO timer (kind, key, due_at, payload, state, attempts, created_at) "
    "VALUES (?, ?, ?, ?, 'pending', 0, ?) ON CONFLICT (kind, key) DO NOTHING"
)
_SCHEDULE_PG = _SCHEDULE_SQLITE.replace("?, ?, ?, ?,", "%s, %s, %s, %s::json,").replace(
    "?)", "%s)"
)


def cancel(session: Session, kind: str, key: str, *, skip_locked: bool = False) -> bool:
    """Cancel a pending timer; True if one was pending (and, with ``skip_locked``, unclaimed).

    ``skip_locked=True`` (PostgreSQL) does not wait for a timer a sweep has claimed: use
    it when the caller holds a row lock the timer's handler may also want, or the two
    would wait on each other. A claimed timer then runs; its handler must re-check state.
    """
    where = (Timer.kind == kind, Timer.key == key, Timer.state == TimerState.PENDING)
    if skip_locked and session.get_bind().dialect.name == "postgresql":
        ids = session.execute(
            select(Timer.id).where(*where).with_for_update(skip_locked=True)
        ).scalars().all()
        if not ids:
            return False
        where = (Timer.id.in_(ids),)  # type: ignore[union-attr]
    result = session.execute(update(Timer).where(*where).values(state=TimerState.CANCELLED))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_prefix(session: Session, kind: str, key_prefix: str) -> int:
    """Cancel every pending timer of ``kind`` whose key starts with ``key_prefix``."""
    result = session.execute(
        update(Timer)
        .where(
            Timer.kind == kind,
            Timer.key.startswith(key_prefix, autoescape=True),  # type: ignore[attr-defined]
            Timer.state == TimerState.PENDING,
        )
        .values(state=TimerState.CANCELLED)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _find(session: Session, kind: str, key: str) -> Timer | None:
    return session.execute(
        select(Timer).where(Timer.kind == kind, Timer.key == key)
    ).scalar_one_or_none()


def _run_one(session: Session, timer: Timer, now: datetime) -> bool:
    """Run one claimed timer in its own savepoint; True if it is done."""
    handler = _HANDLERS[timer.kind]
    try:
        with session.begin_nested():
            handler(session, timer, now)
            timer.state = TimerState.DONE
            timer.finished_at = now
            session.add(timer)
        return True
    except Exception as exc:  # a handler's failure must not stop the sweep
        timer.attempts += 1
        timer.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if timer.attempts >= MAX_ATTEMPTS:
            timer.state = TimerState.FAILED
            timer.finished_at = now
            log.error(
                "timer failed for good",
                extra={"kind": timer.kind, "timer_id": timer.id, "attempts": timer.attempts},
            )
        else:
            timer.due_at = now + timedelta(seconds=RETRY_BASE_S * 2 ** (timer.attempts - 1))
            log.warning(
                "timer handler raised; will retry",
                extra={"kind": timer.kind, "timer_id": timer.id, "error": timer.last_error},
            )
        session.add(timer)
        return False


def _run_batch(session: Session, claimed: list[Timer], now: datetime) -> None:
    """Run a claimed batch: all in one savepoint, or one savepoint each if any handler fails.

    The common case (every handler succeeds) then costs one savepoint and one UPDATE
    for the whole batch instead of a savepoint, flush and UPDATE per timer; a failing
    handler only sends its batch down the slower path that isolates it.
    """
    try:
        with session.begin_nested():
            for timer in claimed:
                _HANDLERS[timer.kind](session, timer, now)
            session.execute(
                update(Timer)
                .where(Timer.id.in_([t.id for t in claimed]))  # type: ignore[union-attr]
                .values(state=TimerState.DONE, finished_at=now)
            )
        return
    except Exception:
        log.info("a timer in the batch failed; running the batch one by one")
    for timer in claimed:
        _run_one(session, timer, now)


def _failed_attempt(session: Session, timer_id: int, attempts: int, kind: str,
                    exc: Exception, now: datetime) -> None:
    """Record a handler failure: retry later with backoff, or fail for good."""
    attempts += 1
    error = f"{type(exc).__name__}: {exc}"[:500]
    values: dict[str, Any] = {"attempts": attempts, "last_error": error}
    if attempts >= MAX_ATTEMPTS:
        values.update(state=TimerState.FAILED, finished_at=now)
        log.error("timer failed for good",
                  extra={"kind": kind, "timer_id": timer_id, "attempts": attempts})
    else:
        values["due_at"] = now + timedelta(seconds=RETRY_BASE_S * 2 ** (attempts - 1))
        log.warning("timer handler raised; will retry",
                    extra={"kind": kind, "timer_id": timer_id, "error": error})
    session.execute(update(Timer).where(Timer.id == timer_id).values(**values))


def _mark_done(session: Session, ids: list[int], now: datetime) -> None:
    """Mark claimed timers done: one plain statement (no per-id parameter processing)."""
    connection = session.connection()
    dialect = connection.dialect
    bind = UtcDateTime().bind_processor(dialect)
    mark = "%s" if dialect.name == "postgresql" else "?"
    finished = bind(now) if bind else now
    for first in range(0, len(ids), _MARK_CHUNK):
        part = ids[first : first + _MARK_CHUNK]
        sql = (
            f"UPDATE timer SET state = 'done', finished_at = {mark} "
            f"WHERE id IN ({', '.join([mark] * len(part))})"
        )
        connection.exec_driver_sql(sql, (finished, *part))


# Ids per UPDATE: well under SQLite's 32,766 variables.
_MARK_CHUNK = 5_000


_CLAIM_SQL = (
    "SELECT id, kind, key, due_at, payload, attempts FROM timer "
    "WHERE state = 'pending' AND due_at <= ? AND {which} ORDER BY due_at, id"
)


def _claim(session: Session, which: str, params: Sequence[Any], now: datetime,
           limit: int | None = None) -> list[DueTimer]:
    """Due pending timers matching the SQL condition ``which``, in due order, as plain values.

    Read with the driver directly (no ORM objects, no per-row type processing): a wave of
    thousands of due journey steps would otherwise spend more on decoding rows than on
    running them. Row-locked with ``SKIP LOCKED`` on PostgreSQL so sweepers share work.
    """
    sql = BulkSql(session)
    text = _CLAIM_SQL.format(which=which)
    args: list[Any] = [sql.dt(now), *params]
    if limit is not None:
        text += " LIMIT ?"
        args.append(limit)
    if sql.postgres:
        text += " FOR UPDATE SKIP LOCKED"
    return [DueTimer(tid, kind, key, _utc(due_at), payload, attempts)
            for tid, kind, key, due_at, payload, attempts in sql.rows(text, args)]


def _within_caps(due: list[DueTimer], caps: dict[str, int], single_cap: int) -> list[DueTimer]:
    """The longest prefix of ``due`` with at most ``caps[kind]`` timers of each batch kind
    and at most ``single_cap`` of the per-timer kinds together (those not in ``caps``)."""
    counts: dict[str, int] = {}
    for n, timer in enumerate(due):
        group = timer.kind if timer.kind in caps else ""
        count = counts.get(group, 0) + 1
        if count > caps.get(timer.kind, single_cap):
            return due[:n]
        counts[group] = count
    return due


def _run_claimed(session: Session, due: list[DueTimer], now: datetime, *,
                 isolate: bool) -> None:
    """Run claimed timers: each batch kind's in one handler call, then the per-timer kinds.

    Without ``isolate`` a batch handler's exception propagates (the caller rolls the
    whole transaction back and comes again with ``isolate``); with it, every timer of a
    batch kind runs alone in a savepoint and a failure is recorded for that timer only.
    Per-timer kinds always go through ``_run_batch`` (which isolates failures itself).
    """
    groups: dict[str, list[DueTimer]] = {}
    for timer in due:
        groups.setdefault(timer.kind, []).append(timer)
    singles: list[int] = []
    for kind, group in groups.items():
        entry = _BATCH_HANDLERS.get(kind)
        if entry is None:
            singles.extend(t.id for t in group)
            continue
        handler = entry[0]
        if not isolate:
            handler(session, group, now)
            _mark_done(session, [t.id for t in group], now)
            continue
        for timer in group:
            try:
                with session.begin_nested():
                    handler(session, [timer], now)
                    _mark_done(session, [timer.id], now)
            except Exception as exc:  # a handler's failure must not stop the sweep
                _failed_attempt(session, timer.id, timer.attempts, kind, exc, now)
    if singles:
        claimed = list(session.execute(
            select(Timer).where(Timer.id.in_(singles))  # type: ignore[union-attr]
            .order_by(Timer.due_at, Timer.id)).scalars())
        _run_batch(session, claimed, now)


def _run_round(engine: Engine, kinds: Sequence[str], take: int, caps: dict[str, int],
               single_cap: int, now: datetime) -> tuple[int, int]:
    """Claim up to ``take`` due timers of ``kinds`` and run them; (claimed, ran).

    One claim query for every kind this process handles: each kind's own query would
    walk past the other kinds' due timers in ``ix_timer_state_due`` (in a wave of
    100,000 due journey steps, the per-timer kinds' query alone cost a tenth of a sweep).
    The common case runs without a savepoint (SQLite would copy every page the batch
    touches into a sub-journal first); a failing batch handler rolls the transaction
    back and the same timers run again isolated, one savepoint each, in a new one.
    """
    kind_marks = f"kind IN ({', '.join('?' * len(kinds))})"
    with Session(engine, expire_on_commit=False) as session:
        due = _within_caps(_claim(session, kind_marks, kinds, now, take), caps, single_cap)
        if not due:
            session.rollback()
            return 0, 0
        try:
            _run_claimed(session, due, now, isolate=False)
            session.commit()
            return len(due), len(due)
        except Exception:
            session.rollback()
            log.info("a timer batch failed; running it one by one",
                     extra={"kinds": sorted({t.kind for t in due})})
    with Session(engine, expire_on_commit=False) as session:
        ids = [t.id for t in due]
        again = _claim(session, f"id IN ({', '.join('?' * len(ids))})", ids, now)
        _run_claimed(session, again, now, isolate=True)
        session.commit()
    return len(due), len(again)


def run_due(engine: Engine, clock: Clock, *, limit: int | None = None,
            batch: int | None = None) -> int:
    """Run every due timer that has a handler here (at most ``limit``); return how many ran.

    ``batch`` caps the timers per transaction (default: DEFAULT_BATCH for per-timer
    kinds, the registered size for batch kinds; ``batch=1`` runs everything one timer
    per transaction). Timers are claimed in due order whatever their kind, except that
    while a long backlog of batch-kind timers runs, the per-timer kinds get a claim of
    their own every SINGLE_KINDS_MAX_WAIT_S. Timers a handler schedules for "now or
    earlier" run in the same call. A timer whose kind has no handler in this process is
    left alone for a process that has one.
    """
    caps = {kind: batch or size for kind, (_, size) in _BATCH_HANDLERS.items()}
    single_cap = batch or DEFAULT_BATCH
    singles = sorted(_HANDLERS)
    kinds = sorted(frozenset(singles) | frozenset(caps))
    if not kinds:
        return 0
    take = max(single_cap, *caps.values())
    ran = 0
    singles_at = time.monotonic()
    while limit is None or ran < limit:
        if singles and caps and time.monotonic() - singles_at >= SINGLE_KINDS_MAX_WAIT_S:
            singles_at = time.monotonic()
            room = single_cap if limit is None else min(single_cap, limit - ran)
            ran += _run_round(engine, singles, room, caps, single_cap, clock.now())[1]
            if limit is not None and ran >= limit:
                break
        room = take if limit is None else min(take, limit - ran)
        claimed, done = _run_round(engine, kinds, room, caps, single_cap, clock.now())
        if not claimed:
            break
        ran += done
    return ran


class TimerRunner(PeriodicWorker):
    """A background thread that sweeps due timers every ``interval_s`` until stopped."""

    def __init__(self, engine: Engine, clock: Clock,
                 interval_s: float = DEFAULT_SWEEP_INTERVAL_S) -> None:
        """Prepare a runner; ``start()`` launches the thread."""
        super().__init__("timer-runner", lambda: run_due(engine, clock), interval_s)
