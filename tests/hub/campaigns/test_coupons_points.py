"""Coupon pools, templates, void; points API; kiosk sign-in and inbox; erasure; bad input."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.campaigns import CampaignGrant
from hub.models.coupons import CouponTemplate
from hub.models.timers import Timer
from hub.services import coupons, points
from tests.hub.campaigns.helpers import customer, live_campaign, template
from tests.hub.factories import api_key, auth, seed, sign_in


def _keys(engine: Engine, clock: ManualClock) -> tuple[dict, dict, dict, dict]:
    """Seeds; admin, ops fz, Gulou staff and Gulou kiosk headers."""
    seed(engine, clock)
    return (
        auth(api_key(engine, clock, Role.ADMIN)),
        auth(api_key(engine, clock, Role.REGIONAL_OPS, region_id="fz")),
        auth(api_key(engine, clock, Role.STORE_STAFF, store_id="fz-gulou")),
        auth(api_key(engine, clock, Role.KIOSK, store_id="fz-gulou")),
    )


def test_pool_codes_are_used_first_then_generated(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Imported codes (deduplicated) are issued first; then fresh 80-bit codes."""
    admin, ops, _, _ = _keys(engine, clock)
    customer(engine, clock, "c1")
    tpl = client.post(
        "/v1/coupon-templates",
        json={"name": "p", "kind": "value", "value": 100, "region_id": "fz"},
        headers=ops,
    ).json()["id"]
    imported = client.post(
        f"/v1/coupon-templates/{tpl}/pool",
        json={"codes": ["gulou-0001", "GULOU-0001", "GULOU-0002"]},
        headers=ops,
    ).json()
    assert imported == {"imported": 2, "duplicates": 1}
    again = client.post(
        f"/v1/coupon-templates/{tpl}/pool", json={"codes": ["GULOU-0002"]}, headers=ops
    ).json()
    assert again == {"imported": 0, "duplicates": 1}
    codes = [
        client.post(
            f"/v1/coupon-templates/{tpl}/issue", json={"customer_id": "c1"}, headers=ops
        ).json()["code"]
        for _ in range(3)
    ]
    assert sorted(codes[:2]) == ["GULOU-0001", "GULOU-0002"]
    assert len(codes[2]) == 19 and codes[2].count("-") == 3
    bad = client.post(
        f"/v1/coupon-templates/{tpl}/pool", json={"codes": ["has space"]}, headers=ops
    )
    assert bad.status_code == 422


def test_generated_codes_are_unique_and_well_formed() -> None:
    """10,000 codes: no repeats, Crockford alphabet only."""
    codes = {coupons.new_code() for _ in range(10_000)}
    assert len(codes) == 10_000
    assert all(set(c.replace("-", "")) <= set(coupons.CODE_ALPHABET) for c in codes)


