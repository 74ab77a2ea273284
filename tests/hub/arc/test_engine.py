"""Journey engine: every step type, restart catch-up, exits, entry rules, quiet hours, limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.clock import ManualClock
from hub.db import make_engine
from hub.models.customers import CustomerTag
from hub.models.journeys import StaffTask
from hub.models.timers import Timer
from hub.services import journeys, timers
from hub.services.errors import Conflict
from tests.hub.arc.helpers import (
    enrol,
    instance,
    make_customer,
    messages,
    publish,
    run_until,
    steps_sent,
)
from tests.hub.conftest import START
from tests.hub.factories import seed


def _spec(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A 'demo' journey starting at its first step."""
    return {"name": "demo", "start": steps[0]["id"], "steps": steps, **extra}


def _send(step_id: str, nxt: str | None, channel: str = "sms") -> dict[str, Any]:
    """A send step."""
    return {"id": step_id, "type": "send", "channel": channel, "template": f"{step_id} $who",
            "next": nxt}


def test_send_wait_send_runs_each_step_once(arc_engine: Engine, clock: ManualClock) -> None:
    """send -> wait 1 h -> send -> end: the second message only when the wait is over."""
    publish(arc_engine, clock, _spec([
        _send("hello", "pause"),
        {"id": "pause", "type": "wait", "duration": "PT1H", "next": "bye"},
        _send("bye", "end"),
        {"id": "end", "type": "end", "outcome": "done"},
    ]))
    cid, _ = make_customer(arc_engine, clock)
    iid = enrol(arc_engine, clock, "demo", cid, context={"who": "Ann"})
    assert steps_sent(arc_engine, cid) == ["hello"]
    run_until(arc_engine, clock, START + timedelta(minutes=59), step=timedelta(minutes=10))
    assert steps_sent(arc_engine, cid) == ["hello"]
    run_until(arc_engine, clock, START + timedelta(hours=2), step=timedelta(minutes=10))
    assert steps_sent(arc_engine, cid) == ["hello", "bye"]
    inst = instance(arc_engine, iid)
    assert (inst.state, inst.exit_reason) == ("completed", "done")
    assert [h[0] for h in inst.history] == ["hello", "pause", "bye", "end"]
    with Session(arc_engine) as s:
        from hub.models.customers import OutboxMessage

        bodies = [m.body for m in s.execute(select(OutboxMessage)).scalars()]
    assert bodies == ["hello Ann", "bye Ann"]


def test_wait_until_context_time_and_wait_event(arc_engine: Engine, clock: ManualClock) -> None:
    """until $var - offset; an event moves a waiting instance at once; the other times out."""
    publish(arc_engine, clock, _spec([
        {"id": "w", "type": "wait", "until": "$due", "offset": "-PT2H", "next": "ask"},
        _send("ask", "answer"),
        {"id": "answer", "type": "wait_event", "event": "replied", "timeout": "P1D",
         "on_event": "thanks", "on_timeout": "nudge"},
        _send("thanks", None),
        _send("nudge", None),
    ]))
    due = (START + timedelta(days=2)).isoformat()
    a, _ = make_customer(arc_engine, clock)
    b, _ = make_customer(arc_engine, clock)
    ia = enrol(arc_engine, clock, "demo", a, context={"due": due})
    enrol(arc_engine, clock, "demo", b, context={"due": due})
    run_until(arc_engine, clock, START + timedelta(days=2, hours=-2, minutes=-1),
              step=timedelta(hours=1))
    assert steps_sent(arc_engine, a) == []
    run_until(arc_engine, clock, START + timedelta(days=2, hours=-1), step=timedelta(hours=1))
    assert steps_sent(arc_engine, a) == ["ask"]
    with Session(arc_engine) as s:
        assert journeys.deliver_event(s, a, "replied", clock.now(), {"text": "hi"}) == 1
        s.commit()
    assert steps_sent(arc_engine, a) == ["ask", "thanks"]
    assert instance(arc_engine, ia).context["text"] == "hi"
    run_until(arc_engine, clock, START + timedelta(days=4))
    assert steps_sent(arc_engine, a) == ["ask", "thanks"]  # the cancelled timeout never fires
    assert steps_sent(arc_engine, b) == ["ask", "nudge"]


