"""Set-based execution: batch timer handlers, bulk enrolment and events, one wave, no repeats."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Table, func, insert, select, update
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.customers import Customer, OutboxMessage
from hub.models.journeys import JourneyInstance, OutboxDelivery
from hub.models.timers import Timer
from hub.services import journeys, timers
from hub.services.errors import Conflict, NotFound
from hub.services.journeys.batch import Batch, gc_paused
from tests.hub.arc.helpers import instance, make_customer, messages, publish, run_until, steps_sent
from tests.hub.conftest import START
from tests.hub.factories import seed

# Test-only table the batch handler writes into, on its own MetaData (never migrated).
_META = MetaData()
DONE = Table("test_batch_done", _META, Column("key", String(40), primary_key=True))
CALLS: list[list[str]] = []


@timers.batch_timer_handler("test.batch", batch=50)
def _batch(session: Session, due: list[timers.DueTimer], now: Any) -> None:
    CALLS.append([t.key for t in due])
    session.execute(insert(DONE), [{"key": t.key} for t in due])
    if any(t.payload.get("bad") for t in due):
        raise RuntimeError("one bad timer")


SINGLE_CALLS: list[str] = []


@timers.timer_handler("test.single")
def _single(session: Session, timer: Timer, now: Any) -> None:
    SINGLE_CALLS.append(f"{timer.key}@{len(CALLS)}")  # after how many batch calls
    session.execute(insert(DONE), [{"key": timer.key}])


@pytest.fixture
def batch_engine(arc_engine: Engine) -> Engine:
    """The emptied engine with the handler's table, and no calls recorded."""
    DONE.create(arc_engine, checkfirst=True)
    with Session(arc_engine) as s:
        s.execute(DONE.delete())
        s.commit()
    CALLS.clear()
    SINGLE_CALLS.clear()
    return arc_engine


def _timer_states(engine: Engine, kind: str) -> dict[str, tuple[str, int]]:
    with Session(engine) as s:
        return {k: (st, a) for k, st, a in s.execute(
            select(Timer.key, Timer.state, Timer.attempts).where(Timer.kind == kind))}


def test_batch_handler_gets_due_timers_together_and_isolates_a_failure(
    batch_engine: Engine, clock: ManualClock
) -> None:
    """120 due timers in batches of 50; a batch with a bad timer reruns one by one."""
    with Session(batch_engine) as s:
        for i in range(120):
            timers.schedule(s, "test.batch", f"t{i:03d}", START, {"bad": i == 7})
        timers.schedule(s, "test.batch", "later", START + timedelta(hours=1))
        s.commit()
    assert timers.run_due(batch_engine, clock) == 120
    assert [len(c) for c in CALLS[:1]] == [50]  # the first batch held 50 timers at once
    states = _timer_states(batch_engine, "test.batch")
    assert states["t007"] == ("pending", 1)  # retried later with backoff
    assert states["later"] == ("pending", 0)
    assert sum(st == "done" for st, _ in states.values()) == 119
    with Session(batch_engine) as s:
        written = set(s.execute(select(DONE.c.key)).scalars())
    # The failing batch's writes were rolled back and redone one by one without t007.
    assert written == {f"t{i:03d}" for i in range(120)} - {"t007"}
    assert timers.run_due(batch_engine, clock) == 0  # t007 is not due again yet
    clock.advance(timedelta(seconds=timers.RETRY_BASE_S))
    assert timers.run_due(batch_engine, clock) == 1
    assert _timer_states(batch_engine, "test.batch")["t007"] == ("pending", 2)


def test_one_claim_serves_every_kind_and_a_failed_batch_reruns_the_claim_isolated(
    batch_engine: Engine, clock: ManualClock
) -> None:
    """Batch and per-timer kinds are claimed together in due order; a batch handler that
    raises rolls the whole claim back and it runs again isolated: each timer once."""
    with Session(batch_engine) as s:
        timers.schedule(s, "test.batch", "b1", START - timedelta(minutes=2), {"bad": True})
        timers.schedule(s, "test.single", "s1", START - timedelta(minutes=1))
        timers.schedule(s, "test.batch", "b2", START)
        timers.schedule(s, "test.single", "s2", START + timedelta(minutes=1))  # not due
        s.commit()
    assert timers.run_due(batch_engine, clock) == 3
    # Together first (raised: rolled back, the per-timer kind had not run yet), then alone.
    assert CALLS == [["b1", "b2"], ["b1"], ["b2"]]
    assert SINGLE_CALLS == ["s1@3"]
    with Session(batch_engine) as s:
        assert set(s.execute(select(DONE.c.key)).scalars()) == {"b2", "s1"}
    states = _timer_states(batch_engine, "test.batch") | _timer_states(batch_engine,
                                                                        "test.single")
    assert states == {"b1": ("pending", 1), "b2": ("done", 0), "s1": ("done", 0),
                      "s2": ("pending", 0)}


