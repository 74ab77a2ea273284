"""Batch paths give the single paths' outcome: a burst of orders, SLA deadlines many at once.

Each test runs the same world twice on one database (emptied in between): once one order
(or one timer) per transaction, once as a burst, and compares every stored row with the
order ids replaced by their client keys. Concurrent sweeps must handle each deadline once.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.customers import OutboxMessage
from hub.models.oao import (
    OaoDispatch,
    OaoOrder,
    OaoRegionPolicy,
    OaoStoreProfile,
    OaoTransition,
    OrderCreate,
)
from hub.models.registry import Alert
from hub.models.timers import Timer
from hub.services.auth import Principal
from hub.services.errors import Conflict, NotFound
from hub.services.oao import orders
from hub.services.oao import sla as _sla  # noqa: F401  (registers the SLA handlers)
from hub.services.oao.geo import SphereIndex
from hub.services.timers import run_due
from tests.hub.conftest import START, empty_tables
from tests.hub.factories import seed
from tests.hub.oao.helpers import NEAR_GULOU, order_body

ADMIN = Principal(role=Role.ADMIN, key_id="key_admin")
PAST_BOTH_DEADLINES = timedelta(minutes=46)  # default normal SLA: 30 + 15 minutes
JOIN_TIMEOUT_S = 120.0
ORDER_ID = re.compile(r"ord_[0-9a-f]{32}")


def _world(engine: Engine, clock: ManualClock) -> None:
    """The seeded registry with small store capacities, so loads decide where orders go."""
    seed(engine, clock)
    with Session(engine) as session:
        for store, capacity in (("fz-gulou", 2), ("fz-taijiang", 3), ("fz-cangshan", 2)):
            skills = ["sim_card", "device", "plan_change"]
            if store != "fz-taijiang":
                skills.append("broadband_install")
            session.add(OaoStoreProfile(store_id=store, skills=skills, order_capacity=capacity))
        session.add(
            OaoRegionPolicy(
                region_id="fz",
                mode="directed",
                hop_limit=2,
                channel_rules={"enterprise_chat": ["fz-cangshan"]},
            )
        )
        session.commit()


def _specs(clock: ManualClock, n: int) -> list[OrderCreate]:
    """``n`` orders around Gulou: mixed products and channels, one directed order."""
    products = ["sim_card", "broadband_install", "device", "plan_change"]
    channels = ["official_account", "app", "enterprise_chat", "web_hall"]
    specs = []
    for i in range(n):
        extra: dict[str, Any] = {}
        if i == 3:
            extra["directed_store_id"] = "fz-taijiang"
        specs.append(
            OrderCreate.model_validate(
                order_body(
                    clock,
                    client_order_key=f"batch-{i:03d}",
                    product=products[i % 4],
                    channel=channels[i % 3 if i % 5 else 2],
                    priority="urgent" if i % 4 == 1 else "normal",
                    latitude=NEAR_GULOU[0] + 0.002 * (i % 7),
                    longitude=NEAR_GULOU[1] - 0.003 * (i % 5),
                    **extra,
                )
            )
        )
    return specs


def _snapshot(engine: Engine) -> dict[str, Any]:
    """Every OAO row, timers, alerts and outbox, ids replaced by client keys, sorted."""
    with Session(engine) as session:
        keys = {o.id: o.client_order_key for o in session.exec(select(OaoOrder)).all()}

        def named(text: Any) -> Any:
            if isinstance(text, str):
                return ORDER_ID.sub(lambda m: keys.get(m.group(0), "?"), text)
            if isinstance(text, dict | list):
                return json.loads(named(json.dumps(text, sort_keys=True)))
            return text

        def rows(model: Any, fields: tuple[str, ...], order_by: Any) -> list[tuple[Any, ...]]:
            found = session.exec(select(model).order_by(order_by)).all()
            return [tuple(named(getattr(r, f)) for f in fields) for r in found]

        snap = {
            "orders": sorted(
                rows(
                    OaoOrder,
                    ("id", "status", "store_id", "hops", "escalation_reason", "dispatched_at"),
                    col(OaoOrder.client_order_key),
                )
            ),
            # Per order in write order (a burst interleaves orders' rows differently).
            "dispatches": sorted(
                rows(
                    OaoDispatch,
                    (
                        "order_id",
                        "hop",
                        "store_id",
                        "policy",
                        "reason",
                        "candidates",
                        "outcome",
                        "outcome_reason",
                        "reminded_at",
                        "outcome_at",
                    ),
                    col(OaoDispatch.id),
                ),
                key=lambda r: (r[0], r[1]),
            ),
            "transitions": _stable_by_order(
                rows(
                    OaoTransition,
                    ("order_id", "from_status", "to_status", "actor", "reason", "at"),
                    col(OaoTransition.id),
                )
            ),
            "timers": sorted(
                rows(Timer, ("kind", "key", "due_at", "payload", "state"), col(Timer.id))
            ),
            "alerts": sorted(rows(Alert, ("kind", "store_id", "detail"), col(Alert.id))),
            "outbox": sorted(
                rows(
                    OutboxMessage,
                    ("channel", "recipient_enc", "body", "dedupe_key"),
                    col(OutboxMessage.id),
                )
            ),
        }
    return snap


def _stable_by_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows grouped by order (first field), each order's rows in their written order."""
    return sorted(rows, key=lambda r: r[0])  # sorted() is stable


