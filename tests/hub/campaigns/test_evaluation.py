"""Evaluation on SQLite and PostgreSQL: every trigger, caps, budget, exclusivity, replays."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from hub.clock import ManualClock
from hub.models.campaigns import CampaignGrant
from hub.models.checkins import Visit
from hub.models.coupons import Coupon
from hub.models.customers import Customer
from hub.models.timers import Timer
from hub.services import coupons, points, timers
from hub.services.campaigns import evaluation, hooks
from hub.services.campaigns.rules import TriggerEvent
from tests.hub.campaigns.helpers import (
    GULOU,
    SIMING,
    TAIJIANG,
    campaign_row,
    customer,
    live_campaign,
    stores,
    template,
    visit,
)


@pytest.fixture
def world(engine: Engine, clock: ManualClock) -> Engine:
    """Stores and one customer ``c1`` (female, 25-34, postal 350001, push consent)."""
    stores(engine)
    customer(
        engine,
        clock,
        "c1",
        gender="female",
        age_band="25-34",
        postal_code="350001",
        consent_marketing_push=True,
        tags=["profile:family"],
    )
    return engine


def fire(
    engine: Engine,
    clock: ManualClock,
    cid: str = "c1",
    store: str = GULOU,
    *,
    zone: str | None = None,
    channel: str = "checkin",
    new_visit: bool = True,
    visit_id: str | None = None,
    started: datetime | None = None,
    event_id: str = "e1",
) -> list[tuple[str, str, str]]:
    """Evaluate one event in its own transaction; (campaign, outcome, reason) per decision."""
    if channel == "checkin" and visit_id is None:
        visit_id = visit(engine, cid, store, clock.now(), minutes=0)
    event = TriggerEvent(
        channel=channel,
        event_id=event_id,
        customer_id=cid,
        store_id=store,
        at=clock.now(),
        zone_id=zone,
        visit_id=visit_id,
        new_visit=new_visit,
        visit_started_at=started or (clock.now() if visit_id else None),
    )
    with Session(engine) as session:
        out = evaluation.evaluate(session, event)
        session.commit()
        return [(g.campaign_id, g.outcome, g.reason) for g in out]


def test_checkin_grants_points_and_coupon(world: Engine, clock: ManualClock) -> None:
    """A check-in campaign pays points; a coupon campaign issues a code from its template."""
    pts = live_campaign(world, clock, reward={"kind": "points", "points": 25}, priority=2)
    tpl = template(world, clock)
    cpn = live_campaign(world, clock, reward={"kind": "coupon", "coupon_template_id": tpl})
    assert fire(world, clock) == [(pts, "granted", ""), (cpn, "granted", "")]
    with Session(world) as session:
        assert points.balance(session, "c1") == 25 == points.ledger_sum(session, "c1")
        coupon = session.exec(select(Coupon)).one()
        assert coupon.customer_id == "c1" and coupon.campaign_id == cpn
        assert coupon.expires_at == clock.now() + timedelta(days=14)


def test_first_visit_and_return_after_days(world: Engine, clock: ManualClock) -> None:
    """first_visit fires only on the first visit to that store; return_after needs N days."""
    first = live_campaign(world, clock, trigger="first_visit")
    back = live_campaign(world, clock, trigger="return_after_days", trigger_param=7)
    assert fire(world, clock) == [(first, "granted", "")]
    clock.advance(timedelta(days=3))
    assert fire(world, clock) == []  # neither first nor 7 days later
    clock.advance(timedelta(days=7, minutes=1))
    assert fire(world, clock) == [(back, "granted", "")]
    # Another store: a first visit there.
    assert fire(world, clock, store=TAIJIANG) == [(first, "granted", "")]


def test_zone_entry_and_dwell(world: Engine, clock: ManualClock) -> None:
    """Zone entry fires in its zones only; dwell once the visit is N minutes old, once."""
    zone = live_campaign(world, clock, trigger="zone_entry", where={"zones": [f"{GULOU}-phones"]})
    dwell = live_campaign(world, clock, trigger="dwell", trigger_param=15)
    vid = visit(world, "c1", GULOU, clock.now(), minutes=0)
    started = clock.now()
    assert (
        fire(
            world,
            clock,
            zone=f"{GULOU}-door",
            channel="mqtt",
            visit_id=vid,
            new_visit=False,
            started=started,
        )
        == []
    )
    clock.advance(timedelta(minutes=5))
    assert fire(
        world,
        clock,
        zone=f"{GULOU}-phones",
        channel="mqtt",
        visit_id=vid,
        new_visit=False,
        started=started,
    ) == [(zone, "granted", "")]
    clock.advance(timedelta(minutes=11))
    got = fire(
        world,
        clock,
        zone=f"{GULOU}-phones",
        channel="mqtt",
        visit_id=vid,
        new_visit=False,
        started=started,
        event_id="e2",
    )
    # The zone grant is replayed (same visit and zone), the dwell grant is new.
    assert got == [(zone, "granted", ""), (dwell, "granted", "")]
    with Session(world) as session:
        assert len(session.exec(select(CampaignGrant)).all()) == 2


def test_kiosk_signin_trigger(world: Engine, clock: ManualClock) -> None:
    """Kiosk campaigns fire on kiosk sign-ins only, once per request id."""
    kiosk = live_campaign(world, clock, trigger="kiosk_signin")
    live_campaign(world, clock, trigger="checkin")
    assert fire(world, clock, channel="kiosk", event_id="k-1") == [(kiosk, "granted", "")]
    assert fire(world, clock, channel="kiosk", event_id="k-1") == [(kiosk, "granted", "")]
    with Session(world) as session:
        assert points.balance(session, "c1") == 10


def test_where_restricts_stores_and_regions(world: Engine, clock: ManualClock) -> None:
    """where.stores / region_id keep a campaign to its stores."""
    only_gulou = live_campaign(world, clock, where={"stores": [GULOU]})
    fz = live_campaign(world, clock, region_id="fz")
    assert {c for c, *_ in fire(world, clock, store=GULOU)} == {only_gulou, fz}
    assert {c for c, *_ in fire(world, clock, store=TAIJIANG)} == {fz}
    assert fire(world, clock, store=SIMING) == []


def test_caps_are_logged_not_dropped(world: Engine, clock: ManualClock) -> None:
    """Per-day, total and global caps each produce a 'capped' decision naming the cap."""
    daily = live_campaign(world, clock, caps={"per_customer_per_day": 1}, priority=3)
    total = live_campaign(world, clock, caps={"per_customer_total": 2}, priority=2)
    assert fire(world, clock) == [(daily, "granted", ""), (total, "granted", "")]
    clock.advance(timedelta(hours=2))
    assert fire(world, clock) == [
        (daily, "capped", "campaign_daily_cap"),
        (total, "granted", ""),
    ]
    clock.advance(timedelta(days=1))
    assert fire(world, clock) == [(daily, "granted", ""), (total, "capped", "campaign_total_cap")]


def test_global_daily_cap_counts_in_the_store_calendar_day(
    world: Engine, clock: ManualClock
) -> None:
    """Three grants a store day across campaigns; the store's midnight (UTC+8) resets it."""
    ids = [live_campaign(world, clock, priority=10 - i) for i in range(4)]
    assert fire(world, clock)[-1] == (ids[3], "capped", "global_daily_cap")
    # 15:59 UTC is 23:59 in Shanghai (same store day); 16:00 UTC is the next day.
    clock.set(datetime(2026, 11, 30, 15, 59, tzinfo=clock.now().tzinfo))
    assert {o for _, o, _ in fire(world, clock)} == {"capped"}
    clock.advance(timedelta(minutes=1))
    assert [o for _, o, _ in fire(world, clock)] == ["granted"] * 3 + ["capped"]


