"""Running journey steps in memory: one instance at a time, effects collected in a Batch.

``advance`` runs steps from an instance's current one until one has to wait (a
duration, a time, an event, or the end of quiet hours) or the journey ends; a wait
becomes a durable timer keyed ``<instance>:<step>`` (``:quiet`` for quiet hours). Waits
are measured from when the step was due, so catch-up after downtime keeps the schedule.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from string import Template
from typing import Any

from hub.models.journeys import InstanceState
from hub.models.registry import DEFAULT_TIMEZONE
from hub.services.journeys.batch import ACTIVE, QUIET_SUFFIX, Batch, Inst, Plan
from hub.services.journeys.schema import (
    BranchStep,
    Condition,
    EndStep,
    JourneySpec,
    SendStep,
    TagStep,
    TaskStep,
    WaitEventStep,
    WaitStep,
)

log = logging.getLogger(__name__)

_STAY = object()  # a step that must wait: the instance stays on it


def advance(batch: Batch, inst: Inst, plan: Plan, due: datetime,
             resume: str | None) -> None:
    """Run steps from the current one until one waits or the journey ends.

    ``due`` is when the current step became due (a timer's due time on catch-up);
    ``resume`` names the step whose wait just finished.
    """
    steps = plan.steps
    now = batch.now
    for _ in range(len(steps) + 1):
        if inst.state != ACTIVE:
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


def _run(batch: Batch, inst: Inst, plan: Plan, step: Any, due: datetime, *,
         resumed: bool) -> Any:
    """Run one step; return the next step id, None to complete, or _STAY to wait."""
    return _RUNNERS[type(step)](batch, inst, plan, step, due, resumed)


def _run_send(batch: Batch, inst: Inst, plan: Plan, step: SendStep, due: datetime,
              resumed: bool) -> Any:
    if not resumed:
        held_until = _quiet_end(batch, inst, plan.spec, step)
        if held_until is not None:
            return _wait(batch, inst, step.id, held_until, "quiet", suffix=QUIET_SUFFIX)
    _send(batch, inst, step.id, step.channel.value, _render(step.template, inst.context),
          step.purpose)
    batch.record(inst, step.id, "sent")
    return step.next


def _run_wait(batch: Batch, inst: Inst, plan: Plan, step: WaitStep, due: datetime,
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


def _run_wait_event(batch: Batch, inst: Inst, plan: Plan, step: WaitEventStep,
                    due: datetime, resumed: bool) -> Any:
    if resumed:
        batch.record(inst, step.id, "timeout")
        return step.on_timeout
    return _wait(batch, inst, step.id, due + step.timeout, "event")


def _run_branch(batch: Batch, inst: Inst, plan: Plan, step: BranchStep, due: datetime,
                resumed: bool) -> Any:
    for case in step.cases:
        if all(_holds(c, inst.context) for c in case.when):
            batch.record(inst, step.id, f"to:{case.next}")
            return case.next
    batch.record(inst, step.id, f"to:{step.otherwise}")
    return step.otherwise


def _run_task(batch: Batch, inst: Inst, plan: Plan, step: TaskStep, due: datetime,
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


def _run_tag(batch: Batch, inst: Inst, plan: Plan, step: TagStep, due: datetime,
             resumed: bool) -> Any:
    batch.tags.append((inst.id, inst.customer_id, step.kind.value, step.name,
                       _render(step.value, inst.context)))
    batch.record(inst, step.id, "tagged")
    return step.next


def _run_end(batch: Batch, inst: Inst, plan: Plan, step: EndStep, due: datetime,
             resumed: bool) -> Any:
    batch.record(inst, step.id, "end")
    return None


_RUNNERS: dict[type, Any] = {
    SendStep: _run_send, WaitStep: _run_wait, WaitEventStep: _run_wait_event,
    BranchStep: _run_branch, TaskStep: _run_task, TagStep: _run_tag, EndStep: _run_end,
}


def _wait(batch: Batch, inst: Inst, step_id: str, until: datetime, mode: str,
          suffix: str = "") -> Any:
    """Park the instance on ``step_id`` until a durable timer wakes it.

    No wake-up is later than the journey's maximum length, so the same timer that ends a
    wait also ends an instance that outlived its journey (no separate deadline timer).
    """
    until = min(until, inst.deadline_at)
    batch.timers.append((inst.id, f"{inst.id}:{step_id}{suffix}", until, step_id))
    inst.waiting = mode
    return _STAY


def _quiet_end(batch: Batch, inst: Inst, spec: JourneySpec, step: Any) -> datetime | None:
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


def _wait_target(inst: Inst, step: WaitStep, due: datetime) -> datetime | None:
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


def _send(batch: Batch, inst: Inst, step_id: str, channel: str, body: str,
          purpose: str) -> None:
    """Queue one step's message to the customer (dedupe key per instance and step)."""
    batch.messages.append((inst.id, channel, inst.customer_id, body,
                           f"journey:{inst.id}:{step_id}", purpose))
