"""The live-campaign index cache and the check-in's few statements, on SQLite and PostgreSQL.

The index is checked against ``campaign_index_version``, which database triggers change
on every campaign write except a budget; the store facts the rules read are cached and
dropped when this process writes a store. A paying check-in that hands its locked row
to the hook runs a fixed, small number of statements and never reads the customer again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, select, text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from sqlmodel import select as orm_select

from hub.app import create_app
from hub.clock import ManualClock
from hub.db import make_engine
from hub.models.campaigns import Campaign
from hub.models.checkins import Visit
from hub.models.coupons import Coupon, CouponEvent
from hub.models.customers import Customer
from hub.models.registry import Store
from hub.models.timers import Timer
from hub.services import coupons, points
from hub.services.campaigns import evaluation, facts, hooks, index
from storewave.settings import HubSettings
from tests.hub.campaigns.helpers import GULOU, customer, live_campaign, stores, template, visit

_CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
# What the check-in's first statement is: lock the customer, reading the audience columns.
_LOCK = (
    select(_CUSTOMER.c.id, *facts.AUDIENCE_COLUMNS)
    .where(_CUSTOMER.c.id == bindparam("cid"))
    .with_for_update(of=_CUSTOMER)
)


def _version(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT version FROM campaign_index_version WHERE id = 1")
        ).scalar()


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine runs inside the block (BEGIN/COMMIT not included)."""
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _check_in(engine: Engine, clock: ManualClock, cid: str, store: str = GULOU) -> list[str]:
    """A check-in's tail as the check-in service runs it; the granted campaign ids."""
    vid = visit(engine, cid, store, clock.now(), minutes=0)
    with Session(engine) as session:
        row = session.connection().execute(_LOCK, {"cid": cid}).one()
        held = session.get(Visit, vid)
        assert held is not None
        session.expunge(held)
        with _statements(engine) as seen:
            grants = hooks.on_checkin(
                session, clock.now(), cid, store, None, held, True, customer=row._mapping
            )
        session.commit()
    _check_in.seen = seen  # type: ignore[attr-defined]
    return [g.campaign_id for g in grants]


def test_index_version_changes_with_campaign_writes_but_not_budgets(
    engine: Engine, clock: ManualClock
) -> None:
    """Create, launch, pause (even written behind the services' back) change the version;
    taking budget does not (it would rebuild the index on every paid grant)."""
    stores(engine)
    before = _version(engine)
    cid = live_campaign(engine, clock, caps={"budget": 100})
    launched = _version(engine)
    assert launched != before
    with engine.begin() as conn:
        conn.execute(
            update(Campaign.__table__)  # type: ignore[attr-defined]
            .where(Campaign.__table__.c.id == cid)  # type: ignore[attr-defined]
            .values(budget_remaining=99)
        )
    assert _version(engine) == launched
    with engine.begin() as conn:  # another hub process pausing it: no ORM event here
        conn.execute(
            update(Campaign.__table__)  # type: ignore[attr-defined]
            .where(Campaign.__table__.c.id == cid)  # type: ignore[attr-defined]
            .values(state="paused", updated_at=clock.now() + timedelta(seconds=1))
        )
    assert _version(engine) not in (launched, None)


def test_a_change_by_another_process_is_seen_by_the_next_check_in(
    engine: Engine, clock: ManualClock
) -> None:
    """The cached index is checked by the check-in's own read: a campaign another process
    paused (a plain UPDATE, no ORM events here) stops granting at once."""
    stores(engine)
    customer(engine, clock, "c1")
    customer(engine, clock, "c2")
    cid = live_campaign(engine, clock)
    assert _check_in(engine, clock, "c1") == [cid]
    assert index.cached_for_tests(engine) is not None
    with engine.begin() as conn:
        conn.execute(
            update(Campaign.__table__)  # type: ignore[attr-defined]
            .where(Campaign.__table__.c.id == cid)  # type: ignore[attr-defined]
            .values(state="paused", updated_at=clock.now())
        )
    assert _check_in(engine, clock, "c2") == []


def test_the_hub_builds_the_index_as_it_starts(
    engine: Engine, clock: ManualClock, settings: HubSettings
) -> None:
    """The app builds the index of its database while it is made, not in the first
    check-in; any engine on that database finds it."""
    stores(engine)
    cid = live_campaign(engine, clock)
    index.forget()
    create_app(settings, clock=clock, engine=engine)
    built = index.cached_for_tests(engine)
    assert built is not None
    assert built.version == _version(engine) and [c.id for c in built.campaigns] == [cid]
    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        assert index.database_key(other) == index.database_key(engine) == str(engine.url)
        assert index.cached_for_tests(other) is built
    finally:
        other.dispose()
    customer(engine, clock, "c1")
    assert _check_in(engine, clock, "c1") == [cid]
    seen: list[str] = _check_in.seen  # type: ignore[attr-defined]
    # The index build's read of the live campaigns: not in the first check-in.
    assert not [sql for sql in seen if "ORDER BY campaign.priority DESC" in sql]
    assert seen  # (the statements were counted)


