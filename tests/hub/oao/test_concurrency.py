"""Accept-once under real concurrency: threads racing on SQLite and PostgreSQL, one winner."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.oao import OaoDispatch, OaoOrder, OaoTransition, OrderCreate
from hub.services.auth import Principal
from hub.services.errors import HubError
from hub.services.oao import actions, orders
from hub.services.oao import sla as _sla  # noqa: F401  (registers the SLA handlers)
from hub.services.timers import run_due
from tests.hub.factories import seed
from tests.hub.oao.helpers import order_body

ROUNDS = 6  # each round is a fresh order and a fresh race
JOIN_TIMEOUT_S = 60.0
ADMIN = Principal(role=Role.ADMIN, key_id="key_admin")


def _clerk(store: str, n: int) -> Principal:
    return Principal(role=Role.STORE_STAFF, store_id=store, key_id=f"key_{store}_{n}")


def _new_order(engine: Engine, clock: ManualClock) -> str:
    with Session(engine, expire_on_commit=False) as session:
        order, _ = orders.create_order(
            session, ADMIN, OrderCreate.model_validate(order_body(clock)), clock.now()
        )
        session.commit()
    return order.id


def _race(jobs: list[Callable[[], str]]) -> list[str]:
    """Start every job at once (barrier); return each one's outcome."""
    barrier = threading.Barrier(len(jobs))
    results: list[str] = ["unfinished"] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def _accept(engine: Engine, clock: ManualClock, principal: Principal, order_id: str) -> str:
    with Session(engine, expire_on_commit=False) as session:
        try:
            actions.accept(session, principal, order_id, clock.now())
            session.commit()
            return f"won:{principal.store_id or 'admin'}"
        except HubError as exc:
            session.rollback()
            return f"lost:{exc.code}"


def _winner_checks(engine: Engine, order_id: str) -> OaoOrder:
    """Exactly one acceptance in the audit trail and in the offers, matching the order."""
    with Session(engine) as session:
        order = session.get(OaoOrder, order_id)
        assert order is not None and order.status == "accepted"
        accepted = session.exec(
            select(OaoTransition).where(
                OaoTransition.order_id == order_id, OaoTransition.to_status == "accepted"
            )
        ).all()
        offers = session.exec(
            select(OaoDispatch).where(
                OaoDispatch.order_id == order_id, OaoDispatch.outcome == "accepted"
            )
        ).all()
    assert len(accepted) == 1 and len(offers) == 1
    assert offers[0].store_id == order.store_id
    return order


def test_clerks_and_admin_accepting_at_once_yield_one_winner(
    engine: Engine, clock: ManualClock
) -> None:
    """Three clerks of the offered store and an admin press accept together: one wins."""
    seed(engine, clock)
    for _ in range(ROUNDS):
        oid = _new_order(engine, clock)
        racers = [_clerk("fz-gulou", n) for n in range(3)] + [ADMIN]
        results = _race([lambda p=p, o=oid: _accept(engine, clock, p, o) for p in racers])
        assert sum(r.startswith("won") for r in results) == 1, results
        assert set(results) - {r for r in results if r.startswith("won")} == {
            "lost:already_accepted"
        }
        _winner_checks(engine, oid)


def test_old_store_accepting_during_redispatch_to_a_new_store(
    engine: Engine, clock: ManualClock
) -> None:
    """The timed-out store accepts while the sweep re-dispatches and the next store accepts.

    Either the late acceptance lands first (the sweep then leaves the order alone) or the
    re-dispatch does (the new store may win, the old one is told its offer was withdrawn);
    never both.
    """
    seed(engine, clock)
    winners: set[str] = set()
    for _ in range(ROUNDS):
        oid = _new_order(engine, clock)
        clock.advance(timedelta(minutes=45))  # past the default 30 + 15 min deadlines

        def sweep_then_new_store_accepts(oid: str = oid) -> str:
            run_due(engine, clock)
            return _accept(engine, clock, _clerk("fz-taijiang", 0), oid)

        results = _race(
            [
                lambda oid=oid: _accept(engine, clock, _clerk("fz-gulou", 0), oid),
                sweep_then_new_store_accepts,
            ]
        )
        won = [r for r in results if r.startswith("won")]
        assert len(won) == 1, results
        assert all(
            r in ("lost:offer_withdrawn", "lost:not_found", "lost:already_accepted")
            for r in results
            if not r.startswith("won")
        ), results
        order = _winner_checks(engine, oid)
        assert won == [f"won:{order.store_id}"]
        winners.add(str(order.store_id))
    assert winners <= {"fz-gulou", "fz-taijiang"}


def test_same_client_key_sent_at_once_creates_one_order(engine: Engine, clock: ManualClock) -> None:
    """A channel retrying in parallel: four requests, one order, every caller gets its id."""
    seed(engine, clock)
    body = order_body(clock)

    def send() -> str:
        with Session(engine, expire_on_commit=False) as session:
            order, created = orders.create_order(
                session, ADMIN, OrderCreate.model_validate(body), clock.now()
            )
            session.commit()
            return f"{order.id}:{created}"

    results = _race([send] * 4)
    ids = {r.split(":")[0] for r in results}
    assert len(ids) == 1 and sum(r.endswith(":True") for r in results) == 1, results
    with Session(engine) as session:
        assert len(session.exec(select(OaoOrder)).all()) == 1