def test_branch_tag_and_task(arc_engine: Engine, clock: ManualClock) -> None:
    """Branch on context; tag the customer; a call task also queues the call for the dialer."""
    seed(arc_engine, clock)
    publish(arc_engine, clock, _spec([
        {"id": "split", "type": "branch", "otherwise": "low",
         "cases": [{"when": [{"var": "score", "op": "ge", "value": 4},
                             {"var": "plan", "op": "in", "value": ["gold", "silver"]}],
                    "next": "high"}]},
        {"id": "high", "type": "tag", "kind": "profile", "name": "fan", "value": "$plan",
         "next": "call"},
        {"id": "low", "type": "tag", "kind": "profile", "name": "cold", "next": None},
        {"id": "call", "type": "task", "kind": "call", "title": "Call about $plan",
         "due_in": "PT4H", "next": None},
    ]))
    hi, _ = make_customer(arc_engine, clock)
    lo, _ = make_customer(arc_engine, clock)
    enrol(arc_engine, clock, "demo", hi, store_id="fz-gulou", context={"score": 5, "plan": "gold"})
    enrol(arc_engine, clock, "demo", lo, store_id="fz-gulou", context={"score": "n/a"})
    with Session(arc_engine) as s:
        tags = {(t.customer_id, t.name, t.value) for t in s.execute(select(CustomerTag)).scalars()}
        task = s.execute(select(StaffTask)).scalar_one()
    assert tags == {(hi, "fan", "gold"), (lo, "cold", "")}
    assert (task.customer_id, task.kind, task.title, task.store_id) == (
        hi, "call", "Call about gold", "fz-gulou")
    assert task.due_at == START + timedelta(hours=4)
    assert [(c, s) for _, c, s in messages(arc_engine, hi)] == [("call", "queued")]


def test_restart_with_moved_clock_sends_each_message_once(
    arc_engine: Engine, clock: ManualClock
) -> None:
    """Hub down for 10 days mid-journey: a new process catches up, nothing twice, none lost."""
    publish(arc_engine, clock, _spec([
        _send("a", "w1"),
        {"id": "w1", "type": "wait", "duration": "P1D", "next": "b"},
        _send("b", "w2"),
        {"id": "w2", "type": "wait", "duration": "P2D", "next": "c"},
        _send("c", "w3"),
        {"id": "w3", "type": "wait", "duration": "P3D", "next": "d"},
        _send("d", None),
    ]))
    customers = [make_customer(arc_engine, clock)[0] for _ in range(3)]
    for cid in customers:
        enrol(arc_engine, clock, "demo", cid)
    run_until(arc_engine, clock, START + timedelta(days=1, hours=1))
    assert all(steps_sent(arc_engine, c) == ["a", "b"] for c in customers)
    # "Restart": a new engine (new pool, nothing in memory), the clock 10 days on.
    restarted = make_engine(arc_engine.url.render_as_string(hide_password=False))
    try:
        later = ManualClock(START + timedelta(days=11))
        journeys.definitions.forget_cache()
        assert timers.run_due(restarted, later) > 0
        assert timers.run_due(restarted, later) == 0
    finally:
        restarted.dispose()
    for cid in customers:
        assert steps_sent(arc_engine, cid) == ["a", "b", "c", "d"]
    # Waits were measured from when each step was due, not from the late sweep.
    inst_history = instance(arc_engine, enrol_ids(arc_engine, customers[0]))
    assert inst_history.state == "completed"


def enrol_ids(engine: Engine, customer_id: str) -> str:
    """The id of the customer's one instance."""
    from hub.models.journeys import JourneyInstance

    with Session(engine) as s:
        return str(s.execute(select(JourneyInstance.id).where(
            JourneyInstance.customer_id == customer_id)).scalar_one())


def test_exit_event_cancels_queued_messages_tasks_and_timers(
    arc_engine: Engine, clock: ManualClock
) -> None:
    """Converting mid-journey: queued messages and open call tasks are cancelled; nothing fires."""
    seed(arc_engine, clock)
    publish(arc_engine, clock, _spec([
        _send("hello", "call"),
        {"id": "call", "type": "task", "kind": "call", "title": "Call", "next": "wait"},
        {"id": "wait", "type": "wait", "duration": "P1D", "next": "later"},
        _send("later", None),
    ], exit_on=["bought"]))
    cid, _ = make_customer(arc_engine, clock)
    iid = enrol(arc_engine, clock, "demo", cid, store_id="fz-gulou")
    assert [s for _, _, s in messages(arc_engine, cid)] == ["queued", "queued"]
    with Session(arc_engine) as s:
        assert journeys.deliver_event(s, cid, "bought", clock.now()) == 1
        s.commit()
    inst = instance(arc_engine, iid)
    assert (inst.state, inst.exit_reason, inst.active_key) == ("exited", "event:bought", None)
    assert [s for _, _, s in messages(arc_engine, cid)] == ["cancelled", "cancelled"]
    with Session(arc_engine) as s:
        assert s.execute(select(StaffTask.state)).scalar_one() == "cancelled"
        pending = s.execute(select(Timer.kind).where(Timer.state == "pending")).all()
    assert pending == []
    run_until(arc_engine, clock, START + timedelta(days=3))
    assert steps_sent(arc_engine, cid) == ["hello", "call"]


