"""Journey batches: instance rows as plain records, and every effect of a pass written set-based.

A pass over instances (an enrolment, events, a wave of due timers) loads the rows it needs
with one query (``load_instances``), lets ``hub.services.journeys.steps`` run their steps
in memory, collecting what they do in a ``Batch``, and ``Batch.flush`` writes each kind
of effect with one ``executemany`` (``bulk.BulkSql``): instance rows, outbox + delivery
rows, staff tasks, tags, next timers, and exits' cancellations. Messages, tasks and
timers go in with ``ON CONFLICT DO NOTHING`` on their natural keys, so a step reached
again writes nothing twice whatever the in-memory pass believed.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from hub.models.journeys import InstanceState, JourneyInstance
from hub.services.bulk import BulkSql, chunks
from hub.services.journeys import definitions
from hub.services.journeys.quiet import quiet_until
from hub.services.journeys.schema import (
    JourneySpec,
    SendStep,
    TaskStep,
    WaitEventStep,
    WaitStep,
)

log = logging.getLogger(__name__)

STEP_TIMER = "journey.step"
SOURCE_KIND = "journey"
QUIET_SUFFIX = ":quiet"
ACTIVE = InstanceState.ACTIVE.value
_T = JourneyInstance.__table__  # type: ignore[attr-defined]
_LOAD_SQL = (
    "SELECT id, definition_id, journey, customer_id, store_id, state, active_key, "
    "current_step, waiting, context, deadline_at FROM journey_instance WHERE "
)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch runs.

    A batch of thousands of instances allocates a decoded context, a record and a few
    tuples per instance; at CPython's default thresholds that set off several
    collections per batch, each walking every long-lived object of the process (about a
    tenth of a sweep's CPU, measured). Nothing here makes reference cycles, so the
    batch's garbage goes by reference counting anyway; collection resumes afterwards.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(slots=True, eq=False)
class Inst:
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

class Plan:
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


_PLANS: dict[int, Plan] = {}


def plan_of(session: Session, definition_id: int) -> Plan:
    """The prepared plan of a stored version (follows the definitions cache)."""
    spec = definitions.spec_of(session, definition_id)
    plan = _PLANS.get(definition_id)
    if plan is None or plan.spec is not spec:
        plan = Plan(spec)
        _PLANS[definition_id] = plan
    return plan


@dataclass(slots=True)
class Batch:
    """What one pass over instances did, written set-based by ``flush``."""

    session: Session
    now: datetime
    now_iso: str = ""
    instances: dict[str, Inst] = field(default_factory=dict)  # every instance to write
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
    exits: list[tuple[Inst, Plan, str]] = field(default_factory=list)
    _quiet: dict[tuple[Any, ...], datetime | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.now_iso = self.now.isoformat(timespec="seconds")

    def touch(self, inst: Inst) -> None:
        """``inst`` will be written back."""
        self.instances[inst.id] = inst

    def record(self, inst: Inst, step_id: str, result: str) -> None:
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

    def finish(self, inst: Inst, state: InstanceState, reason: str) -> None:
        """Mark an instance ended (frees its active slot)."""
        inst.state = state.value
        inst.exit_reason = reason
        inst.ended_at = self.now
        inst.active_key = None
        inst.waiting = None
        self.touch(inst)

    def exit(self, inst: Inst, plan: Plan, reason: str) -> None:
        """End an instance early; its timers, queued messages and open tasks go at flush."""
        if inst.state != ACTIVE:
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
        # The key names the instance and the step (all the handler reads): no payload,
        # a third less to write per timer (every wake of every instance writes one).
        sql.many(
            "INSERT INTO timer (kind, key, due_at, payload, state, attempts, created_at) "
            "VALUES (?, ?, ?, '{}', 'pending', 0, ?) ON CONFLICT (kind, key) DO NOTHING",
            [(STEP_TIMER, key, dt(due), now) for _, key, due, _ in self.timers])
        _cancel_timers(sql, self.cancel_keys)
        self._write_exits(sql)
        _expire_orm_copies(self.session, self.instances)
        return lost

    def _update_instances(self, sql: BulkSql, rows: list[Inst]) -> None:
        """Write back instances that existed before this batch.

        They go first: an exit frees its active slot before a restart's new instance
        takes it. An instance that only moved leaves its indexed columns (state, active
        key) alone; history entries are appended in SQL (see Inst).
        """
        dt, js = sql.dt, sql.js
        append = ("history = (history::jsonb || ?j::jsonb)::json" if sql.postgres else
                  "history = CASE WHEN history = '[]' THEN ? ELSE "
                  "substr(history, 1, length(history) - 1) || ',' || substr(?, 2) END")
        groups: dict[tuple[bool, bool, bool], list[Inst]] = {}
        for i in rows:
            groups.setdefault((i.state == ACTIVE, bool(i.history), i.context_changed),
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
        customer); a dedupe key already queued is left as it is. Recipients are read
        first, once per customer, so each row goes in as a plain ``INSERT ... VALUES``:
        an ``INSERT ... SELECT`` per row makes SQLite journal every page it touches
        again for each row inside the sweep's savepoint (about 3 page writes a message).
        """
        if not self.messages:
            return
        recipients: dict[str, str] = {}
        customer_ids = list(dict.fromkeys(m[2] for m in self.messages))
        for part in chunks(customer_ids):
            recipients.update(sql.rows(
                f"SELECT id, phone_enc FROM customer WHERE {in_list('id', part)}", part))
        messages = [m for m in self.messages if m[2] in recipients]
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
            "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
            [(ch, recipients[cid], cid, body, key, now) for _, ch, cid, body, key, _ in messages])
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


def _expire_orm_copies(session: Session, instances: dict[str, Inst]) -> None:
    """ORM copies of instances written here are stale: reload them on next access."""
    if not session.identity_map:
        return
    for iid in instances:
        obj = session.identity_map.get(identity_key(JourneyInstance, iid))
        if obj is not None:
            session.expire(obj)


def load_instances(session: Session, where: str, params: Sequence[Any], *,
                   lock: bool) -> list[Inst]:
    """Instances matching the SQL condition ``where`` (row-locked on PostgreSQL).

    Read with the driver directly: the context is decoded here once, the history is not
    read at all, and timestamps come back as text on SQLite and aware on PostgreSQL.
    """
    sql = BulkSql(session)
    text = _LOAD_SQL + where + " ORDER BY id" + (" FOR UPDATE" if lock and sql.postgres else "")
    out = []
    for (iid, definition_id, journey, customer_id, store_id, state, active_key, current_step,
         waiting, context, deadline_at) in sql.rows(text, params):
        out.append(Inst(iid, definition_id, journey, customer_id, store_id, state,
                         active_key, current_step, waiting,
                         json.loads(context) if isinstance(context, str) else dict(context),
                         _utc(deadline_at)))
    return out


def in_list(column: str, values: Sequence[Any]) -> str:
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


def from_orm(inst: JourneyInstance) -> Inst:
    return Inst(inst.id, inst.definition_id, inst.journey, inst.customer_id, inst.store_id,
                 inst.state, inst.active_key, inst.current_step, inst.waiting,
                 dict(inst.context), inst.deadline_at)
