"""Benchmark: latency campaign evaluation adds to a check-in with 200 live campaigns.

Each sample is the tail of one check-in's transaction as the check-in runs it: with the
customer's row locked (untimed, the check-in's first step; its lock statement reads the
columns the rules need and hands them to the hook), the visit is inserted, the campaign
hook evaluates, and the transaction commits. The baseline is the same with no live
campaign, measured in the same run with the samples interleaved, so the difference is
what campaigns add to a check-in (a check-in commits its visit anyway: the commit's
fixed cost, an fsync on PostgreSQL, is in both). "loaded" is a store where ~6 campaigns
fire and up to 3 grants (points) are paid; "loaded_coupons" the same with the store's
first-visit campaigns giving coupons (new codes, their expiry timers and audit lines);
"loaded_no_match" is a store none of the 200 campaigns targets (the cost of the rules
alone). The target is met when both paying conditions stay within it. SQLite (a file,
WAL) always; PostgreSQL too with ``--pg-url``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import bindparam, create_engine, event, make_url, select, text
from sqlmodel import Session

from hub.clock import ManualClock
from hub.db import WalCheckpointer, make_engine, migrate
from hub.models.auth import Role
from hub.models.campaigns import CampaignCreate, Transition
from hub.models.checkins import Visit
from hub.models.coupons import CouponTemplateCreate
from hub.models.customers import Customer
from hub.models.registry import Region, Store
from hub.services.auth import Principal
from hub.services.campaigns import facts, hooks, lifecycle
from hub.services.coupon_templates import create_template

log = logging.getLogger(__name__)

LIVE_CAMPAIGNS = 200  # the load
TARGET_P99_MS = 5.0  # the bar for the added latency
# A Monday 11:00 in Shanghai: inside every benchmark campaign's hours.
START = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
_AUTHOR = Principal(role=Role.ADMIN, key_id="bench-author")
_APPROVER = Principal(role=Role.ADMIN, key_id="bench-approver")
_STORES = 20
# A store no campaign targets: what 200 live campaigns cost a check-in that pays nothing.
QUIET_STORE = "s-quiet"
# The check-in's first statement: lock the customer, reading what the campaign rules need.
_CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
_LOCK = (
    select(_CUSTOMER.c.id, *facts.AUDIENCE_COLUMNS)
    .where(_CUSTOMER.c.id == bindparam("cid"))
    .with_for_update(of=_CUSTOMER)
)


def _campaign_spec(i: int, coupon_template: str | None = None) -> dict[str, Any]:
    """A mix: 10 campaigns per store, every trigger, audiences, caps and budgets.

    With ``coupon_template``, every other group of 20 (among them the first-visit
    campaigns of each store) gives a coupon of that template instead of points.
    """
    trigger = ("checkin", "first_visit", "return_after_days", "dwell")[(i // _STORES) % 4]
    spec: dict[str, Any] = {
        "name": f"bench {i}",
        "trigger": trigger,
        "reward": {"kind": "points", "points": 5},
        "where": {"stores": [f"s{i % _STORES}"]},
        "priority": i % 7,
        "caps": {"per_customer_per_day": 1, "budget": 1_000_000},
        "audience": ({}, {"genders": ["female"]}, {"age_bands": ["25-34"]}, {"consents": ["push"]})[
            (i // _STORES) % 3
        ],
    }
    if coupon_template is not None and (i // _STORES) % 2 == 1:
        spec["reward"] = {"kind": "coupon", "coupon_template_id": coupon_template}
    if trigger in ("return_after_days", "dwell"):
        spec["trigger_param"] = 7 if trigger == "return_after_days" else 15
    return spec


def _world(url: str, clock: ManualClock, campaigns: int, with_coupons: bool = False) -> Any:
    """A migrated database with stores and ``campaigns`` live campaigns (``with_coupons``:
    some of them give coupons, see ``_campaign_spec``)."""
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        session.add(Region(id="r", name="r"))
        session.flush()
        for sid in [f"s{s}" for s in range(_STORES)] + [QUIET_STORE]:
            session.add(Store(id=sid, region_id="r", name="s", latitude=0, longitude=0))
        session.flush()
        coupon_template = None
        if with_coupons:
            spec = {"name": "10% off", "kind": "percent", "value": 10, "valid_days": 14}
            coupon_template = create_template(
                session, _AUTHOR, CouponTemplateCreate.model_validate(spec), clock.now()
            ).id
        for i in range(campaigns):
            body = CampaignCreate.model_validate(_campaign_spec(i, coupon_template))
            c = lifecycle.create(session, _AUTHOR, body, clock.now())
            session.flush()
            lifecycle.transition(session, _APPROVER, c.id, Transition.APPROVE, clock.now())
            lifecycle.transition(session, _AUTHOR, c.id, Transition.LAUNCH, clock.now())
        session.commit()
    return engine


def _one(
    engine: Any, clock: ManualClock, cid: str, n: int, store: str, on_locked: Any = None
) -> tuple[float, float, int]:
    """Wall and CPU milliseconds of one fresh customer's check-in tail (visit, hook, commit),
    and how many grants it paid.

    The CPU time (this thread's) shows what the step costs when the machine is not
    shared: the wall time on a busy machine also counts waiting for a core.
    """
    with Session(engine) as session:
        session.add(
            Customer(
                id=cid,
                phone_hash=cid,
                phone_enc="x",
                created_at=clock.now(),
                gender=("female", "male")[n % 2],
                age_band=("25-34", "35-44", "18-24")[n % 3],
                consent_marketing_push=n % 2 == 0,
            )
        )
        session.commit()
        # Where the check-in stands before its visit: its own transaction, the customer's
        # row locked and held by the check-in's lock statement, which also reads the
        # columns the campaign rules need and hands them to the hook.
        customer = session.connection().execute(_LOCK, {"cid": cid}).one()
        if on_locked is not None:
            on_locked()
        t0, c0 = time.perf_counter(), time.thread_time()
        visit = Visit(
            id=f"vis_{cid}",
            customer_id=cid,
            store_id=store,
            started_at=clock.now(),
            last_seen_at=clock.now(),
        )
        session.add(visit)
        session.flush()
        grants = hooks.on_checkin(
            session, clock.now(), cid, store, None, visit, True, customer=customer._mapping
        )
        session.commit()
        wall, cpu = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
    clock.advance(timedelta(seconds=1))
    return wall, cpu, len(grants)


def _samples(
    engine: Any, clock: ManualClock, n: int, first: int = 0, store: str = "s0"
) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU milliseconds of ``n`` fresh customers' check-in tails (``_one``)."""
    out = np.empty(n)
    cpu = np.empty(n)
    for i in range(n):
        out[i], cpu[i], _ = _one(engine, clock, f"cus_{first + i}", i, store)
    return out, cpu


# Untimed samples per condition that count the statements a check-in tail runs.
_COUNTED_SAMPLES = 20


def _statements_per_sample(engine: Any, clock: ManualClock, store: str, first: int) -> float:
    """Mean statements one check-in tail (visit, hook; not its BEGIN or COMMIT) runs."""
    seen: list[str] = []
    counting = [False]

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if counting[0] and not statement.startswith("BEGIN"):
            seen.append(statement)

    def start(*_args: Any) -> None:
        counting[0] = True

    event.listen(engine, "before_cursor_execute", record)
    try:
        for i in range(_COUNTED_SAMPLES):
            _one(engine, clock, f"cus_count_{first + i}", i, store, on_locked=start)
            counting[0] = False
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return round(len(seen) / _COUNTED_SAMPLES, 2)


def _pg_database(base_url: str, name: str) -> str:
    """A fresh, empty PostgreSQL database ``name`` on ``base_url``'s server."""
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(base_url: str, name: str) -> None:
    """Remove a database ``_pg_database`` made."""
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _run_conditions(samples: int, url_for: Any) -> dict[str, Any]:
    """The four conditions, each on its own fresh database from ``url_for(label)``.

    Their samples are interleaved (one of each in turn, the order rotating), so a busy
    spell of the machine falls on all three alike rather than on one condition.
    """
    conditions = (
        ("baseline", 0, "s0", False),
        ("loaded", LIVE_CAMPAIGNS, "s0", False),
        ("loaded_coupons", LIVE_CAMPAIGNS, "s0", True),
        ("loaded_no_match", LIVE_CAMPAIGNS, QUIET_STORE, False),
    )
    worlds = []
    checkpointers = []
    try:
        for label, count, store, with_coupons in conditions:
            clock = ManualClock(START)
            engine = _world(url_for(label), clock, count, with_coupons)
            worlds.append((label, store, clock, engine))
            # As `storewave hub serve` runs it: SQLite's WAL checkpoints off the commits.
            checkpointers.append(WalCheckpointer(engine).start())
        for _, store, clock, engine in worlds:
            _samples(engine, clock, min(50, samples), store=store)  # warm caches, tz database
        ms = {label: np.empty(samples) for label, *_ in worlds}
        cpu = {label: np.empty(samples) for label, *_ in worlds}
        paid = {label: np.empty(samples) for label, *_ in worlds}
        for i in range(samples):
            for k in range(len(worlds)):
                label, store, clock, engine = worlds[(i + k) % len(worlds)]
                ms[label][i], cpu[label][i], paid[label][i] = _one(
                    engine, clock, f"cus_{samples + i}", i, store
                )
        # Statements per check-in tail (BEGIN/COMMIT not counted), from a few more
        # samples outside the timed ones (a listener on every statement costs time).
        statements = {
            label: _statements_per_sample(engine, clock, store, samples)
            for label, store, clock, engine in worlds
        }
    finally:
        for checkpointer in checkpointers:
            checkpointer.stop()
        for *_, engine in worlds:
            engine.dispose()
    figures: dict[str, Any] = {}
    for label, store, *_ in worlds:
        figures[label] = {
            "store": store,
            "statements_per_checkin": statements[label],
            "p50_ms": round(float(np.percentile(ms[label], 50)), 3),
            "p99_ms": round(float(np.percentile(ms[label], 99)), 3),
            "mean_ms": round(float(ms[label].mean()), 3),
            "cpu_p50_ms": round(float(np.percentile(cpu[label], 50)), 3),
            "cpu_p99_ms": round(float(np.percentile(cpu[label], 99)), 3),
            "grants_per_checkin": round(float(paid[label].mean()), 2),
        }
    figures["added_p99_ms"] = round(figures["loaded"]["p99_ms"] - figures["baseline"]["p99_ms"], 3)
    figures["added_p50_ms"] = round(figures["loaded"]["p50_ms"] - figures["baseline"]["p50_ms"], 3)
    figures["ratio_p99_to_baseline"] = round(
        figures["loaded"]["p99_ms"] / max(figures["baseline"]["p99_ms"], 1e-9), 2
    )
    figures["added_cpu_p99_ms"] = round(
        figures["loaded"]["cpu_p99_ms"] - figures["baseline"]["cpu_p99_ms"], 3
    )
    figures["added_cpu_p50_ms"] = round(
        figures["loaded"]["cpu_p50_ms"] - figures["baseline"]["cpu_p50_ms"], 3
    )
    figures["added_p99_ms_coupons"] = round(
        figures["loaded_coupons"]["p99_ms"] - figures["baseline"]["p99_ms"], 3
    )
    figures["added_cpu_p99_ms_coupons"] = round(
        figures["loaded_coupons"]["cpu_p99_ms"] - figures["baseline"]["cpu_p99_ms"], 3
    )
    figures["added_p99_ms_no_match"] = round(
        figures["loaded_no_match"]["p99_ms"] - figures["baseline"]["p99_ms"], 3
    )
    # Met only if both paying mixes (points only; points and coupons) stay within it.
    figures["meets_target"] = (
        max(figures["added_p99_ms"], figures["added_p99_ms_coupons"]) <= TARGET_P99_MS
    )
    return figures


def run_campaigns_bench(samples: int, out_dir: Path, pg_url: str | None = None) -> dict[str, Any]:
    """Measure, print and write ``campaigns.json``; returns the figures.

    SQLite (a file, WAL) always; with ``pg_url`` the same four conditions again on
    fresh databases of that PostgreSQL server, under ``"postgresql"``.
    """
    figures: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "live_campaigns": LIVE_CAMPAIGNS,
        "samples": samples,
        "target_p99_ms": TARGET_P99_MS,
        "backend": "sqlite (file, WAL)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(_run_conditions(samples, lambda label: f"sqlite:///{tmp}/{label}.sqlite3"))
    if pg_url:
        names: list[str] = []

        def pg_for(label: str) -> str:
            names.append(f"sw_campaigns_bench_{label}_{os.getpid()}")
            return _pg_database(pg_url, names[-1])

        try:
            figures["postgresql"] = _run_conditions(samples, pg_for)
        finally:
            for name in names:
                _drop_pg_database(pg_url, name)
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "campaigns.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return figures