def test_budget_caps_exactly(world: Engine, clock: ManualClock) -> None:
    """A 30-point budget pays three 10-point grants; the fourth customer is capped."""
    cid = live_campaign(world, clock, caps={"budget": 30})
    for i in range(2, 6):
        customer(world, clock, f"c{i}")
    outcomes = [fire(world, clock, cid=f"c{i}")[0][1:] for i in range(2, 6)]
    assert outcomes == [("granted", "")] * 3 + [("capped", "budget_exhausted")]
    assert campaign_row(world, cid).budget_remaining == 0


def test_priority_and_exclusivity(world: Engine, clock: ManualClock) -> None:
    """An exclusive campaign that grants stops lower ones; it never joins a higher grant."""
    high = live_campaign(world, clock, priority=9)
    excl = live_campaign(world, clock, priority=5, exclusive=True)
    assert fire(world, clock) == [(high, "granted", "")]  # excl skipped: a slot is taken
    customer(world, clock, "c2", gender="male")
    top = live_campaign(world, clock, priority=20, exclusive=True, audience={"genders": ["male"]})
    assert fire(world, clock, cid="c2") == [(top, "granted", "")]
    assert excl


def test_holdout_qualifies_but_gets_nothing(world: Engine, clock: ManualClock) -> None:
    """Control-group customers get a 'holdout' decision and no reward or budget use."""
    cid = live_campaign(world, clock, holdout_share=0.5, caps={"budget": 1000})
    outcomes = []
    for i in range(40):
        customer(world, clock, f"h{i}")
        outcomes.append(fire(world, clock, cid=f"h{i}")[0][1])
    held = outcomes.count("holdout")
    assert 8 <= held <= 32 and outcomes.count("granted") == 40 - held
    assert campaign_row(world, cid).budget_remaining == 1000 - 10 * (40 - held)