def _one_by_one(engine: Engine, clock: ManualClock, specs: list[OrderCreate]) -> None:
    for spec in specs:
        with Session(engine) as session:
            orders.create_order(session, ADMIN, spec, clock.now())
            session.commit()


def _burst(engine: Engine, clock: ManualClock, specs: list[OrderCreate]) -> list[tuple[str, bool]]:
    with Session(engine) as session:
        result = orders.create_orders(session, ADMIN, specs, clock.now())
        session.commit()
    return result


def _twice(
    engine: Engine,
    single: Callable[[ManualClock], object],
    batch: Callable[[ManualClock], object],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Snapshots of the same world after ``single`` and (fresh tables, clock) after ``batch``."""
    snaps = []
    for run in (single, batch):
        empty_tables(engine)
        clock = ManualClock(START)
        _world(engine, clock)
        run(clock)
        snaps.append(_snapshot(engine))
    return snaps[0], snaps[1]


def test_a_burst_of_orders_is_dispatched_as_one_by_one(engine: Engine, clock: ManualClock) -> None:
    """create_orders == create_order per order: same stores (loads fill up), rows, timers."""
    specs = _specs(clock, 14)
    single, burst = _twice(
        engine,
        lambda c: _one_by_one(engine, c, specs),
        lambda c: _burst(engine, c, specs),
    )
    assert single == burst
    statuses = {status for _, status, *_ in burst["orders"]}
    stores = {store for _, _, store, *_ in burst["orders"]}
    # The world is small enough that capacity sends orders on and some cannot be placed.
    assert statuses == {"dispatched", "escalated"}
    assert {"fz-gulou", "fz-taijiang", "fz-cangshan"} <= stores
    assert len(burst["timers"]) == 2 * sum(1 for o in burst["orders"] if o[1] == "dispatched")
    assert any(d[3] == "channel_rule" for d in burst["dispatches"])
    assert any(d[3] == "directed" for d in burst["dispatches"])


def test_a_burst_resent_returns_the_first_orders_and_a_bad_one_writes_nothing(
    engine: Engine, clock: ManualClock
) -> None:
    """Keys already stored or repeated in the burst are retries; a bad spec fails the lot."""
    _world(engine, clock)
    specs = _specs(clock, 4)
    first = _burst(engine, clock, specs[:2])
    again = _burst(engine, clock, [specs[1], specs[2], specs[2], specs[3]])
    assert again[0] == (first[1][0], False)
    assert again[1][1] is True and again[2] == (again[1][0], False) and again[3][1] is True
    before = _snapshot(engine)
    reused = specs[0].model_copy(update={"product": "device"})
    with pytest.raises(Conflict) as conflict:
        _burst(engine, clock, [_specs(clock, 6)[5], reused])
    assert conflict.value.code == "client_key_reused"
    assert str(conflict.value).startswith("order 1 (batch-000): client_order_key")
    elsewhere = _specs(clock, 7)[6].model_copy(update={"region_id": "nowhere"})
    with pytest.raises(NotFound, match=r"order 1 \(batch-006\): region 'nowhere' not found"):
        _burst(engine, clock, [_specs(clock, 6)[5], elsewhere])
    assert _snapshot(engine) == before


def _sweep_steps(engine: Engine, clock: ManualClock, batch: int | None) -> None:
    """A burst of orders, then sweeps past every deadline until the hop limit."""
    _burst(engine, clock, _specs(clock, 12))
    for _ in range(3):
        clock.advance(PAST_BOTH_DEADLINES)
        run_due(engine, clock, batch=batch)


def test_sla_deadlines_in_one_batch_as_one_timer_per_transaction(
    engine: Engine, clock: ManualClock
) -> None:
    """Reminders, time-outs, re-dispatch, escalation: the same rows either way."""
    single, batched = _twice(
        engine,
        lambda c: _sweep_steps(engine, c, batch=1),
        lambda c: _sweep_steps(engine, c, batch=None),
    )
    assert single == batched
    outcomes = {d[6] for d in batched["dispatches"]}
    assert "timed_out" in outcomes
    # Every offer that timed out was reminded first (a late sweep found both deadlines due).
    assert all(d[8] is not None for d in batched["dispatches"] if d[6] == "timed_out")
    assert {o[1] for o in batched["orders"]} == {"escalated"}
    assert len(batched["outbox"]) == sum(1 for d in batched["dispatches"] if d[6] == "timed_out")


def test_concurrent_sweeps_handle_each_deadline_once(engine: Engine, clock: ManualClock) -> None:
    """Three sweeps at once, small batches: one reminder, one time-out, one move per offer."""
    _world(engine, clock)
    with Session(engine) as session:
        session.add(OaoRegionPolicy(region_id="xm"))  # defaults; fz is set by _world
        profile = session.get(OaoStoreProfile, "fz-taijiang")
        assert profile is not None
        profile.order_capacity = 100
        session.add(profile)
        session.commit()
    placed = _burst(engine, clock, _specs(clock, 30))
    clock.advance(PAST_BOTH_DEADLINES)
    barrier = threading.Barrier(3)
    ran: list[int] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        barrier.wait()
        try:
            ran.append(run_due(engine, clock, batch=7))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a sweep hung"
    assert errors == []
    snap = _snapshot(engine)
    first_offers = [d for d in snap["dispatches"] if d[1] == 1 and d[6] != "withdrawn"]
    assert sum(ran) == 2 * len(first_offers)
    assert len(first_offers) > 10 and len(snap["orders"]) == len(placed)
    for d in first_offers:
        assert d[6] == "timed_out" and d[8] is not None
    reminders = [m[3] for m in snap["outbox"]]
    assert sorted(reminders) == sorted(f"oao:remind:{d[0]}:1" for d in first_offers)
    timeouts = [a for a in snap["alerts"] if a[0] == "oao_timeout"]
    assert len(timeouts) == len(first_offers)
    moves = [t for t in snap["transitions"] if t[3] == "system:sla"]
    assert sorted(t[0] for t in moves) == sorted(d[0] for d in first_offers)
    with Session(engine) as session:
        states = {t.state for t in session.exec(select(Timer)).all() if t.key.endswith(":1")}
    assert states == {"done"}


def test_primed_nearest_answers_equal_one_by_one_answers() -> None:
    """A burst's vectorised k-d tree query gives each order exactly its own query's answer."""
    rng = np.random.default_rng(7)
    lats, lons = rng.uniform(24.0, 27.5, 300).tolist(), rng.uniform(117.0, 120.5, 300).tolist()
    qlat, qlon = rng.uniform(24.0, 27.5, 200).tolist(), rng.uniform(117.0, 120.5, 200).tolist()
    single = SphereIndex(lats, lons)
    primed = SphereIndex(lats, lons)
    primed.prime(qlat, qlon, 8, 60.0)
    for lat, lon in zip(qlat, qlon, strict=True):
        assert (lat, lon, 8, 60.0) in primed._primed
        assert primed.nearest(lat, lon, 8, 60.0) == single.nearest(lat, lon, 8, 60.0)
    assert primed._primed == {}  # each answer used once
    # Few stores within reach: the misses beyond the bound are dropped alike.
    primed.prime(qlat, qlon, 8, 12.0)
    short = [single.nearest(lat, lon, 8, 12.0) for lat, lon in zip(qlat, qlon, strict=True)]
    assert any(len(km) < 8 for km, _ in short)
    assert [primed.nearest(lat, lon, 8, 12.0) for lat, lon in zip(qlat, qlon, strict=True)] == short