def test_per_timer_kinds_are_not_held_behind_a_batch_backlog(
    batch_engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A per-timer kind's timer due after a backlog of batch-kind timers gets a claim of
    its own when the backlog has run for SINGLE_KINDS_MAX_WAIT_S (0 here: at once)."""
    monkeypatch.setattr(timers, "SINGLE_KINDS_MAX_WAIT_S", 0.0)
    with Session(batch_engine) as s:
        for i in range(120):
            timers.schedule(s, "test.batch", f"t{i:03d}", START - timedelta(hours=1))
        timers.schedule(s, "test.single", "late", START)
        s.commit()
    assert timers.run_due(batch_engine, clock) == 121
    assert SINGLE_CALLS == ["late@0"]  # due order alone would have run it last
    assert [len(c) for c in CALLS] == [50, 50, 20]
    states = _timer_states(batch_engine, "test.batch")
    assert all(st == ("done", 0) for st in states.values())


def _three_sends() -> dict[str, Any]:
    return {"name": "wave", "start": "a", "exit_on": ["bought"], "steps": [
        {"id": "a", "type": "send", "channel": "sms", "template": "a $n", "next": "w"},
        {"id": "w", "type": "wait", "duration": "P1D", "next": "b"},
        {"id": "b", "type": "send", "channel": "sms", "template": "b $n", "next": "e"},
        {"id": "e", "type": "wait_event", "event": "answered", "timeout": "P2D",
         "on_event": "thanks", "on_timeout": "c"},
        {"id": "thanks", "type": "send", "channel": "push", "template": "thanks", "next": None},
        {"id": "c", "type": "send", "channel": "sms", "template": "c", "next": None},
    ]}


def test_enrol_many_reports_each_entry_and_enrols_the_rest(
    arc_engine: Engine, clock: ManualClock
) -> None:
    """Unknown customer, unknown store, a repeat in the list, a running instance: errors;
    everyone else enrolled and sent the first message once."""
    seed(arc_engine, clock)
    publish(arc_engine, clock, _three_sends())
    ok = [make_customer(arc_engine, clock)[0] for _ in range(5)]
    running, _ = make_customer(arc_engine, clock)
    with Session(arc_engine) as s:
        journeys.enrol(s, "wave", running, clock.now())
        s.commit()
    entries = [journeys.Enrolment(cid, "fz-gulou", {"n": i}) for i, cid in enumerate(ok)]
    entries += [journeys.Enrolment("cus_nobody"), journeys.Enrolment(ok[0]),
                journeys.Enrolment(running), journeys.Enrolment(ok[1], "no-such-store")]
    with Session(arc_engine) as s:
        results = journeys.enrol_many(s, "wave", entries, clock.now())
        s.commit()
    assert all(isinstance(r, str) for r in results[:5])
    assert [type(r) for r in results[5:]] == [NotFound, Conflict, Conflict, NotFound]
    assert [steps_sent(arc_engine, cid) for cid in ok] == [["a"]] * 5
    assert instance(arc_engine, str(results[2])).context == {"n": 2,
                                                               "store_timezone": "Asia/Shanghai"}


def test_one_wave_advances_many_instances_and_events_in_bulk(
    arc_engine: Engine, clock: ManualClock
) -> None:
    """40 instances: bulk events move some, exit one; one sweep advances the rest."""
    publish(arc_engine, clock, _three_sends())
    people = [make_customer(arc_engine, clock)[0] for _ in range(40)]
    with Session(arc_engine) as s:
        journeys.enrol_many(s, "wave", [journeys.Enrolment(c, context={"n": i})
                                        for i, c in enumerate(people)], clock.now())
        s.commit()
    clock.advance(timedelta(days=1))
    assert timers.run_due(arc_engine, clock) == 40  # one wave: every "w" wait ends
    with Session(arc_engine) as s:
        moved = journeys.deliver_events(
            s, "answered", [(c, {"said": "yes"}) for c in people[:10]], clock.now())
        exited = journeys.deliver_events(s, "bought", [(people[10], None)], clock.now())
        s.commit()
    assert (moved, exited) == (10, 1)
    run_until(arc_engine, clock, START + timedelta(days=4))
    assert all(steps_sent(arc_engine, c) == ["a", "b", "thanks"] for c in people[:10])
    assert steps_sent(arc_engine, people[10]) == ["a", "b"]
    assert all(steps_sent(arc_engine, c) == ["a", "b", "c"] for c in people[11:])
    answered = instance(arc_engine, _iid(arc_engine, people[0]))
    assert answered.context["said"] == "yes"
    assert [h[0] for h in answered.history] == ["a", "w", "b", "e", "thanks"]
    assert instance(arc_engine, _iid(arc_engine, people[10])).exit_reason == "event:bought"
    with Session(arc_engine) as s:
        bodies = set(s.execute(select(OutboxMessage.body).where(
            OutboxMessage.customer_id == people[13])).scalars())
    assert bodies == {"a 13", "b 13", "c"}


def _iid(engine: Engine, customer_id: str) -> str:
    with Session(engine) as s:
        return str(s.execute(select(JourneyInstance.id).where(
            JourneyInstance.customer_id == customer_id)).scalar_one())


def test_quiet_hours_shift_each_zone_of_a_wave(arc_engine: Engine, clock: ManualClock) -> None:
    """One wave at 14:00 UTC: Shanghai (22:00) waits for 08:00 local, Paris (15:00) sends."""
    publish(arc_engine, clock, {
        "name": "zones", "start": "w",
        "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "customer"},
        "steps": [{"id": "w", "type": "wait", "until": "$at", "next": "hi"},
                  {"id": "hi", "type": "send", "channel": "sms", "template": "hi"}]})
    at = START.replace(hour=14).isoformat()
    zones = ["Asia/Shanghai", "Europe/Paris", "America/New_York"] * 4
    people = [make_customer(arc_engine, clock)[0] for _ in zones]
    with Session(arc_engine) as s:
        journeys.enrol_many(s, "zones", [journeys.Enrolment(c, context={"at": at, "timezone": z})
                                         for c, z in zip(people, zones, strict=True)],
                            clock.now())
        s.commit()
    clock.set(START.replace(hour=14))
    timers.run_due(arc_engine, clock)
    sent = {z for c, z in zip(people, zones, strict=True) if steps_sent(arc_engine, c)}
    assert sent == {"Europe/Paris", "America/New_York"}  # 15:00 and 09:00 local
    with Session(arc_engine) as s:
        held = set(s.execute(select(Timer.due_at).where(Timer.key.endswith(":hi:quiet"))).scalars())  # type: ignore[union-attr]
    assert held == {START.replace(hour=0) + timedelta(days=1)}  # 08:00 Shanghai
    clock.set(START.replace(hour=0) + timedelta(days=1))
    timers.run_due(arc_engine, clock)
    assert all(steps_sent(arc_engine, c) == ["hi"] for c in people)


def test_a_step_reached_again_never_sends_twice(arc_engine: Engine, clock: ManualClock) -> None:
    """Put instances back on a step they ran (as a crash between send and move would):
    the wave runs it again, the dedupe keys keep one message each."""
    publish(arc_engine, clock, _three_sends())
    people = [make_customer(arc_engine, clock)[0] for _ in range(6)]
    with Session(arc_engine) as s:
        journeys.enrol_many(s, "wave", [journeys.Enrolment(c) for c in people], clock.now())
        s.commit()
    clock.advance(timedelta(days=1))
    timers.run_due(arc_engine, clock)
    with Session(arc_engine) as s:
        s.execute(update(JourneyInstance).values(current_step="w", waiting="wait"))
        s.execute(update(Timer).where(Timer.key.endswith(":w")).values(state="pending"))  # type: ignore[union-attr]
        s.commit()
    timers.run_due(arc_engine, clock)
    with Session(arc_engine) as s:
        count = s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        steps = set(s.execute(select(JourneyInstance.current_step, JourneyInstance.waiting)))
        failed = s.execute(select(func.count()).select_from(Timer).where(
            Timer.attempts > 0)).scalar_one()
    assert count == 12  # "a" and "b" for each, once
    assert len(messages(arc_engine)) == 12
    assert (steps, failed) == ({("e", "event")}, 0)  # the rerun went through, no errors


def test_a_batch_queues_messages_only_for_customers_that_exist(
    arc_engine: Engine, clock: ManualClock
) -> None:
    """Recipients are read per batch: an unknown customer's message is dropped, every other
    one gets its own delivery row (the SQLite path numbers them from the new outbox ids)."""
    known = [make_customer(arc_engine, clock)[0] for _ in range(3)]
    wanted = [("jin_a", "sms", known[0], "one", "journey:jin_a:s1", "marketing"),
              ("jin_x", "sms", "cus_gone", "lost", "journey:jin_x:s1", "marketing"),
              ("jin_b", "mms", known[1], "two", "journey:jin_b:s1", "service"),
              ("jin_c", "call", known[2], "three", "journey:jin_c:s1", "marketing")]
    with Session(arc_engine) as s:
        batch = Batch(s, clock.now())
        batch.messages.extend(wanted)
        batch.flush()
        s.commit()
    with Session(arc_engine) as s:
        rows = s.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.customer_id, OutboxMessage.body,
                   OutboxDelivery.purpose, OutboxDelivery.source_id, OutboxDelivery.status)
            .join(OutboxDelivery, OutboxDelivery.outbox_id == OutboxMessage.id)
            .order_by(OutboxMessage.dedupe_key)).all()
        recipients = {c.id: c.phone_enc for c in s.execute(select(Customer)).scalars()}
        encs = dict(s.execute(select(OutboxMessage.customer_id, OutboxMessage.recipient_enc)).all())
    assert [tuple(r) for r in rows] == [
        ("journey:jin_a:s1", known[0], "one", "marketing", "jin_a", "queued"),
        ("journey:jin_b:s1", known[1], "two", "service", "jin_b", "queued"),
        ("journey:jin_c:s1", known[2], "three", "marketing", "jin_c", "queued"),
    ]
    assert encs == {cid: recipients[cid] for cid in known}


def test_batches_run_without_cyclic_gc_and_restore_it() -> None:
    """Collection is off inside a batch and back as it was afterwards (also after an error)."""
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a failing batch")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller's own choice is left alone
    finally:
        gc.enable()