def test_same_event_twice_grants_once(world: Engine, clock: ManualClock) -> None:
    """Re-evaluating the same visit returns the stored decision and pays nothing more."""
    cid = live_campaign(world, clock)
    vid = visit(world, "c1", GULOU, clock.now(), minutes=0)
    assert fire(world, clock, visit_id=vid) == [(cid, "granted", "")]
    assert fire(world, clock, visit_id=vid) == [(cid, "granted", "")]
    with Session(world) as session:
        assert points.balance(session, "c1") == 10


def test_tags_and_visit_counts_are_read_when_an_audience_needs_them(
    world: Engine, clock: ManualClock
) -> None:
    """Evaluation loads tags and visit history only for audiences that read them, correctly."""
    family = live_campaign(world, clock, audience={"tags_all": ["profile:family"]}, priority=4)
    no_family = live_campaign(world, clock, audience={"tags_none": ["profile:family"]}, priority=3)
    regular = live_campaign(world, clock, audience={"min_visits": 2}, priority=2)
    customer(world, clock, "c2")  # no tags, no earlier visits
    for _ in range(2):
        visit(world, "c1", TAIJIANG, clock.now() - timedelta(days=3))
    assert fire(world, clock) == [(family, "granted", ""), (regular, "granted", "")]
    assert fire(world, clock, cid="c2") == [(no_family, "granted", "")]


def test_checkin_hook_reads_the_locked_customer_and_never_pays_twice(
    world: Engine, clock: ManualClock
) -> None:
    """The hook uses the customer the check-in locked; a repeat of the visit pays nothing."""
    women = live_campaign(world, clock, audience={"genders": ["female"]}, priority=2)
    live_campaign(world, clock, audience={"genders": ["male"]}, priority=1)
    zone = live_campaign(world, clock, trigger="zone_entry", where={"zones": [f"{GULOU}-phones"]})

    def check_in(new_visit: bool, vid: str) -> list[tuple[str, str]]:
        """The check-in's transaction: lock the customer, then the hook."""
        with Session(world) as session:
            held = session.exec(select(Customer).where(Customer.id == "c1").with_for_update())
            customer = held.one()  # kept, as the check-in keeps it: the hook reads this row
            row = session.get(Visit, vid)
            assert row is not None
            grants = hooks.on_checkin(
                session, clock.now(), customer.id, GULOU, f"{GULOU}-phones", row, new_visit
            )
            session.commit()
        return [(g.campaign_id, g.kind) for g in grants]

    vid = visit(world, "c1", GULOU, clock.now(), minutes=0)
    assert check_in(True, vid) == [(women, "points"), (zone, "points")]
    # The same visit again (a retried request extends it): zone entry is a replay.
    assert check_in(False, vid) == [(zone, "points")]
    with Session(world) as session:
        assert points.balance(session, "c1") == 20 == points.ledger_sum(session, "c1")


def test_campaign_coupons_use_the_pool_first_are_audited_and_expire(
    world: Engine, clock: ManualClock
) -> None:
    """Grant-issued coupons: the template's pool code first, then a fresh code; each has
    its 'issued' audit line and an expiry timer that expires it; points get theirs."""
    tpl = template(world, clock, valid_days=3)
    with Session(world) as session:
        session.add(Coupon(id="cpn_pool1", code="POOL-0001", template_id=tpl, state="pool"))
        session.commit()
    cpn = live_campaign(world, clock, reward={"kind": "coupon", "coupon_template_id": tpl})
    live_campaign(world, clock, reward={"kind": "points", "points": 5}, priority=-1)
    customer(world, clock, "c2")
    fire(world, clock)
    fire(world, clock, cid="c2")
    with Session(world) as session:
        issued = {c.customer_id: c for c in session.exec(select(Coupon)).all()}
        assert issued["c1"].code == "POOL-0001" and issued["c1"].state == "issued"
        assert issued["c1"].campaign_id == cpn and issued["c2"].code != "POOL-0001"
        for coupon in issued.values():
            assert [e.action for e in coupons.history(session, coupon.id)] == ["issued"]
        due = {(t.kind, t.key) for t in session.exec(select(Timer)).all()}
    assert {("coupon.expire", c.id) for c in issued.values()} <= due
    assert ("points.expire", (clock.now() + timedelta(days=365)).date().isoformat()) in due
    clock.advance(timedelta(days=3, seconds=1))
    timers.run_due(world, clock)
    with Session(world) as session:
        assert {c.state for c in session.exec(select(Coupon)).all()} == {"expired"}