def test_store_facts_are_dropped_when_this_process_writes_a_store(
    engine: Engine, clock: ManualClock
) -> None:
    """A store moved to another time zone: the next evaluation reads the new one."""
    stores(engine)
    with Session(engine) as session:
        assert index.store_facts(session, GULOU, clock.now()).timezone == "Asia/Shanghai"  # type: ignore[union-attr]
        store = session.get(Store, GULOU)
        assert store is not None
        store.timezone = "Asia/Tokyo"
        session.commit()
    with Session(engine) as session:
        assert index.store_facts(session, GULOU, clock.now()).timezone == "Asia/Tokyo"  # type: ignore[union-attr]
        assert index.store_facts(session, "no-such-store", clock.now()) is None


def test_a_paying_check_in_runs_few_statements_and_does_not_reread_the_customer(
    engine: Engine, clock: ManualClock
) -> None:
    """Points from two campaigns (one with a budget) and a coupon of a template without
    pool codes: SQLite one read, then one statement per table written (but the points
    expiry timer, which the read found there already); PostgreSQL one
    read (which also locks the budget rows) and one write. The customer's row, which the
    check-in locked and handed over, is neither read nor locked again."""
    stores(engine)
    for cid in ("c1", "c2"):
        customer(engine, clock, cid, gender="female")
    first = live_campaign(engine, clock, priority=3, caps={"budget": 100})
    second = live_campaign(engine, clock, priority=2, audience={"genders": ["female"]})
    reward = {"kind": "coupon", "coupon_template_id": template(engine, clock)}
    third = live_campaign(engine, clock, priority=1, reward=reward)
    assert _check_in(engine, clock, "c1") == [first, second, third]  # warms the caches
    clock.advance(timedelta(seconds=1))  # the store's facts are still cached
    assert _check_in(engine, clock, "c2") == [first, second, third]
    seen: list[str] = _check_in.seen  # type: ignore[attr-defined]
    assert not [s for s in seen if "FROM customer" in s], seen
    if engine.dialect.name == "postgresql":
        assert len(seen) == 2, seen  # read and lock the budget, write everything
    else:
        # read, budget, coupon, its timer, its audit line, account, ledger, grants (the
        # points expiry timer of the day exists since c1's check-in: the read saw it)
        assert len(seen) == 8, seen
    with Session(engine) as session:
        coupon = session.exec(orm_select(Coupon).where(Coupon.customer_id == "c2")).one()
        assert (coupon.campaign_id, coupon.state, coupon.expires_at) == (
            third,
            "issued",
            clock.now() + timedelta(days=14),
        )
        audit = session.exec(
            orm_select(CouponEvent).where(CouponEvent.coupon_id == coupon.id)
        ).one()
        assert (audit.action, audit.detail, audit.at) == (
            "issued",
            {"campaign": third},
            clock.now(),
        )
        expiry = session.exec(orm_select(Timer).where(Timer.key == coupon.id)).one()
        assert (expiry.kind, expiry.due_at, expiry.payload) == (
            coupons.EXPIRE_TIMER,
            coupon.expires_at,
            {},
        )
        assert points.balance(session, "c2") == 20 == points.ledger_sum(session, "c2")
        # Times are stored as the ORM stores them (SQLite: text, compared as text).
        stored = (
            session.connection()
            .execute(
                text(
                    "SELECT g.at, e.expires_at FROM campaign_grant g JOIN points_entry e "
                    "ON e.campaign_id = g.campaign_id AND e.customer_id = g.customer_id "
                    "WHERE g.customer_id = 'c2' AND g.campaign_id = :c"
                ),
                {"c": first},
            )
            .one()
        )
        expected = (clock.now(), clock.now() + evaluation.POINTS_VALIDITY)
        if engine.dialect.name == "sqlite":
            assert tuple(stored) == tuple(
                t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for t in expected
            )
        else:
            assert tuple(stored) == expected
        # Two grants of 10 points from a budget of 100 points.
        assert session.get(Campaign, first).budget_remaining == 80  # type: ignore[union-attr]