def test_template_validation(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Inconsistent templates are refused with 422; ops cannot write other regions."""
    _, ops, _, _ = _keys(engine, clock)
    for body in (
        {"name": "x", "kind": "percent", "value": 150},
        {"name": "x", "kind": "value", "value": 0},
        {"name": "x", "kind": "free_item"},
        {"name": "x", "kind": "value", "value": 5, "valid_days": 0},
    ):
        assert (
            client.post(
                "/v1/coupon-templates", json={**body, "region_id": "fz"}, headers=ops
            ).status_code
            == 422
        ), body
    other = client.post(
        "/v1/coupon-templates",
        json={"name": "x", "kind": "value", "value": 5, "region_id": "xm"},
        headers=ops,
    )
    assert other.status_code == 404


def test_void_and_audit(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """A voided coupon cannot be redeemed; the audit names the reason."""
    admin, _, staff, _ = _keys(engine, clock)
    customer(engine, clock, "c1")
    tpl = template(engine, clock)
    coupon = client.post(
        f"/v1/coupon-templates/{tpl}/issue", json={"customer_id": "c1"}, headers=admin
    ).json()
    assert (
        client.post(
            f"/v1/coupons/{coupon['id']}/void", json={"reason": "fraud"}, headers=admin
        ).json()["state"]
        == "voided"
    )
    redeem = client.post(
        "/v1/coupons/redeem",
        json={"code": coupon["code"], "store_id": "fz-gulou", "client_key": "till-1:0009"},
        headers=staff,
    )
    assert redeem.status_code == 409 and redeem.json()["code"] == "coupon_voided"
    events = client.get(f"/v1/coupons/{coupon['id']}/events", headers=admin).json()
    assert [(e["action"], e["reason"]) for e in events][-1] == ("voided", "fraud")


def test_points_api(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Adjust, spend with replay, refuse overdraft and bad amounts."""
    admin, _, staff, kiosk = _keys(engine, clock)
    customer(engine, clock, "c1")
    adj = client.post(
        "/v1/customers/c1/points/adjust",
        json={"points": 100, "client_key": "adj-00001", "reason": "goodwill"},
        headers=admin,
    )
    assert adj.status_code == 200 and adj.json()["balance_after"] == 100
    body = {"points": 60, "client_key": "till-1:0100", "store_id": "fz-gulou"}
    first = client.post("/v1/customers/c1/points/spend", json=body, headers=staff)
    replay = client.post("/v1/customers/c1/points/spend", json=body, headers=kiosk)
    assert first.json()["balance_after"] == 40 and replay.headers["Idempotent-Replayed"] == "true"
    over = client.post(
        "/v1/customers/c1/points/spend", json={**body, "client_key": "till-1:0101"}, headers=staff
    )
    assert over.status_code == 409 and over.json()["code"] == "insufficient_points"
    below = client.post(
        "/v1/customers/c1/points/adjust",
        json={"points": -41, "client_key": "adj-00002", "reason": "typo"},
        headers=admin,
    )
    assert below.status_code == 409
    for bad in ({**body, "points": 0}, {**body, "client_key": "short"}, {"points": 5}):
        assert (
            client.post("/v1/customers/c1/points/spend", json=bad, headers=staff).status_code == 422
        )
    other_store = client.post(
        "/v1/customers/c1/points/spend",
        json={**body, "client_key": "till-1:0102", "store_id": "fz-taijiang"},
        headers=staff,
    )
    assert other_store.status_code == 404
    mine = client.get("/v1/customers/c1/points", headers=admin).json()
    assert mine["balance"] == 40 and [e["kind"] for e in mine["entries"]] == ["spend", "adjust"]


def test_kiosk_signin_grants_into_kiosk_inbox(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A kiosk sign-in campaign grants once per request; the kiosk and phone see it."""
    _, _, _, kiosk = _keys(engine, clock)
    phone = auth(sign_in(client, engine, "+8613800138000"))
    cid = client.get("/v1/me", headers=phone).json()["id"]
    live_campaign(
        engine,
        clock,
        trigger="kiosk_signin",
        region_id="fz",
        reward={"kind": "points", "points": 3, "title": "Hello"},
    )
    body = {"customer_id": cid, "request_id": "kiosk-1:0001"}
    got = client.post("/v1/stores/fz-gulou/kiosk-signins", json=body, headers=kiosk).json()
    again = client.post("/v1/stores/fz-gulou/kiosk-signins", json=body, headers=kiosk).json()
    assert got == again and [g["points"] for g in got] == [3]
    shown = client.get(f"/v1/stores/fz-gulou/customers/{cid}/inbox", headers=kiosk).json()
    assert [i["title"] for i in shown] == ["Hello"]
    item = client.get("/v1/me/inbox?unseen=true", headers=phone).json()[0]
    assert client.post(f"/v1/me/inbox/{item['id']}/seen", headers=phone).json()["seen_at"]
    assert client.get("/v1/me/inbox?unseen=true", headers=phone).json() == []
    assert client.get("/v1/me/points", headers=phone).json()["balance"] == 3


def test_erasure_keeps_anonymous_grants(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Erase-my-data removes points, detaches grants and coupons (counts stay for reports)."""
    seed(engine, clock)
    phone = auth(sign_in(client, engine, "+8613800138000"))
    cid = client.get("/v1/me", headers=phone).json()["id"]
    tpl = template(engine, clock)
    live_campaign(
        engine, clock, trigger="kiosk_signin", reward={"kind": "coupon", "coupon_template_id": tpl}
    )
    live_campaign(engine, clock, trigger="kiosk_signin", priority=-1)
    kiosk = auth(api_key(engine, clock, Role.KIOSK, store_id="fz-gulou"))
    client.post(
        "/v1/stores/fz-gulou/kiosk-signins",
        json={"customer_id": cid, "request_id": "kiosk-1:0002"},
        headers=kiosk,
    )
    assert client.delete("/v1/me", headers=phone).status_code == 200
    with Session(engine) as session:
        grants = session.exec(select(CampaignGrant)).all()
        assert len(grants) == 2 and {g.customer_id for g in grants} == {None}
        assert points.balance(session, cid) == 0 and points.recent(session, cid) == []
        assert session.exec(select(CouponTemplate)).first() is not None


def test_rolled_back_expiry_schedule_is_redone(engine: Engine, clock: ManualClock) -> None:
    """The per-transaction memo of expiry timers forgets a rolled-back transaction."""
    from tests.hub.campaigns.helpers import stores

    stores(engine)
    customer(engine, clock, "c1")
    expires = clock.now() + timedelta(days=30)
    with Session(engine) as session:
        points.credit_many(session, "c1", [points.Credit(5, "k1", "", None, expires)], clock.now())
        session.rollback()
        points.credit_many(session, "c1", [points.Credit(5, "k2", "", None, expires)], clock.now())
        session.commit()
        assert len(session.exec(select(Timer)).all()) == 1
        assert points.balance(session, "c1") == 5 == points.ledger_sum(session, "c1")


def test_one_timer_a_day_expires_every_customer(engine: Engine, clock: ManualClock) -> None:
    """Lots of two customers expiring the same UTC day share one timer; later lots stay."""
    from hub.models.points import PointsKind
    from hub.services import timers
    from tests.hub.campaigns.helpers import stores

    stores(engine)
    for cid in ("c1", "c2", "c3"):
        customer(engine, clock, cid)
    day = timedelta(days=1)
    with Session(engine) as session:
        points.move(
            session, "c1", PointsKind.EARN, 10, "e1", clock.now(), expires_at=clock.now() + day
        )
        points.move(
            session,
            "c2",
            PointsKind.EARN,
            20,
            "e2",
            clock.now(),
            expires_at=clock.now() + day + timedelta(hours=1),
        )
        points.move(session, "c2", PointsKind.SPEND, -5, "s2", clock.now())
        points.move(
            session, "c3", PointsKind.EARN, 7, "e3", clock.now(), expires_at=clock.now() + 3 * day
        )
        session.commit()
        assert len(session.exec(select(Timer)).all()) == 2
    clock.advance(2 * day)
    assert timers.run_due(engine, clock) == 1
    with Session(engine) as session:
        got = {c: points.balance(session, c) for c in ("c1", "c2", "c3")}
        assert got == {"c1": 0, "c2": 0, "c3": 7}
        assert all(points.balance(session, c) == points.ledger_sum(session, c) for c in got)


def test_the_expiry_sweep_reads_the_ledger_by_expiry_date(
    engine: Engine, clock: ManualClock
) -> None:
    """The day's customers come from the partial expiry index, not a scan of the ledger."""
    from sqlalchemy import text

    from hub.models.points import PointsKind
    from tests.hub.campaigns.helpers import stores

    stores(engine)
    customer(engine, clock, "c1")
    expires = clock.now() + timedelta(days=1)
    with Session(engine) as session:
        points.move(session, "c1", PointsKind.EARN, 10, "e1", clock.now(), expires_at=expires)
        points.move(session, "c1", PointsKind.SPEND, -3, "s1", clock.now())
        session.commit()
        query = points.expiring_customers(expires.date())
        assert session.exec(query).all() == ["c1"]
        if engine.dialect.name == "sqlite":
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r[-1]) for r in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "ix_points_entry_expires_at" in plan, plan
        else:
            session.execute(text("SET LOCAL enable_seqscan = off"))
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(r[0] for r in session.execute(text(f"EXPLAIN {sql}")))
            assert "ix_points_entry_expires_at" in plan, plan


def test_a_rolled_back_expiry_timer_is_scheduled_again(engine: Engine, clock: ManualClock) -> None:
    """The transaction's note of expiry timers it made sure of dies with a savepoint rolled
    back: the next credit in the same transaction inserts the day's timer again."""
    customer(engine, clock, "c1")
    expires = clock.now() + timedelta(days=30)
    day = expires.date().isoformat()
    with Session(engine) as session:
        savepoint = session.begin_nested()
        points.credit_many(session, "c1", [points.Credit(5, "k1", "r", None, expires)], clock.now())
        savepoint.rollback()
        points.credit_many(session, "c1", [points.Credit(7, "k2", "r", None, expires)], clock.now())
        session.commit()
    with Session(engine) as session:
        timer = session.exec(select(Timer).where(Timer.key == day)).one()
        assert timer.kind == points.EXPIRE_TIMER
        assert points.balance(session, "c1") == 7 == points.ledger_sum(session, "c1")
