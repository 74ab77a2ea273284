"""Benchmark: N ARC journey instances through a simulated 31-day trial on a moved clock.

Customers fall into cohorts (converters, high raters, low users, silent users, the rest);
their events are delivered on the days a real trial would see them, and the clock moves
in half-day steps running due timers. Afterwards the messages in the outbox are counted
per cohort against what the definition implies (a static walk of the step graph), so a
duplicate or a missing message fails the run.

The candidate is the set-based path: enrolment as one ``enrol_many`` per chunk, each
day's events as ``deliver_events`` per chunk, and timer sweeps that advance every
instance due at once. The baseline, measured in the same run on its own customers, is
the same engine driven one instance at a time (``enrol`` and ``deliver_event`` per
customer, ``run_due(batch=1)``: one timer per transaction), on a smaller sample.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import Session

from hub.clock import ManualClock
from hub.db import WalCheckpointer, make_engine, migrate
from hub.models.customers import Customer, OutboxMessage
from hub.services import journeys, timers
from hub.services.arc import ARC_JOURNEY, EV_CONVERTED, EV_RATED, EV_USAGE, JOURNEY
from hub.services.journeys import definitions
from hub.services.journeys.schema import (
    BranchStep,
    JourneySpec,
    SendStep,
    TaskStep,
    WaitEventStep,
    WaitStep,
)

log = logging.getLogger(__name__)

# Monday 11:00 in Asia/Shanghai: every send lands in the day, never in quiet hours.
START = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
TRIAL_DAYS = 30
HORIZON_DAYS = 31  # the "simulated 31-day trial"
CLOCK_STEP = timedelta(hours=12)
# Cohort shares, fixed by seed: 6.4% convert (the Shanxi rate, SEEDS.md 2).
SHARE_CONVERT = 0.064
SHARE_HIGH_RATER = 0.25
SHARE_LOW_USER = 0.30
SHARE_SILENT = 0.10
USAGE_HIGH_MB = 800.0
USAGE_LOW_MB = 10.0
DAY_USAGE = 5.0  # usage reported on day 5, before the day-10 check
DAY_RATE = 15.5  # a rater answers the day-15 question that evening
DAY_CONVERT = 28.0  # converters reply Y after the day-27 reminder
ENROL_CHUNK = 5_000  # enrolments per transaction
EVENT_CHUNK = 5_000
# The one-at-a-time baseline runs on 1% of N (at least 100, at most 1,000 instances).
BASELINE_SHARE, BASELINE_MIN, BASELINE_MAX = 0.01, 100, 1_000


@dataclass(frozen=True)
class Behaviour:
    """What one simulated customer does during the trial."""

    usage_mb: float | None
    rating: int | None
    converts: bool

    def events(self) -> list[tuple[float, str, dict[str, Any]]]:
        """(day, event, payload) in time order."""
        out: list[tuple[float, str, dict[str, Any]]] = []
        if self.usage_mb is not None:
            out.append((DAY_USAGE, EV_USAGE, {"usage_mb": self.usage_mb,
                                               "usage_low": self.usage_mb < 100}))
        if self.rating is not None:
            out.append((DAY_RATE, EV_RATED, {"rating": self.rating}))
        if self.converts:
            out.append((DAY_CONVERT, EV_CONVERTED, {"converted": True}))
        return out


def behaviours(n: int, seed: int) -> list[Behaviour]:
    """The cohort of each of ``n`` customers, reproducible from ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        usage = (None if r < SHARE_SILENT else USAGE_LOW_MB
                 if r < SHARE_SILENT + SHARE_LOW_USER else USAGE_HIGH_MB)
        rating = 5 if rng.random() < SHARE_HIGH_RATER else (2 if rng.random() < 0.3 else None)
        out.append(Behaviour(usage, rating, rng.random() < SHARE_CONVERT))
    return out


def implied_messages(spec: JourneySpec, b: Behaviour, horizon_days: float) -> int:
    """How many outbox messages the definition implies for one behaviour by ``horizon_days``.

    A static walk of the step graph with time in days (independent of the engine): waits
    move time, wait_event takes the event if it falls inside the timeout, an exit event
    stops everything after it, and sends past the horizon do not count.
    """
    steps = spec.step_map()
    ctx: dict[str, Any] = {"started_at": 0.0, "ends_at": float(TRIAL_DAYS)}
    events = b.events()
    exit_day = next((d for d, e, _ in events if e in spec.exit_on), None)
    t, count, current = 0.0, 0, spec.start
    while current is not None:
        for day, _, payload in events:  # context as it stands at time t
            if day <= t:
                ctx.update(payload)
        if t > horizon_days or (exit_day is not None and t >= exit_day):
            break
        step = steps[current]
        if isinstance(step, SendStep) or (isinstance(step, TaskStep) and step.kind == "call"):
            count += 1
        if isinstance(step, WaitStep):
            if step.duration is not None:
                t += step.duration.total_seconds() / 86400
            else:
                t = ctx[str(step.until).lstrip("$")] + step.offset.total_seconds() / 86400
            current = step.next
        elif isinstance(step, WaitEventStep):
            limit = t + step.timeout.total_seconds() / 86400
            hit = next((d for d, e, _ in events if e == step.event and t <= d < limit), None)
            t, current = (hit, step.on_event) if hit is not None else (limit, step.on_timeout)
        elif isinstance(step, BranchStep):
            current = step.otherwise
            for case in step.cases:
                if all(_holds(c.op, ctx.get(c.var), c.value) for c in case.when):
                    current = case.next
                    break
        else:
            current = getattr(step, "next", None)
    return count