@pytest.mark.parametrize("backend_engine", ["postgresql"], indirect=True)
def test_the_check_in_read_locks_the_budget_rows_on_postgresql(
    engine: Engine, clock: ManualClock
) -> None:
    """PostgreSQL: the check-in's one read locks the budget rows of its candidates (there
    is no separate lock statement): another transaction cannot lock them until the
    check-in ends. (SQLite: the transaction holds the database's write lock.)"""
    stores(engine)
    customer(engine, clock, "c1")
    customer(engine, clock, "c2")
    budgeted = live_campaign(engine, clock, caps={"budget": 100})
    assert _check_in(engine, clock, "c1") == [budgeted]  # the index is cached now
    vid = visit(engine, "c2", GULOU, clock.now(), minutes=0)
    lock = text("SELECT id FROM campaign WHERE id = :id FOR UPDATE NOWAIT")
    with Session(engine) as session:
        row = session.connection().execute(_LOCK, {"cid": "c2"}).one()
        held = session.get(Visit, vid)
        assert held is not None
        grants = hooks.on_checkin(
            session, clock.now(), "c2", GULOU, None, held, True, customer=row._mapping
        )
        assert [g.campaign_id for g in grants] == [budgeted]
        with engine.connect() as other, pytest.raises(OperationalError):
            other.execute(lock, {"id": budgeted})
        session.commit()
    with engine.connect() as other:
        assert other.execute(lock, {"id": budgeted}).scalar() == budgeted


def _coupon_of(engine: Engine, cid: str) -> Coupon:
    with Session(engine) as session:
        return session.exec(orm_select(Coupon).where(Coupon.customer_id == cid)).one()


def test_the_pool_is_looked_at_only_while_the_template_has_pool_codes(
    engine: Engine, clock: ManualClock
) -> None:
    """No pool codes: a coupon grant makes a new code without a look at the pool. A pool
    code added (behind the services' back: a plain insert) changes the index version; the
    next grant takes it in one statement; the grant that finds the pool empty changes the
    version again, and the next one no longer looks."""
    stores(engine)
    for cid in ("c1", "c2", "c3", "c4"):
        customer(engine, clock, cid)
    tpl = template(engine, clock)
    live_campaign(engine, clock, reward={"kind": "coupon", "coupon_template_id": tpl})

    def pool_claims() -> list[str]:
        seen: list[str] = _check_in.seen  # type: ignore[attr-defined]
        return [s for s in seen if s.startswith("UPDATE coupon SET")]

    _check_in(engine, clock, "c1")
    assert pool_claims() == []
    before = _version(engine)
    with engine.begin() as conn:
        conn.execute(
            Coupon.__table__.insert().values(  # type: ignore[attr-defined]
                id="cpn_pool1", code="POOL-0001", template_id=tpl, state="pool", version=1
            )
        )
    assert _version(engine) != before
    _check_in(engine, clock, "c2")
    assert len(pool_claims()) == 1
    assert _coupon_of(engine, "c2").code == "POOL-0001"
    dry = _version(engine)
    _check_in(engine, clock, "c3")
    assert len(pool_claims()) == 1  # looked, found none
    assert _coupon_of(engine, "c3").code != "POOL-0001"
    assert _version(engine) != dry
    _check_in(engine, clock, "c4")
    assert pool_claims() == []
    assert _coupon_of(engine, "c4").state == "issued"


@pytest.mark.parametrize("backend_engine", ["postgresql"], indirect=True)
def test_pool_codes_another_transaction_holds_do_not_end_the_pool(
    engine: Engine, clock: ManualClock
) -> None:
    """PostgreSQL: while another transaction holds the last pool code (it may roll back),
    a grant passes it by (SKIP LOCKED) and makes a new code, but the index keeps the pool
    (no new version): once the holder rolls back, the next grant takes that code."""
    stores(engine)
    for cid in ("c2", "c3"):
        customer(engine, clock, cid)
    tpl = template(engine, clock)
    live_campaign(engine, clock, reward={"kind": "coupon", "coupon_template_id": tpl})
    with engine.begin() as conn:
        conn.execute(
            Coupon.__table__.insert().values(  # type: ignore[attr-defined]
                id="cpn_pool1", code="POOL-0001", template_id=tpl, state="pool", version=1
            )
        )
    holder = engine.connect()
    try:
        holder.begin()
        holder.execute(text("SELECT id FROM coupon WHERE id = 'cpn_pool1' FOR UPDATE"))
        held = _version(engine)
        _check_in(engine, clock, "c2")
        assert len([s for s in _check_in.seen if s.startswith("UPDATE coupon SET")]) == 1  # type: ignore[attr-defined]
        assert _coupon_of(engine, "c2").code != "POOL-0001"
        assert _version(engine) == held  # the pool is not given up
        holder.rollback()
    finally:
        holder.close()
    _check_in(engine, clock, "c3")
    assert _coupon_of(engine, "c3").code == "POOL-0001"
