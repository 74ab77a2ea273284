"""Journey instances: entry rules, running steps once each on durable timers, events and exits.

An instance points at its current step. ``_advance`` runs steps until one has to wait
(a duration, a time, an event, or the end of quiet hours); the wait is a durable timer
whose key names the instance and the step, so it is scheduled once and fires once
(``hub.services.timers`` runs the handler and marks the timer done in one savepoint).
The step graph has no loops, so every step runs at most once per instance, and every
message it queues has the dedupe key ``journey:<instance>:<step>``: no double send even
when a step is reached again after a crash. Waits are measured from when the step was
due (not from when a late sweep noticed), so catch-up after downtime keeps the schedule.

Execution is set-based. Every entry point (enrolment, events, due timers) loads the
instances it touches in one SELECT, runs their steps in memory on plain ``_Inst``
records, collecting what they do (messages, tasks, tags, timers, exits) in a ``_Batch``,
and then writes each kind of effect with one ``executemany`` (``bulk.BulkSql``): a
timer sweep advances thousands of instances due at the same moment in a handful of
statements. A single enrolment or event is simply a batch of one, so both paths run
the same step code. Idempotence does not depend on the in-memory pass: messages,
tasks and timers are inserted with ``ON CONFLICT DO NOTHING`` on their natural keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from string import Template
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from hub.models.customers import Customer
from hub.models.journeys import InstanceState, JourneyInstance, StaffTask, TaskState
from hub.models.registry import DEFAULT_TIMEZONE, Store
from hub.models.types import new_id
from hub.services import timers
from hub.services.errors import Conflict, HubError, NotFound
from hub.services.journeys import definitions
from hub.services.journeys.bulk import BulkSql, chunks
from hub.services.journeys.quiet import quiet_until
from hub.services.journeys.schema import (
    BranchStep,
    Condition,
    EndStep,
    EntryRule,
    JourneySpec,
    SendStep,
    TagStep,
    TaskStep,
    WaitEventStep,
    WaitStep,
)

log = logging.getLogger(__name__)

STEP_TIMER = "journey.step"
SOURCE_KIND = "journey"
QUIET_SUFFIX = ":quiet"
_STAY = object()  # a step that must wait: the instance stays on it
_ACTIVE = InstanceState.ACTIVE.value
_T = JourneyInstance.__table__  # type: ignore[attr-defined]
_LOAD_SQL = (
    "SELECT id, definition_id, journey, customer_id, store_id, state, active_key, "
    "current_step, waiting, context, deadline_at FROM journey_instance WHERE "
)


@dataclass(slots=True, eq=False)
class _Inst:
    """An instance's row as plain values while its steps run.

    ``history`` holds only the entries this pass adds (appended in SQL, so a wake never
    reads or rewrites the whole record); for a new instance that is all of it.
    """

    id: str
    definition_id: int
    journey: str
    customer_id: str
    store_id: str | None
    state: str
    active_key: str | None
    current_step: str | None
    waiting: str | None
    context: dict[str, Any]
    deadline_at: datetime
    history: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_reason: str | None = None
    new: bool = False
    context_changed: bool = False


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One customer to enrol (``enrol_many``)."""

    customer_id: str
    store_id: str | None = None
    context: dict[str, Any] | None = None


class _Plan:
    """A definition version prepared for running: steps by id, every timer key it can use."""

    __slots__ = ("spec", "steps", "timer_suffixes", "exit_on")

    def __init__(self, spec: JourneySpec) -> None:
        self.spec = spec
        self.steps: dict[str, Any] = spec.step_map()
        self.exit_on = frozenset(spec.exit_on)
        suffixes = []
        for step in spec.steps:
            if isinstance(step, WaitStep | WaitEventStep):
                suffixes.append(f":{step.id}")
            if isinstance(step, SendStep | TaskStep):
                suffixes.append(f":{step.id}{QUIET_SUFFIX}")
        # The keys of every timer an instance of this version can have: an exit cancels
        # them by exact key (an index lookup each) rather than by prefix (a scan).
        self.timer_suffixes = tuple(suffixes)


_PLANS: dict[int, _Plan] = {}


def _plan(session: Session, definition_id: int) -> _Plan:
    """The prepared plan of a stored version (follows the definitions cache)."""
    spec = definitions.spec_of(session, definition_id)
    plan = _PLANS.get(definition_id)
    if plan is None or plan.spec is not spec:
        plan = _Plan(spec)
        _PLANS[definition_id] = plan
    return plan