def _holds(op: str, value: Any, target: Any) -> bool:
    """The ops the ARC definition uses, evaluated independently of the engine."""
    if op == "missing":
        return value is None
    if value is None:
        return False
    if op == "eq":
        return bool(value == target)
    if op == "ge":
        return bool(value >= target)
    raise ValueError(f"the bench walker does not know op {op!r}")


def _customers(engine: Engine, n: int, prefix: str) -> list[str]:
    """Insert ``n`` consenting customers in bulk; return their ids."""
    ids = [f"{prefix}{i:07d}" for i in range(n)]
    rows = [{"id": cid, "phone_hash": f"h{cid}", "phone_enc": "enc", "created_at": START,
             "consent_marketing_sms": True, "consent_marketing_push": True,
             "consent_marketing_call": True, "consent_analytics": False} for cid in ids]
    with Session(engine) as s:
        for i in range(0, n, 20_000):
            s.execute(insert(Customer), rows[i:i + 20_000])
        s.commit()
    return ids


def run_arc_bench(
    n: int, seed: int, out_dir: Path, database_url: str | None = None
) -> dict[str, Any]:
    """Run the benchmark and write ``arc.json``; return the result.

    SQLite runs as ``storewave hub serve`` runs it (WAL, ``synchronous=NORMAL``, WAL
    checkpoints in a thread of their own). On PostgreSQL the run's customers get ids no
    earlier run used, and everything the run wrote is deleted afterwards.
    """
    run_tag = secrets.token_hex(3)
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'arc_bench.sqlite3'}"
        engine = make_engine(url)
        migrate(engine)
        definitions.forget_cache()
        checkpointer = WalCheckpointer(engine).start()
        prefixes = (f"cus_s{run_tag}_", f"cus_b{run_tag}_")
        with Session(engine) as s:
            definition_id = journeys.publish(s, ARC_JOURNEY, START).id
            s.commit()
        try:
            result = _run(engine, n, seed, prefixes)
        finally:
            checkpointer.stop()
            if database_url:
                _clean_up(engine, prefixes, definition_id)
            engine.dispose()
    result["database"] = "postgresql" if database_url else "sqlite"
    result["wal_checkpointer"] = checkpointer.enabled
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "arc.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _clean_up(engine: Engine, prefixes: tuple[str, ...], definition_id: int | None) -> None:
    """Delete what a run wrote: step timers, customers (the rest cascades), its definition."""
    # A step timer's key is "<instance>:<step>...": the part before the first colon.
    instance = ("split_part(key, ':', 1)" if engine.dialect.name == "postgresql" else
                "substr(key, 1, instr(key, ':') - 1)")
    with Session(engine) as s:
        for prefix in prefixes:
            like = {"like": prefix.replace("_", r"\_") + "%"}
            s.execute(text(
                f"DELETE FROM timer WHERE kind = :kind AND {instance} IN "
                "(SELECT id FROM journey_instance WHERE customer_id LIKE :like ESCAPE '\\')"),
                {"kind": journeys.STEP_TIMER, **like})
            s.execute(text("DELETE FROM customer WHERE id LIKE :like ESCAPE '\\'"), like)
        s.execute(text("DELETE FROM journey_definition WHERE id = :id AND NOT EXISTS "
                       "(SELECT 1 FROM journey_instance i WHERE i.definition_id = :id)"),
                  {"id": definition_id})
        s.commit()


