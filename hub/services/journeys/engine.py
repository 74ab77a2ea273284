"""Journey instances: entry rules, enrolment, events, exits, and the step-timer handler.

An instance points at its current step; ``steps.advance`` runs steps until one has to
wait, and the wait is a durable timer whose key names the instance and the step, so it
is scheduled once and fires once (``hub.services.timers`` runs the handler and marks the
timer done in one savepoint). The step graph has no loops, so every step runs at most
once per instance, and every message it queues has the dedupe key
``journey:<instance>:<step>``: no double send even when a step is reached again.

Execution is set-based (``batch``): every entry point loads the instances it touches in
one SELECT, runs their steps in memory and writes each kind of effect with one
``executemany``. A timer sweep advances thousands of instances due at the same moment in
a handful of statements; a single enrolment or event is a batch of one, so both paths
run the same step code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub.models.customers import Customer
from hub.models.journeys import InstanceState, JourneyInstance, StaffTask, TaskState
from hub.models.registry import DEFAULT_TIMEZONE, Store
from hub.models.types import new_id
from hub.services import timers
from hub.services.bulk import chunks
from hub.services.errors import Conflict, HubError, NotFound
from hub.services.journeys import definitions
from hub.services.journeys.batch import (
    ACTIVE,
    STEP_TIMER,
    Batch,
    Inst,
    from_orm,
    gc_paused,
    in_list,
    load_instances,
    plan_of,
)
from hub.services.journeys.schema import EntryRule, JourneySpec, WaitEventStep
from hub.services.journeys.steps import advance

__all__ = [
    "STEP_TIMER",
    "Enrolment",
    "close_task",
    "deliver_event",
    "deliver_events",
    "enrol",
    "enrol_many",
    "exit_instance",
    "get_instance",
]

log = logging.getLogger(__name__)
_T = JourneyInstance.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One customer to enrol (``enrol_many``)."""

    customer_id: str
    store_id: str | None = None
    context: dict[str, Any] | None = None

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


@gc_paused()
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
    plan = plan_of(session, row.id or 0)
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
    batch = Batch(session, now)
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
        if ACTIVE in prior.get(cid, ()):
            restart.append(cid)  # ANY_TIME: the new entry replaces the running one
        ctx = dict(entry.context or {})
        ctx.setdefault("store_timezone", zones.get(entry.store_id or "", DEFAULT_TIMEZONE))
        inst = Inst(
            id=new_id("jin"), definition_id=row.id or 0, journey=journey, customer_id=cid,
            store_id=entry.store_id, state=ACTIVE, active_key=f"{journey}:{cid}",
            current_step=spec.start, waiting=None, context=ctx, deadline_at=now + spec.max_length,
            started_at=now, new=True,
        )
        results.append(inst.id)
        batch.touch(inst)
    for part in chunks(restart):
        where = f"journey = ? AND state = 'active' AND {in_list('customer_id', part)}"
        for old in load_instances(session, where, [journey, *part], lock=True):
            batch.exit(old, plan_of(session, old.definition_id), "restarted")
    for inst in [i for i in batch.instances.values() if i.new]:
        advance(batch, inst, plan, now, resume=None)
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
    if spec.entry is EntryRule.AFTER_EXIT and ACTIVE in states:
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


@gc_paused()
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
    by_customer: dict[str, list[Inst]] = {}
    # Row locks (PostgreSQL; SQLite serialises writers anyway) so an event and a timer
    # firing for the same instance at the same moment take turns, each seeing the other's
    # result, instead of both moving the instance from the same step.
    session.flush()
    for part in chunks(customer_ids):
        where = f"state = 'active' AND {in_list('customer_id', part)}"
        params: list[Any] = list(part)
        if journey is not None:
            where += " AND journey = ?"
            params.append(journey)
        for inst in load_instances(session, where, params, lock=True):
            by_customer.setdefault(inst.customer_id, []).append(inst)
    batch = Batch(session, now)
    touched = 0
    for cid, payload in items:
        for inst in by_customer.get(cid, ()):
            if inst.state != ACTIVE:
                continue
            plan = plan_of(session, inst.definition_id)
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
                advance(batch, inst, plan, now, resume=None)
                touched += 1
    batch.flush()
    return touched


def exit_instance(session: Session, inst: JourneyInstance, reason: str, now: datetime) -> None:
    """End an instance early: cancel its timers, queued messages and open tasks."""
    if inst.state != InstanceState.ACTIVE:
        return
    batch = Batch(session, now)
    batch.exit(from_orm(inst), plan_of(session, inst.definition_id), reason)
    batch.flush()  # also expires ``inst`` if it belongs to this session


@timers.batch_timer_handler(STEP_TIMER)
@gc_paused()
def _on_step_timers(session: Session, due: list[timers.DueTimer], now: datetime) -> None:
    """Waits (or quiet hours) ended: resume every instance still on its timer's step."""
    session.flush()
    # Keys are "<instance>:<step>" or "<instance>:<step>:quiet" (neither part has a colon).
    wakes = [(t.key.split(":", 2), t.due_at) for t in due]
    ids = list(dict.fromkeys(parts[0] for parts, _ in wakes))
    instances: dict[str, Inst] = {}
    for part in chunks(ids):
        rows = load_instances(session, in_list("id", part), part, lock=True)
        instances.update((i.id, i) for i in rows)
    batch = Batch(session, now)
    for (iid, step_id, *_), due_at in wakes:
        inst = instances.get(iid)
        if (inst is None or inst.state != ACTIVE or inst.current_step != step_id
                or inst.waiting is None):
            continue  # stale: the instance moved on or ended
        batch.touch(inst)
        advance(batch, inst, plan_of(session, inst.definition_id), due_at, resume=step_id)
    batch.flush()


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
