"""Journey instances: entry rules, running steps once each on durable timers, events and exits.

An instance points at its current step. ``_advance`` runs steps until one has to wait
(a duration, a time, an event, or the end of quiet hours); the wait is a durable timer
whose key names the instance and the step, so it is scheduled once and fires once
(``hub.services.timers`` runs the handler and marks the timer done in one savepoint).
The step graph has no loops, so every step runs at most once per instance, and every
message it queues has the dedupe key ``journey:<instance>:<step>``: no double send even
when a step is reached again after a crash. Waits are measured from when the step was
due (not from when a late sweep noticed), so catch-up after downtime keeps the schedule.
"""

from __future__ import annotations

import logging
from datetime import datetime
from string import Template
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hub.models.customers import Customer, TagCreate
from hub.models.journeys import InstanceState, JourneyInstance, StaffTask, TaskState
from hub.models.registry import DEFAULT_TIMEZONE, Store
from hub.models.timers import Timer
from hub.models.types import new_id
from hub.services import outbox, timers
from hub.services.customers import add_tag
from hub.services.errors import Conflict, NotFound
from hub.services.journeys import definitions
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
_STAY = object()  # a step that must wait: the instance stays on it


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
    row = definitions.latest(session, journey)
    spec = definitions.spec_of(session, row.id or 0)
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id!r} not found")
    prior = list(session.execute(
        select(JourneyInstance).where(
            JourneyInstance.customer_id == customer_id, JourneyInstance.journey == journey)
    ).scalars())
    running = [p for p in prior if p.state == InstanceState.ACTIVE]
    if spec.entry is EntryRule.NO_REENTRY and prior:
        raise Conflict(f"customer already entered journey {journey!r}", code="no_reentry")
    if spec.entry is EntryRule.AFTER_EXIT and running:
        raise Conflict(f"customer is already in journey {journey!r}", code="already_active")
    for old in running:  # ANY_TIME: the new entry replaces the running one
        exit_instance(session, old, "restarted", now)
    ctx = dict(context or {})
    store = session.get(Store, store_id) if store_id else None
    ctx.setdefault("store_timezone", store.timezone if store else DEFAULT_TIMEZONE)
    inst = JourneyInstance(
        id=new_id("jin"), definition_id=row.id or 0, journey=journey, customer_id=customer_id,
        store_id=store_id, active_key=f"{journey}:{customer_id}", current_step=spec.start,
        context=ctx, history=[], started_at=now, deadline_at=now + spec.max_length,
    )
    try:
        with session.begin_nested():
            session.add(inst)
    except IntegrityError:
        raise Conflict(f"customer is already in journey {journey!r}",
                       code="already_active") from None
    _advance(session, inst, spec, now, now, resume=None)
    return inst


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
    # Row locks (PostgreSQL; SQLite serialises writers anyway) so an event and a timer
    # firing for the same instance at the same moment take turns, each seeing the other's
    # result, instead of both moving the instance from the same step.
    query = (
        select(JourneyInstance)
        .where(JourneyInstance.customer_id == customer_id,
               JourneyInstance.state == InstanceState.ACTIVE)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if journey is not None:
        query = query.where(JourneyInstance.journey == journey)
    touched = 0
    for inst in list(session.execute(query).scalars()):
        spec = definitions.spec_of(session, inst.definition_id)
        if payload:
            inst.context = {**inst.context, **payload}
        if event in spec.exit_on:
            exit_instance(session, inst, f"event:{event}", now)
            touched += 1
            continue
        step = spec.step_map().get(inst.current_step or "")
        if inst.waiting == "event" and isinstance(step, WaitEventStep) and step.event == event:
            timers.cancel(session, STEP_TIMER, f"{inst.id}:{step.id}")
            _record(inst, step.id, now, "event")
            _move(inst, step.on_event)
            _advance(session, inst, spec, now, now, resume=None)
            touched += 1
        session.add(inst)
    return touched


def exit_instance(session: Session, inst: JourneyInstance, reason: str, now: datetime) -> None:
    """End an instance early: cancel its timers, queued messages and open tasks."""
    if inst.state != InstanceState.ACTIVE:
        return
    _finish(session, inst, InstanceState.EXITED, reason, now)
    timers.cancel_prefix(session, STEP_TIMER, f"{inst.id}:")
    messages = outbox.cancel_source(session, SOURCE_KIND, inst.id, now)
    tasks = session.execute(
        update(StaffTask)
        .where(StaffTask.instance_id == inst.id, StaffTask.state == TaskState.OPEN)
        .values(state=TaskState.CANCELLED, closed_at=now, outcome=f"journey exited: {reason}")
    ).rowcount  # type: ignore[attr-defined]
    log.info("journey exited", extra={"instance_id": inst.id, "reason": reason,
                                      "cancelled_messages": messages, "cancelled_tasks": tasks})


def _finish(session: Session, inst: JourneyInstance, state: InstanceState, reason: str,
            now: datetime) -> None:
    """Mark an instance ended (frees its active slot)."""
    inst.state = state
    inst.exit_reason = reason
    inst.ended_at = now
    inst.active_key = None
    inst.waiting = None
    session.add(inst)


def _record(inst: JourneyInstance, step_id: str, at: datetime, result: str) -> None:
    """Append one executed step to the instance's history."""
    inst.history = [*inst.history, [step_id, at.isoformat(timespec="seconds"), result]]


def _move(inst: JourneyInstance, step_id: str | None) -> None:
    """Point the instance at its next step."""
    inst.current_step = step_id
    inst.waiting = None


def _advance(session: Session, inst: JourneyInstance, spec: JourneySpec, now: datetime,
             due: datetime, resume: str | None) -> None:
    """Run steps from the current one until one waits or the journey ends.

    ``due`` is when the current step became due (a timer's due time on catch-up);
    ``resume`` names the step whose wait just finished.
    """
    steps = spec.step_map()
    for _ in range(len(steps) + 1):
        if inst.state != InstanceState.ACTIVE:
            return
        if now >= inst.deadline_at:
            exit_instance(session, inst, "max_length", now)
            return
        step = steps[inst.current_step or spec.start]
        nxt = _run(session, inst, spec, step, now, due, resumed=resume == step.id)
        resume = None
        if nxt is _STAY:
            session.add(inst)
            return
        if nxt is None:
            _finish(session, inst, InstanceState.COMPLETED,
                    step.outcome if isinstance(step, EndStep) else "completed", now)
            return
        _move(inst, nxt)  # type: ignore[arg-type]
    raise RuntimeError(f"journey {inst.journey} did not settle")  # impossible without loops


def _run(session: Session, inst: JourneyInstance, spec: JourneySpec, step: Any, now: datetime,
         due: datetime, *, resumed: bool) -> Any:
    """Run one step; return the next step id, None to complete, or _STAY to wait."""
    if isinstance(step, SendStep | TaskStep) and not resumed:
        held_until = _quiet_end(inst, spec, now, step)
        if held_until is not None:
            return _wait(session, inst, step.id, held_until, "quiet", now, suffix=":quiet")
    if isinstance(step, SendStep):
        _send(session, inst, step.id, step.channel.value, _render(step.template, inst), now,
              step.purpose)
        _record(inst, step.id, now, "sent")
        return step.next
    if isinstance(step, WaitStep):
        if resumed:
            _record(inst, step.id, now, "waited")
            return step.next
        until = _wait_target(inst, step, due)
        if until is None:
            exit_instance(session, inst, f"error:{step.id}", now)
            return _STAY
        if until <= now:
            _record(inst, step.id, now, "waited")
            return step.next
        return _wait(session, inst, step.id, until, "wait", now)
    if isinstance(step, WaitEventStep):
        if resumed:
            _record(inst, step.id, now, "timeout")
            return step.on_timeout
        return _wait(session, inst, step.id, due + step.timeout, "event", now)
    if isinstance(step, BranchStep):
        for case in step.cases:
            if all(_holds(c, inst.context) for c in case.when):
                _record(inst, step.id, now, f"to:{case.next}")
                return case.next
        _record(inst, step.id, now, f"to:{step.otherwise}")
        return step.otherwise
    if isinstance(step, TaskStep):
        _task(session, inst, step, now, due)
        _record(inst, step.id, now, "task")
        return step.next
    if isinstance(step, TagStep):
        customer = session.get(Customer, inst.customer_id)
        if customer is not None:
            add_tag(session, customer, TagCreate(kind=step.kind, name=step.name,
                                                 value=_render(step.value, inst)), now)
        _record(inst, step.id, now, "tagged")
        return step.next
    _record(inst, step.id, now, "end")
    return None


def _wait(session: Session, inst: JourneyInstance, step_id: str, until: datetime, mode: str,
          now: datetime, suffix: str = "") -> Any:
    """Park the instance on ``step_id`` until a durable timer wakes it.

    No wake-up is later than the journey's maximum length, so the same timer that ends a
    wait also ends an instance that outlived its journey (no separate deadline timer).
    """
    until = min(until, inst.deadline_at)
    timers.schedule(session, STEP_TIMER, f"{inst.id}:{step_id}{suffix}", until,
                    {"iid": inst.id, "step": step_id}, now=now)
    inst.waiting = mode
    return _STAY


def _quiet_end(
    inst: JourneyInstance, spec: JourneySpec, now: datetime, step: Any
) -> datetime | None:
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
    return quiet_until(now, quiet.start, quiet.end, str(tz or DEFAULT_TIMEZONE))


def _wait_target(inst: JourneyInstance, step: WaitStep, due: datetime) -> datetime | None:
    """When a wait step ends: ``due + duration``, or ``until`` (+ offset); None if unreadable."""
    if step.duration is not None:
        return due + step.duration
    raw = str(step.until)
    if raw.startswith("$"):
        raw = str(inst.context.get(raw[1:], ""))
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        log.error("wait target unreadable", extra={"instance_id": inst.id, "step": step.id})
        return None
    if at.tzinfo is None:
        return None
    return at + step.offset


def _render(template: str, inst: JourneyInstance) -> str:
    """``$var`` substituted from the instance's context (unknown names stay as written)."""
    return Template(template).safe_substitute(inst.context)


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


def _send(session: Session, inst: JourneyInstance, step_id: str, channel: str, body: str,
          now: datetime, purpose: str) -> None:
    """Queue one step's message to the customer (dedupe key per instance and step)."""
    customer = session.get(Customer, inst.customer_id)
    if customer is None:
        return
    outbox.enqueue_message(
        session, channel=channel, customer_id=customer.id, recipient_enc=customer.phone_enc,
        body=body, dedupe_key=f"journey:{inst.id}:{step_id}", now=now, purpose=purpose,
        source_kind=SOURCE_KIND, source_id=inst.id,
    )


def _task(session: Session, inst: JourneyInstance, step: TaskStep, now: datetime,
          due: datetime) -> None:
    """Create the step's staff task once; a call task also queues the call."""
    exists = session.execute(select(StaffTask.id).where(
        StaffTask.instance_id == inst.id, StaffTask.step_id == step.id)).first()
    if exists is not None:
        return
    title = _render(step.title, inst)
    session.add(StaffTask(
        instance_id=inst.id, step_id=step.id, customer_id=inst.customer_id,
        store_id=inst.store_id, kind=step.kind, title=title, due_at=due + step.due_in,
        created_at=now,
    ))
    if step.kind == "call":
        _send(session, inst, step.id, "call", title, now, "marketing")


@timers.timer_handler(STEP_TIMER)
def _on_step_timer(session: Session, timer: Timer, now: datetime) -> None:
    """A wait (or quiet hours) ended: resume the instance if it is still on that step."""
    inst = session.get(JourneyInstance, timer.payload["iid"], with_for_update=True,
                       populate_existing=True)
    step_id = timer.payload["step"]
    if (inst is None or inst.state != InstanceState.ACTIVE or inst.current_step != step_id
            or inst.waiting is None):
        return  # stale: the instance moved on or ended
    spec = definitions.spec_of(session, inst.definition_id)
    _advance(session, inst, spec, now, timer.due_at, resume=step_id)


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