def _run(engine: Engine, n: int, seed: int, prefixes: tuple[str, str]) -> dict[str, Any]:
    """The one-at-a-time baseline on a sample, then the set-based run on all N."""
    spec = journeys.parse_spec(ARC_JOURNEY)
    load_before = os.getloadavg()
    m = min(BASELINE_MAX, max(BASELINE_MIN, int(n * BASELINE_SHARE)))
    base = _trial_month(engine, spec, m, seed + 1, prefixes[0], one_at_a_time=True)
    cand = _trial_month(engine, spec, n, seed, prefixes[1], one_at_a_time=False)
    total_s = cand["enrol_s"] + cand["advance_s"]
    base_ms = 1000 * (base["enrol_cpu_s"] + base["advance_cpu_s"]) / m
    cand_ms = 1000 * (cand["enrol_cpu_s"] + cand["advance_cpu_s"]) / n
    result = {
        "instances": n, "seed": seed, "horizon_days": HORIZON_DAYS, **cand,
        "total_s": round(total_s, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        # Wall figures are only as good as the machine was quiet: 1/5/15-min loads at start.
        "load_average_at_start": [round(x, 2) for x in load_before],
        "target_s": 60.0, "within_target": total_s < 60.0,
        "instances_per_s": round(n / total_s, 1),
        "cpu_ms_per_instance": round(cand_ms, 3),
        "baseline_one_at_a_time": {"instances": m, **base,
                                   "cpu_ms_per_instance": round(base_ms, 3)},
        "speedup_cpu_vs_one_at_a_time": round(base_ms / cand_ms, 1) if cand_ms else None,
    }
    log.info("arc bench done", extra={"instances": n, "total_s": result["total_s"]})
    return result


def _trial_month(engine: Engine, spec: JourneySpec, n: int, seed: int, prefix: str, *,
                 one_at_a_time: bool) -> dict[str, Any]:
    """Enrol ``n`` customers, run the 31 days, count messages; times and counts."""
    clock = ManualClock(START)
    people = behaviours(n, seed)
    ids = _customers(engine, n, prefix)
    ctx = {"service_name": "Video data pack", "price_yuan": "3", "bundle_offer": "Bundle",
           "service_id": "video-pack", "started_at": START.isoformat(),
           "ends_at": (START + timedelta(days=TRIAL_DAYS)).isoformat(), "ends_date": "2026-12-30"}
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    for i in range(0, n, ENROL_CHUNK):
        with Session(engine) as s:
            chunk = ids[i:i + ENROL_CHUNK]
            if one_at_a_time:
                for cid in chunk:
                    journeys.enrol(s, JOURNEY, cid, clock.now(), context=ctx)
            else:
                done = journeys.enrol_many(
                    s, JOURNEY, [journeys.Enrolment(cid, context=ctx) for cid in chunk],
                    clock.now())
                if not all(isinstance(r, str) for r in done):
                    raise RuntimeError("an enrolment failed")
            s.commit()
    enrol_s, enrol_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    enrol_main_s = time.thread_time() - m0
    # The simulated customers' events by (day, event), worked out before the clock starts:
    # the timed part measures the engine, not the simulation's bookkeeping.
    targets: dict[tuple[float, str], list[tuple[str, dict[str, Any]]]] = {}
    for cid, b in zip(ids, people, strict=True):
        for day, ev, payload in b.events():
            targets.setdefault((day, ev), []).append((cid, payload))
    schedule = sorted(targets)
    batch = 1 if one_at_a_time else None
    timer_runs = 0
    t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
    end = START + timedelta(days=HORIZON_DAYS)
    while clock.now() < end:
        nxt = min(end, clock.now() + CLOCK_STEP)
        for day, ev in schedule:
            at = START + timedelta(days=day)
            if clock.now() < at <= nxt:
                clock.set(at)
                timer_runs += timers.run_due(engine, clock, batch=batch)
                _deliver(engine, clock, targets[day, ev], ev, one_at_a_time)
        clock.set(nxt)
        timer_runs += timers.run_due(engine, clock, batch=batch)
    advance_s, advance_cpu_s = time.perf_counter() - t1, time.process_time() - c1
    advance_main_s = time.thread_time() - m1
    mine = OutboxMessage.customer_id.startswith(  # type: ignore[union-attr]
        prefix, autoescape=True)
    with Session(engine) as s:
        sent = int(s.execute(select(func.count()).select_from(OutboxMessage).where(mine))
                   .scalar_one())
        dupes = int(s.execute(select(func.count()).select_from(
            select(OutboxMessage.dedupe_key).where(mine).group_by(OutboxMessage.dedupe_key)
            .having(func.count() > 1).subquery())).scalar_one())
    implied = sum(implied_messages(spec, b, HORIZON_DAYS) for b in people)
    return {
        "messages": sent, "messages_implied": implied, "duplicates": dupes,
        "timer_runs": timer_runs, "enrol_s": round(enrol_s, 2),
        "advance_s": round(advance_s, 2),
        # Wall time on a shared machine includes waiting for a core; CPU time does not.
        "enrol_cpu_s": round(enrol_cpu_s, 2), "advance_cpu_s": round(advance_cpu_s, 2),
        # Of that, the engine's own thread (the rest is the WAL checkpoint thread, which a
        # second core runs alongside): on a quiet machine, wall is about this plus I/O.
        "main_thread_cpu_s": round(enrol_main_s + advance_main_s, 2),
    }


def _deliver(engine: Engine, clock: ManualClock, targets: list[tuple[str, dict[str, Any]]],
             event: str, one_at_a_time: bool) -> None:
    """Deliver ``event`` to its (customer id, payload) targets, a chunk per transaction."""
    for i in range(0, len(targets), EVENT_CHUNK):
        with Session(engine) as s:
            chunk = targets[i:i + EVENT_CHUNK]
            if one_at_a_time:
                for cid, payload in chunk:
                    journeys.deliver_event(s, cid, event, clock.now(), payload,
                                           journey=JOURNEY)
            else:
                journeys.deliver_events(s, event, chunk, clock.now(), journey=JOURNEY)
            s.commit()