@pytest.mark.parametrize("rule", ["no_reentry", "after_exit", "any_time"])
def test_entry_rules(arc_engine: Engine, clock: ManualClock, rule: str) -> None:
    """Never twice at once; no_reentry never again; after_exit once ended; any_time restarts."""
    publish(arc_engine, clock, _spec([
        {"id": "w", "type": "wait", "duration": "P1D", "next": None},
    ], entry=rule, exit_on=["stop"]))
    cid, _ = make_customer(arc_engine, clock)
    first = enrol(arc_engine, clock, "demo", cid)
    if rule == "any_time":
        second = enrol(arc_engine, clock, "demo", cid)
        assert instance(arc_engine, first).exit_reason == "restarted"
        assert instance(arc_engine, second).state == "active"
        return
    with pytest.raises(Conflict):
        enrol(arc_engine, clock, "demo", cid)
    run_until(arc_engine, clock, START + timedelta(days=2))
    assert instance(arc_engine, first).state == "completed"
    if rule == "no_reentry":
        with pytest.raises(Conflict, match="already entered"):
            enrol(arc_engine, clock, "demo", cid)
    else:
        assert instance(arc_engine, enrol(arc_engine, clock, "demo", cid)).state == "active"


def test_quiet_hours_in_store_and_customer_time_zone(
    arc_engine: Engine, clock: ManualClock
) -> None:
    """A message due at 22:00 local waits for 08:00 local (store zone, or the customer's)."""
    seed(arc_engine, clock)  # Gulou is Asia/Shanghai (UTC+8)
    publish(arc_engine, clock, _spec([
        {"id": "w", "type": "wait", "until": "$at", "next": "hello"},
        _send("hello", None),
    ], quiet_hours={"start": "21:00", "end": "08:00", "timezone": "customer"}))
    at = START.replace(hour=14).isoformat()  # 22:00 Shanghai, 15:00 Paris
    shanghai, _ = make_customer(arc_engine, clock)
    paris, _ = make_customer(arc_engine, clock)
    enrol(arc_engine, clock, "demo", shanghai, store_id="fz-gulou", context={"at": at})
    enrol(arc_engine, clock, "demo", paris, store_id="fz-gulou",
          context={"at": at, "timezone": "Europe/Paris"})
    run_until(arc_engine, clock, START.replace(hour=14, minute=5), step=timedelta(minutes=5))
    assert steps_sent(arc_engine, paris) == ["hello"]
    assert steps_sent(arc_engine, shanghai) == []
    # 07:55 Shanghai next day = 23:55 UTC: still quiet; 08:00 = 00:00 UTC: sent.
    run_until(arc_engine, clock, START.replace(hour=23, minute=55), step=timedelta(minutes=30))
    assert steps_sent(arc_engine, shanghai) == []
    run_until(arc_engine, clock, START.replace(hour=23, minute=55) + timedelta(minutes=5),
              step=timedelta(minutes=5))
    assert steps_sent(arc_engine, shanghai) == ["hello"]


def test_max_length_exits_a_waiting_instance(arc_engine: Engine, clock: ManualClock) -> None:
    """An instance waiting past the journey's maximum length is exited."""
    publish(arc_engine, clock, _spec([
        {"id": "e", "type": "wait_event", "event": "never", "timeout": "P30D",
         "on_event": "x", "on_timeout": "x"},
        _send("x", None),
    ], max_length="P7D"))
    cid, _ = make_customer(arc_engine, clock)
    iid = enrol(arc_engine, clock, "demo", cid)
    run_until(arc_engine, clock, START + timedelta(days=8), step=timedelta(days=1))
    inst = instance(arc_engine, iid)
    assert (inst.state, inst.exit_reason) == ("exited", "max_length")
    run_until(arc_engine, clock, START + timedelta(days=31), step=timedelta(days=5))
    assert steps_sent(arc_engine, cid) == []


def test_running_instances_keep_their_version(arc_engine: Engine, clock: ManualClock) -> None:
    """Publishing v2 does not change an instance started on v1."""
    publish(arc_engine, clock, _spec([
        {"id": "w", "type": "wait", "duration": "P1D", "next": "v1"}, _send("v1", None)]))
    cid, _ = make_customer(arc_engine, clock)
    enrol(arc_engine, clock, "demo", cid)
    v2 = publish(arc_engine, clock, _spec([
        {"id": "w", "type": "wait", "duration": "P1D", "next": "v2"}, _send("v2", None)]))
    other, _ = make_customer(arc_engine, clock)
    iid = enrol(arc_engine, clock, "demo", other)
    assert instance(arc_engine, iid).definition_id == v2
    run_until(arc_engine, clock, START + timedelta(days=2))
    assert steps_sent(arc_engine, cid) == ["v1"]
    assert steps_sent(arc_engine, other) == ["v2"]