@dataclass(slots=True)
class _Batch:
    """What one pass over instances did, written set-based by ``flush``."""

    session: Session
    now: datetime
    now_iso: str = ""
    instances: dict[str, _Inst] = field(default_factory=dict)  # every instance to write
    # (instance id, channel, customer id, body, dedupe key, purpose)
    messages: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    # (instance id, step id, customer id, store id, kind, title, due at)
    tasks: list[tuple[str, str, str, str | None, str, str, datetime]] = field(
        default_factory=list)
    # (instance id, customer id, kind, name, value)
    tags: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    # (instance id, key, due at, step id)
    timers: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    cancel_keys: list[str] = field(default_factory=list)  # timers an event made moot
    exits: list[tuple[_Inst, _Plan, str]] = field(default_factory=list)
    _quiet: dict[tuple[Any, ...], datetime | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.now_iso = self.now.isoformat(timespec="seconds")

    def touch(self, inst: _Inst) -> None:
        """``inst`` will be written back."""
        self.instances[inst.id] = inst

    def record(self, inst: _Inst, step_id: str, result: str) -> None:
        """Append one executed step to the instance's history (the step's record).

        Kept as JSON text: step ids, results (``sent``, ``to:<step>``, ...) and ISO times
        contain no character that needs escaping.
        """
        inst.history.append(f'["{step_id}","{self.now_iso}","{result}"]')

    def quiet_end(self, start: Any, end: Any, tz: str) -> datetime | None:
        """When quiet hours end in ``tz`` if now is inside them: once per zone per batch."""
        key = (start, end, tz)
        if key not in self._quiet:
            self._quiet[key] = quiet_until(self.now, start, end, tz)
        return self._quiet[key]

    def finish(self, inst: _Inst, state: InstanceState, reason: str) -> None:
        """Mark an instance ended (frees its active slot)."""
        inst.state = state.value
        inst.exit_reason = reason
        inst.ended_at = self.now
        inst.active_key = None
        inst.waiting = None
        self.touch(inst)

    def exit(self, inst: _Inst, plan: _Plan, reason: str) -> None:
        """End an instance early; its timers, queued messages and open tasks go at flush."""
        if inst.state != _ACTIVE:
            return
        self.finish(inst, InstanceState.EXITED, reason)
        self.exits.append((inst, plan, reason))

    def flush(self) -> set[str]:
        """Write everything; return the ids of new instances that could not be inserted."""
        self.session.flush()  # pending ORM rows first (a trial, a customer) for the FKs
        sql = BulkSql(self.session)
        dt = sql.dt
        now = dt(self.now)
        self._update_instances(sql, [i for i in self.instances.values() if not i.new])
        lost = self._insert_new(sql)
        if lost:
            self._drop(lost)
        self._insert_messages(sql, now)
        sql.many(
            "INSERT INTO staff_task (instance_id, step_id, customer_id, store_id, kind, "
            "title, due_at, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?) "
            "ON CONFLICT (instance_id, step_id) DO NOTHING",
            [(iid, sid, cid, store, kind, title, dt(due), now)
             for iid, sid, cid, store, kind, title, due in self.tasks])
        sql.many(
            "INSERT INTO customer_tag (customer_id, kind, name, value, created_at) "
            "SELECT c.id, ?, ?, ?, ? FROM customer c WHERE c.id = ? "
            "ON CONFLICT (customer_id, kind, name) DO UPDATE SET value = excluded.value",
            [(kind, name, value, now, cid) for _, cid, kind, name, value in self.tags])
        sql.many(
            "INSERT INTO timer (kind, key, due_at, payload, state, attempts, created_at) "
            "VALUES (?, ?, ?, ?j, 'pending', 0, ?) ON CONFLICT (kind, key) DO NOTHING",
            [(STEP_TIMER, key, dt(due), f'{{"iid":"{iid}","step":"{step}"}}', now)
             for iid, key, due, step in self.timers])
        _cancel_timers(sql, self.cancel_keys)
        self._write_exits(sql)
        _expire_orm_copies(self.session, self.instances)
        return lost

    def _update_instances(self, sql: BulkSql, rows: list[_Inst]) -> None:
        """Write back instances that existed before this batch.

        They go first: an exit frees its active slot before a restart's new instance
        takes it. An instance that only moved leaves its indexed columns (state, active
        key) alone; history entries are appended in SQL (see _Inst).
        """
        dt, js = sql.dt, sql.js
        append = ("history = (history::jsonb || ?j::jsonb)::json" if sql.postgres else
                  "history = CASE WHEN history = '[]' THEN ? ELSE "
                  "substr(history, 1, length(history) - 1) || ',' || substr(?, 2) END")
        groups: dict[tuple[bool, bool, bool], list[_Inst]] = {}
        for i in rows:
            groups.setdefault((i.state == _ACTIVE, bool(i.history), i.context_changed),
                              []).append(i)
        for (moved, with_history, with_context), group in groups.items():
            sets = (["current_step = ?, waiting = ?"] if moved else
                    ["state = ?, active_key = ?, current_step = ?, waiting = ?, "
                     "ended_at = ?, exit_reason = ?"])
            if with_history:
                sets.append(append)
            if with_context:
                sets.append("context = ?j")
            params = []
            for i in group:
                row: list[Any] = ([i.current_step, i.waiting] if moved else
                                  [i.state, i.active_key, i.current_step, i.waiting,
                                   dt(i.ended_at), i.exit_reason])
                if with_history:
                    entries = _history_json(i.history)
                    row += (entries,) if sql.postgres else (entries, entries)
                if with_context:
                    row.append(js(i.context))
                row.append(i.id)
                params.append(tuple(row))
            sql.many(f"UPDATE journey_instance SET {', '.join(sets)} WHERE id = ?", params)

    def _insert_messages(self, sql: BulkSql, now: Any) -> None:
        """Queue the batch's messages: an ``outbox`` row and its ``outbox_delivery`` row each.

        The recipient comes from the customer row (none: no message, as for a deleted
        customer); a dedupe key already queued is left as it is.
        """
        messages = self.messages
        if not messages:
            return
        first_id = None
        if not sql.postgres:
            # SQLite, inside this write transaction (no other writer): new rowids are
            # max + 1, max + 2, ... in insert order, so when every row goes in, the
            # deliveries need no lookup by dedupe key.
            first_id = int(sql.rows("SELECT coalesce(max(id), 0) FROM outbox", ())[0][0]) + 1
        inserted = sql.many(
            "INSERT INTO outbox (channel, recipient_enc, customer_id, body, dedupe_key, "
            "created_at) SELECT ?, c.phone_enc, c.id, ?, ?, ? FROM customer c WHERE c.id = ? "
            "ON CONFLICT (dedupe_key) DO NOTHING",
            [(ch, body, key, now, cid) for _, ch, cid, body, key, _ in messages])
        if first_id is not None and inserted == len(messages):
            sql.many(
                "INSERT INTO outbox_delivery (outbox_id, status, purpose, attempts, "
                "next_attempt_at, source_kind, source_id, updated_at) "
                "VALUES (?, 'queued', ?, 0, ?, ?, ?, ?)",
                [(first_id + n, purpose, now, SOURCE_KIND, iid, now)
                 for n, (iid, _, _, _, _, purpose) in enumerate(messages)])
            return
        sql.many(
            "INSERT INTO outbox_delivery (outbox_id, status, purpose, attempts, "
            "next_attempt_at, source_kind, source_id, updated_at) "
            "SELECT o.id, 'queued', ?, 0, ?, ?, ?, ? FROM outbox o WHERE o.dedupe_key = ? "
            "ON CONFLICT (outbox_id) DO NOTHING",
            [(purpose, now, SOURCE_KIND, iid, now, key)
             for iid, _, _, _, key, purpose in messages])

    def _insert_new(self, sql: BulkSql) -> set[str]:
        """Insert new instances (final state); return ids a concurrent entry beat."""
        new = [i for i in self.instances.values() if i.new]
        if not new:
            return set()
        dt, js = sql.dt, sql.js
        inserted = sql.many(
            "INSERT INTO journey_instance (id, definition_id, journey, customer_id, store_id, "
            "state, active_key, current_step, waiting, context, history, started_at, "
            "deadline_at, ended_at, exit_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?j, ?j, ?, ?, ?, ?) "
            "ON CONFLICT (active_key) DO NOTHING",
            [(i.id, i.definition_id, i.journey, i.customer_id, i.store_id, i.state,
              i.active_key, i.current_step, i.waiting, js(i.context), _history_json(i.history),
              dt(i.started_at), dt(i.deadline_at), dt(i.ended_at), i.exit_reason)
             for i in new])
        if inserted == len(new):
            return set()
        ids = [i.id for i in new]
        present: set[str] = set()
        for part in chunks(ids):
            present.update(self.session.execute(
                select(_T.c.id).where(_T.c.id.in_(part))).scalars())
        return set(ids) - present

    def _drop(self, lost: set[str]) -> None:
        """Forget the effects of instances that were never inserted."""
        for iid in lost:
            self.instances.pop(iid, None)
        self.messages = [m for m in self.messages if m[0] not in lost]
        self.tasks = [t for t in self.tasks if t[0] not in lost]
        self.tags = [t for t in self.tags if t[0] not in lost]
        self.timers = [t for t in self.timers if t[0] not in lost]
        self.exits = [e for e in self.exits if e[0].id not in lost]

    def _write_exits(self, sql: BulkSql) -> None:
        """Cancel exited instances' pending timers, queued messages and open tasks."""
        if not self.exits:
            return
        _cancel_timers(sql, [inst.id + suffix for inst, plan, _ in self.exits
                             for suffix in plan.timer_suffixes])
        now = sql.dt(self.now)
        messages = sql.many(
            "UPDATE outbox_delivery SET status = 'cancelled', updated_at = ? "
            "WHERE source_kind = ? AND source_id = ? AND status = 'queued'",
            [(now, SOURCE_KIND, inst.id) for inst, _, _ in self.exits])
        tasks = sql.many(
            "UPDATE staff_task SET state = 'cancelled', closed_at = ?, outcome = ? "
            "WHERE instance_id = ? AND state = 'open'",
            [(now, f"journey exited: {reason}", inst.id) for inst, _, reason in self.exits])
        reasons = sorted({reason for _, _, reason in self.exits})
        log.info("journeys exited", extra={"count": len(self.exits), "reasons": reasons,
                                           "cancelled_messages": messages,
                                           "cancelled_tasks": tasks})


def _history_json(entries: list[str]) -> str:
    """History entries (JSON text each) as one JSON array."""
    return "[" + ",".join(entries) + "]"


def _cancel_timers(sql: BulkSql, keys: Sequence[str]) -> None:
    """Cancel the pending step timers with these keys.

    On PostgreSQL a timer a sweep has already claimed is skipped, not waited for: the
    sweep may be waiting for this transaction's instance lock, and its handler finds
    the instance moved on or ended and does nothing.
    """
    if not keys:
        return
    if sql.postgres:
        for part in chunks(keys):
            sql.one("UPDATE timer SET state = 'cancelled' WHERE id IN (SELECT id FROM timer "
                    "WHERE kind = ? AND key = ANY(?) AND state = 'pending' "
                    "FOR UPDATE SKIP LOCKED)", (STEP_TIMER, list(part)))
        return
    sql.many("UPDATE timer SET state = 'cancelled' WHERE kind = ? AND key = ? "
             "AND state = 'pending'", [(STEP_TIMER, key) for key in keys])


def _expire_orm_copies(session: Session, instances: dict[str, _Inst]) -> None:
    """ORM copies of instances written here are stale: reload them on next access."""
    if not session.identity_map:
        return
    for iid in instances:
        obj = session.identity_map.get(identity_key(JourneyInstance, iid))
        if obj is not None:
            session.expire(obj)


def _load(session: Session, where: str, params: Sequence[Any], *, lock: bool) -> list[_Inst]:
    """Instances matching the SQL condition ``where`` (row-locked on PostgreSQL).

    Read with the driver directly: the context is decoded here once, the history is not
    read at all, and timestamps come back as text on SQLite and aware on PostgreSQL.
    """
    sql = BulkSql(session)
    text = _LOAD_SQL + where + " ORDER BY id" + (" FOR UPDATE" if lock and sql.postgres else "")
    out = []
    for (iid, definition_id, journey, customer_id, store_id, state, active_key, current_step,
         waiting, context, deadline_at) in sql.rows(text, params):
        out.append(_Inst(iid, definition_id, journey, customer_id, store_id, state,
                         active_key, current_step, waiting,
                         json.loads(context) if isinstance(context, str) else dict(context),
                         _utc(deadline_at)))
    return out


def _in(column: str, values: Sequence[Any]) -> str:
    """``column IN (?, ?, ...)`` for ``values``."""
    return f"{column} IN ({', '.join('?' * len(values))})"


@lru_cache(maxsize=4096)
def _utc_text(raw: str) -> datetime:
    return datetime.fromisoformat(raw).replace(tzinfo=UTC)


def _utc(value: Any) -> datetime:
    """A timestamp as the driver returns it (SQLite text, PostgreSQL aware) in UTC."""
    if isinstance(value, str):
        return _utc_text(value)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _from_orm(inst: JourneyInstance) -> _Inst:
    return _Inst(inst.id, inst.definition_id, inst.journey, inst.customer_id, inst.store_id,
                 inst.state, inst.active_key, inst.current_step, inst.waiting,
                 dict(inst.context), inst.deadline_at)


# --- entry points -------------------------------------------------------------------


def enrol(
    session: Session,
    journey: str,
    customer_id: str,
    now: datetime,
    *,
    store_id: str | None = None,
    context: dict[str, Any] | None = None,
) -> JourneyInstance:
    """Start the latest version of ``journey`` for a customer, applying its entry rule."""
    result = enrol_many(session, journey, [Enrolment(customer_id, store_id, context)], now)[0]
    if isinstance(result, HubError):
        raise result
    inst = session.get(JourneyInstance, result)
    assert inst is not None
    return inst


def enrol_many(
    session: Session, journey: str, entries: Sequence[Enrolment], now: datetime
) -> list[str | HubError]:
    """Enrol many customers in the latest version of ``journey`` at once.

    Returns, per entry, the new instance id or the error that entry met (NotFound for an
    unknown customer or store, Conflict for the entry rule or a running instance); the
    others are enrolled regardless. A customer listed twice in one call gets a Conflict
    the second time (whatever the rule: run a restart as its own call).
    """
    row = definitions.latest(session, journey)
    plan = _plan(session, row.id or 0)
    spec = plan.spec
    session.flush()
    customer_ids = list(dict.fromkeys(e.customer_id for e in entries))
    known: set[str] = set()
    prior: dict[str, list[str]] = {}
    for part in chunks(customer_ids):
        known.update(session.execute(
            select(Customer.id).where(Customer.id.in_(part))).scalars())  # type: ignore[attr-defined]
        for cid, state in session.execute(
                select(_T.c.customer_id, _T.c.state)
                .where(_T.c.journey == journey, _T.c.customer_id.in_(part))).all():
            prior.setdefault(cid, []).append(state)
    store_ids = sorted({e.store_id for e in entries if e.store_id})
    zones = dict(session.execute(
        select(Store.id, Store.timezone).where(Store.id.in_(store_ids))).all()) if store_ids else {}  # type: ignore[attr-defined]
    batch = _Batch(session, now)
    results: list[str | HubError] = []
    restart: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        cid = entry.customer_id
        error = _entry_error(spec, journey, cid, entry.store_id, known, zones, prior, seen)
        if error is not None:
            results.append(error)
            continue
        seen.add(cid)
        if _ACTIVE in prior.get(cid, ()):
            restart.append(cid)  # ANY_TIME: the new entry replaces the running one
        ctx = dict(entry.context or {})
        ctx.setdefault("store_timezone", zones.get(entry.store_id or "", DEFAULT_TIMEZONE))
        inst = _Inst(
            id=new_id("jin"), definition_id=row.id or 0, journey=journey, customer_id=cid,
            store_id=entry.store_id, state=_ACTIVE, active_key=f"{journey}:{cid}",
            current_step=spec.start, waiting=None, context=ctx, deadline_at=now + spec.max_length,
            started_at=now, new=True,
        )
        results.append(inst.id)
        batch.touch(inst)
    for part in chunks(restart):
        where = f"journey = ? AND state = 'active' AND {_in('customer_id', part)}"
        for old in _load(session, where, [journey, *part], lock=True):
            batch.exit(old, _plan(session, old.definition_id), "restarted")
    for inst in [i for i in batch.instances.values() if i.new]:
        _advance(batch, inst, plan, now, resume=None)
    lost = batch.flush()
    return [Conflict(f"customer is already in journey {journey!r}", code="already_active")
            if isinstance(r, str) and r in lost else r for r in results]


def _entry_error(spec: JourneySpec, journey: str, cid: str, store_id: str | None,
                 known: set[str], zones: dict[str, str], prior: dict[str, list[str]],
                 seen: set[str]) -> HubError | None:
    """Why this customer may not enter now, or None."""
    if cid not in known:
        return NotFound(f"customer {cid!r} not found")
    if store_id is not None and store_id not in zones:
        return NotFound(f"store {store_id!r} not found")
    states = prior.get(cid, [])
    if cid in seen:
        return Conflict(f"customer is already in journey {journey!r}", code="already_active")
    if spec.entry is EntryRule.NO_REENTRY and states:
        return Conflict(f"customer already entered journey {journey!r}", code="no_reentry")
    if spec.entry is EntryRule.AFTER_EXIT and _ACTIVE in states:
        return Conflict(f"customer is already in journey {journey!r}", code="already_active")
    return None


def deliver_event(
    session: Session,
    customer_id: str,
    event: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
    *,
    journey: str | None = None,
) -> int:
    """Hand an event to the customer's running instances; return how many it affected.

    The payload is merged into each instance's context; an exit event ends the instance
    (cancelling its queued messages and tasks); an instance waiting for this event
    moves on at once.
    """
    return deliver_events(session, event, [(customer_id, payload)], now, journey=journey)


def deliver_events(
    session: Session,
    event: str,
    items: Iterable[tuple[str, dict[str, Any] | None]],
    now: datetime,
    *,
    journey: str | None = None,
) -> int:
    """``deliver_event`` for many (customer id, payload) pairs at once; return instances moved.

    Pairs are applied in order (a customer listed twice gets both payloads).
    """
    items = list(items)
    customer_ids = list(dict.fromkeys(cid for cid, _ in items))
    by_customer: dict[str, list[_Inst]] = {}
    # Row locks (PostgreSQL; SQLite serialises writers anyway) so an event and a timer
    # firing for the same instance at the same moment take turns, each seeing the other's
    # result, instead of both moving the instance from the same step.
    session.flush()
    for part in chunks(customer_ids):
        where = f"state = 'active' AND {_in('customer_id', part)}"
        params: list[Any] = list(part)
        if journey is not None:
            where += " AND journey = ?"
            params.append(journey)
        for inst in _load(session, where, params, lock=True):
            by_customer.setdefault(inst.customer_id, []).append(inst)
    batch = _Batch(session, now)
    touched = 0
    for cid, payload in items:
        for inst in by_customer.get(cid, ()):
            if inst.state != _ACTIVE:
                continue
            plan = _plan(session, inst.definition_id)
            if payload:
                inst.context.update(payload)
                inst.context_changed = True
                batch.touch(inst)
            if event in plan.exit_on:
                batch.exit(inst, plan, f"event:{event}")
                touched += 1
                continue
            step = plan.steps.get(inst.current_step or "")
            if inst.waiting == "event" and isinstance(step, WaitEventStep) and step.event == event:
                batch.touch(inst)
                batch.cancel_keys.append(f"{inst.id}:{step.id}")
                batch.record(inst, step.id, "event")
                inst.current_step, inst.waiting = step.on_event, None
                _advance(batch, inst, plan, now, resume=None)
                touched += 1
    batch.flush()
    return touched


def exit_instance(session: Session, inst: JourneyInstance, reason: str, now: datetime) -> None:
    """End an instance early: cancel its timers, queued messages and open tasks."""
    if inst.state != InstanceState.ACTIVE:
        return
    batch = _Batch(session, now)
    batch.exit(_from_orm(inst), _plan(session, inst.definition_id), reason)
    batch.flush()  # also expires ``inst`` if it belongs to this session


@timers.batch_timer_handler(STEP_TIMER)
def _on_step_timers(session: Session, due: list[timers.DueTimer], now: datetime) -> None:
    """Waits (or quiet hours) ended: resume every instance still on its timer's step."""
    session.flush()
    # Keys are "<instance>:<step>" or "<instance>:<step>:quiet" (neither part has a colon).
    wakes = [(t.key.split(":", 2), t.due_at) for t in due]
    ids = list(dict.fromkeys(parts[0] for parts, _ in wakes))
    instances: dict[str, _Inst] = {}
    for part in chunks(ids):
        instances.update((i.id, i) for i in _load(session, _in("id", part), part, lock=True))
    batch = _Batch(session, now)
    for (iid, step_id, *_), due_at in wakes:
        inst = instances.get(iid)
        if (inst is None or inst.state != _ACTIVE or inst.current_step != step_id
                or inst.waiting is None):
            continue  # stale: the instance moved on or ended
        batch.touch(inst)
        _advance(batch, inst, _plan(session, inst.definition_id), due_at, resume=step_id)
    batch.flush()


# --- running steps (in memory) -----------------------------------------------------


def _advance(batch: _Batch, inst: _Inst, plan: _Plan, due: datetime,
             resume: str | None) -> None:
    """Run steps from the current one until one waits or the journey ends.

    ``due`` is when the current step became due (a timer's due time on catch-up);
    ``resume`` names the step whose wait just finished.
    """
    steps = plan.steps
    now = batch.now
    for _ in range(len(steps) + 1):
        if inst.state != _ACTIVE:
            return
        if now >= inst.deadline_at:
            batch.exit(inst, plan, "max_length")
            return
        step = steps[inst.current_step or plan.spec.start]
        nxt = _run(batch, inst, plan, step, due, resumed=resume == step.id)
        resume = None
        if nxt is _STAY:
            return
        if nxt is None:
            batch.finish(inst, InstanceState.COMPLETED,
                         step.outcome if isinstance(step, EndStep) else "completed")
            return
        inst.current_step, inst.waiting = nxt, None
    raise RuntimeError(f"journey {inst.journey} did not settle")  # impossible without loops


def _run(batch: _Batch, inst: _Inst, plan: _Plan, step: Any, due: datetime, *,
         resumed: bool) -> Any:
    """Run one step; return the next step id, None to complete, or _STAY to wait."""
    return _RUNNERS[type(step)](batch, inst, plan, step, due, resumed)


def _run_send(batch: _Batch, inst: _Inst, plan: _Plan, step: SendStep, due: datetime,
              resumed: bool) -> Any:
    if not resumed:
        held_until = _quiet_end(batch, inst, plan.spec, step)
        if held_until is not None:
            return _wait(batch, inst, step.id, held_until, "quiet", suffix=QUIET_SUFFIX)
    _send(batch, inst, step.id, step.channel.value, _render(step.template, inst.context),
          step.purpose)
    batch.record(inst, step.id, "sent")
    return step.next


def _run_wait(batch: _Batch, inst: _Inst, plan: _Plan, step: WaitStep, due: datetime,
              resumed: bool) -> Any:
    if resumed:
        batch.record(inst, step.id, "waited")
        return step.next
    until = _wait_target(inst, step, due)
    if until is None:
        batch.exit(inst, plan, f"error:{step.id}")
        return _STAY
    if until <= batch.now:
        batch.record(inst, step.id, "waited")
        return step.next
    return _wait(batch, inst, step.id, until, "wait")


def _run_wait_event(batch: _Batch, inst: _Inst, plan: _Plan, step: WaitEventStep,
                    due: datetime, resumed: bool) -> Any:
    if resumed:
        batch.record(inst, step.id, "timeout")
        return step.on_timeout
    return _wait(batch, inst, step.id, due + step.timeout, "event")


def _run_branch(batch: _Batch, inst: _Inst, plan: _Plan, step: BranchStep, due: datetime,
                resumed: bool) -> Any:
    for case in step.cases:
        if all(_holds(c, inst.context) for c in case.when):
            batch.record(inst, step.id, f"to:{case.next}")
            return case.next
    batch.record(inst, step.id, f"to:{step.otherwise}")
    return step.otherwise


def _run_task(batch: _Batch, inst: _Inst, plan: _Plan, step: TaskStep, due: datetime,
              resumed: bool) -> Any:
    if not resumed:
        held_until = _quiet_end(batch, inst, plan.spec, step)
        if held_until is not None:
            return _wait(batch, inst, step.id, held_until, "quiet", suffix=QUIET_SUFFIX)
    title = _render(step.title, inst.context)
    batch.tasks.append((inst.id, step.id, inst.customer_id, inst.store_id, step.kind,
                        title, due + step.due_in))
    if step.kind == "call":
        _send(batch, inst, step.id, "call", title, "marketing")
    batch.record(inst, step.id, "task")
    return step.next


def _run_tag(batch: _Batch, inst: _Inst, plan: _Plan, step: TagStep, due: datetime,
             resumed: bool) -> Any:
    batch.tags.append((inst.id, inst.customer_id, step.kind.value, step.name,
                       _render(step.value, inst.context)))
    batch.record(inst, step.id, "tagged")
    return step.next


def _run_end(batch: _Batch, inst: _Inst, plan: _Plan, step: EndStep, due: datetime,
             resumed: bool) -> Any:
    batch.record(inst, step.id, "end")
    return None


_RUNNERS: dict[type, Any] = {
    SendStep: _run_send, WaitStep: _run_wait, WaitEventStep: _run_wait_event,
    BranchStep: _run_branch, TaskStep: _run_task, TagStep: _run_tag, EndStep: _run_end,
}


def _wait(batch: _Batch, inst: _Inst, step_id: str, until: datetime, mode: str,
          suffix: str = "") -> Any:
    """Park the instance on ``step_id`` until a durable timer wakes it.

    No wake-up is later than the journey's maximum length, so the same timer that ends a
    wait also ends an instance that outlived its journey (no separate deadline timer).
    """
    until = min(until, inst.deadline_at)
    batch.timers.append((inst.id, f"{inst.id}:{step_id}{suffix}", until, step_id))
    inst.waiting = mode
    return _STAY


def _quiet_end(batch: _Batch, inst: _Inst, spec: JourneySpec, step: Any) -> datetime | None:
    """When quiet hours end if a message now would fall inside them."""
    quiet = spec.quiet_hours
    if quiet is None or (isinstance(step, TaskStep) and step.kind != "call"):
        return None
    if quiet.timezone == "customer":
        tz = inst.context.get("timezone") or inst.context.get("store_timezone")
    elif quiet.timezone == "store":
        tz = inst.context.get("store_timezone")
    else:
        tz = quiet.timezone
    return batch.quiet_end(quiet.start, quiet.end, str(tz or DEFAULT_TIMEZONE))


def _wait_target(inst: _Inst, step: WaitStep, due: datetime) -> datetime | None:
    """When a wait step ends: ``due + duration``, or ``until`` (+ offset); None if unreadable."""
    if step.duration is not None:
        return due + step.duration
    raw = str(step.until)
    if raw.startswith("$"):
        raw = str(inst.context.get(raw[1:], ""))
    at = _parse_time(raw)
    if at is None:
        log.error("wait target unreadable", extra={"instance_id": inst.id, "step": step.id})
        return None
    return at + step.offset


@lru_cache(maxsize=4096)
def _parse_time(raw: str) -> datetime | None:
    """An aware ISO time, or None (cached: a cohort shares its start and end times)."""
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


@lru_cache(maxsize=1024)
def _template(text: str) -> Template:
    return Template(text)


def _render(template: str, context: dict[str, Any]) -> str:
    """``$var`` substituted from the instance's context (unknown names stay as written)."""
    if "$" not in template:
        return template
    return _template(template).safe_substitute(context)


def _holds(cond: Condition, context: dict[str, Any]) -> bool:
    """Whether one branch condition holds for ``context``."""
    if cond.op == "missing":
        return context.get(cond.var) is None
    value = context.get(cond.var)
    if value is None:
        return False
    if cond.op == "exists":
        return True
    try:
        return {
            "eq": lambda: value == cond.value,
            "ne": lambda: value != cond.value,
            "lt": lambda: float(value) < cond.value,
            "le": lambda: float(value) <= cond.value,
            "gt": lambda: float(value) > cond.value,
            "ge": lambda: float(value) >= cond.value,
            "in": lambda: value in cond.value,
        }[cond.op]()
    except (TypeError, ValueError):  # a text where a number was expected: not a match
        return False


def _send(batch: _Batch, inst: _Inst, step_id: str, channel: str, body: str,
          purpose: str) -> None:
    """Queue one step's message to the customer (dedupe key per instance and step)."""
    batch.messages.append((inst.id, channel, inst.customer_id, body,
                           f"journey:{inst.id}:{step_id}", purpose))


# --- reads and staff tasks ------------------------------------------------------------


def get_instance(session: Session, instance_id: str) -> JourneyInstance:
    """An instance by id, or NotFound."""
    inst = session.get(JourneyInstance, instance_id)
    if inst is None:
        raise NotFound(f"journey instance {instance_id!r} not found")
    return inst


def close_task(session: Session, task: StaffTask, outcome: str, now: datetime) -> StaffTask:
    """Mark an open task done (Conflict if it was cancelled or already done)."""
    if task.state != TaskState.OPEN:
        raise Conflict(f"task is {task.state}", code="task_closed")
    task.state = TaskState.DONE
    task.closed_at = now
    task.outcome = outcome
    session.add(task)
    return task
