"""Durable timers: idempotent scheduling, exactly-once runs, retries, catch-up, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, func, insert, select
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.timers import Timer, TimerState
from hub.services import timers
from tests.hub.conftest import START

# Test-only table the handlers write into, so "ran once" is a database fact. It lives on
# its own MetaData so the hub's schema (and the migrations-match-models check) never sees it.
_TEST_METADATA = MetaData()
RAN = Table("test_timer_ran", _TEST_METADATA, Column("id", Integer, primary_key=True))

CALLS: list[str] = []


@timers.timer_handler("test.record")
def _record(session: Session, timer: Timer, now) -> None:  # type: ignore[no-untyped-def]
    CALLS.append(timer.key)
    session.execute(insert(RAN))
    if timer.payload.get("chain"):
        timers.schedule(session, "test.record", timer.key + "-next", now, {})


@timers.timer_handler("test.flaky")
def _flaky(session: Session, timer: Timer, now) -> None:  # type: ignore[no-untyped-def]
    session.execute(insert(RAN))  # must be rolled back with the failure
    raise RuntimeError("downstream unavailable")


@pytest.fixture
def timer_engine(engine: Engine) -> Engine:
    RAN.create(engine, checkfirst=True)
    with Session(engine) as s:
        s.execute(RAN.delete())
        s.commit()
    CALLS.clear()
    return engine


def _ran(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(RAN)).scalar_one())


def test_schedule_many_writes_timers_as_schedule_does_and_keeps_the_first(
    timer_engine: Engine,
) -> None:
    """One statement for many; a (kind, key) already there (or twice) keeps its first timer."""
    clock = ManualClock(START)
    due = START + timedelta(minutes=5)
    shared = {"order_id": "o1", "hop": 1}
    with Session(timer_engine) as s:
        timers.schedule(s, "test.record", "k0", due, {"a": 0})
        timers.schedule_many(
            s,
            [
                ("test.record", "k0", due + timedelta(minutes=1), {"a": "later"}),
                ("test.record", "k1", due, shared),
                ("test.record", "k2", due + timedelta(minutes=1), shared),
                ("test.record", "k1", due, {"a": "again"}),
            ],
            now=START,
        )
        s.commit()
    with Session(timer_engine) as s:
        rows = s.execute(select(Timer).order_by(Timer.key)).scalars().all()
        got = [(t.key, t.due_at, t.payload, t.state, t.attempts, t.created_at) for t in rows]
    assert got == [
        ("k0", due, {"a": 0}, TimerState.PENDING, 0, got[0][5]),
        ("k1", due, shared, TimerState.PENDING, 0, START),
        ("k2", due + timedelta(minutes=1), shared, TimerState.PENDING, 0, START),
    ]
    with Session(timer_engine) as s, pytest.raises(ValueError, match="timezone-aware"):
        timers.schedule_many(s, [("test.record", "k9", due.replace(tzinfo=None), {})], now=START)
    clock.advance(timedelta(minutes=5))
    assert timers.run_due(timer_engine, clock) == 2  # k0 and k1; k2 a minute later
    assert sorted(CALLS) == ["k0", "k1"]


def test_schedule_is_idempotent_and_runs_once_when_due(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        first = timers.schedule(s, "test.record", "k1", START + timedelta(minutes=5), {"a": 1})
        again = timers.schedule(s, "test.record", "k1", START + timedelta(minutes=9), {"a": 2})
        s.commit()
        assert again.id == first.id
    assert timers.run_due(timer_engine, clock) == 0  # not due yet
    clock.advance(timedelta(minutes=5))
    assert timers.run_due(timer_engine, clock) == 1
    assert timers.run_due(timer_engine, clock) == 0  # never twice
    assert CALLS == ["k1"]
    assert _ran(timer_engine) == 1
    with Session(timer_engine) as s:
        timer = s.execute(select(Timer)).scalar_one()
        assert timer.state == TimerState.DONE
        assert timer.payload == {"a": 1}


def test_cancel_and_cancel_prefix(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        for key in ("order-1/remind", "order-1/redispatch", "order-2/remind"):
            timers.schedule(s, "test.record", key, START)
        s.commit()
        assert timers.cancel(s, "test.record", "order-2/remind")
        assert not timers.cancel(s, "test.record", "order-2/remind")
        assert timers.cancel_prefix(s, "test.record", "order-1/") == 2
        s.commit()
    assert timers.run_due(timer_engine, clock) == 0
    assert CALLS == []


def test_catch_up_after_downtime_runs_in_due_order(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        for minute in (30, 10, 20):
            timers.schedule(s, "test.record", f"m{minute}", START + timedelta(minutes=minute))
        s.commit()
    clock.advance(timedelta(hours=3))  # the hub was down; everything is overdue
    assert timers.run_due(timer_engine, clock) == 3
    assert CALLS == ["m10", "m20", "m30"]


def test_handler_may_chain_a_due_timer(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        timers.schedule(s, "test.record", "c", START, {"chain": True})
        s.commit()
    assert timers.run_due(timer_engine, clock) == 2
    assert CALLS == ["c", "c-next"]


def test_failing_handler_rolls_back_retries_then_fails(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        timers.schedule(s, "test.flaky", "f", START)
        s.commit()
    for _ in range(timers.MAX_ATTEMPTS):
        assert timers.run_due(timer_engine, clock) == 1
        clock.advance(timedelta(hours=2))  # past any backoff
    assert timers.run_due(timer_engine, clock) == 0
    assert _ran(timer_engine) == 0  # the failed handler's writes never landed
    with Session(timer_engine) as s:
        timer = s.execute(select(Timer)).scalar_one()
        assert timer.state == TimerState.FAILED
        assert timer.attempts == timers.MAX_ATTEMPTS
        assert "downstream unavailable" in (timer.last_error or "")


def test_unknown_kind_is_left_for_another_process(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        timers.schedule(s, "test.nobody-handles-this", "x", START)
        s.commit()
    assert timers.run_due(timer_engine, clock) == 0
    with Session(timer_engine) as s:
        assert s.execute(select(Timer)).scalar_one().state == TimerState.PENDING


def test_concurrent_sweepers_run_each_timer_once(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        for i in range(300):
            timers.schedule(s, "test.record", f"t{i}", START)
        s.commit()
    totals: list[int] = []

    def sweep() -> None:
        totals.append(timers.run_due(timer_engine, clock, batch=25))

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(totals) == 300
    assert _ran(timer_engine) == 300
    assert sorted(CALLS) == sorted(f"t{i}" for i in range(300))


def test_naive_due_at_refused(timer_engine: Engine) -> None:
    with Session(timer_engine) as s, pytest.raises(ValueError, match="timezone"):
        timers.schedule(s, "test.record", "n", START.replace(tzinfo=None))


def test_one_failing_handler_does_not_hold_back_its_batch(timer_engine: Engine) -> None:
    clock = ManualClock(START)
    with Session(timer_engine) as s:
        timers.schedule(s, "test.record", "a", START)
        timers.schedule(s, "test.flaky", "f", START)
        timers.schedule(s, "test.record", "b", START)
        s.commit()
    assert timers.run_due(timer_engine, clock) == 3
    # The good ones ran once each (the aborted first pass left nothing behind) ...
    assert _ran(timer_engine) == 2
    with Session(timer_engine) as s:
        states = {t.key: t.state for t in s.execute(select(Timer)).scalars()}
    assert states == {"a": TimerState.DONE, "b": TimerState.DONE, "f": TimerState.PENDING}


def test_cancel_skip_locked_is_a_plain_cancel_when_nothing_holds_the_row(
    timer_engine: Engine,
) -> None:
    with Session(timer_engine) as s:
        timers.schedule(s, "test.record", "x", START)
        s.commit()
        assert timers.cancel(s, "test.record", "x", skip_locked=True)
        assert not timers.cancel(s, "test.record", "x", skip_locked=True)
        s.commit()
