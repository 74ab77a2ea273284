"""Through the real app: check-in grants, inbox, lifecycle, dry run, redemption, expiry timers."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.points import PointsKind
from hub.services import points, timers
from tests.hub.factories import api_key, auth, checkin_body, live_code, seed, sign_in

PHONE = "+8613800138000"
GULOU_DOOR = 101


def _setup(client: TestClient, engine: Engine, clock: ManualClock) -> tuple[dict, dict, dict]:
    """Seeds, an author (ops fz), an approver (admin) and a signed-in phone."""
    seed(engine, clock)
    author = auth(api_key(engine, clock, Role.REGIONAL_OPS, region_id="fz"))
    approver = auth(api_key(engine, clock, Role.ADMIN))
    phone = auth(sign_in(client, engine, PHONE, device_id="dev-1"))
    return author, approver, phone


def _launch(client: TestClient, author: dict, approver: dict, body: dict) -> str:
    """Create, approve (not by the author) and launch a campaign over HTTP."""
    resp = client.post("/v1/campaigns", json=body, headers=author)
    assert resp.status_code == 201, resp.text
    cid = resp.json()["id"]
    own = client.post(
        f"/v1/campaigns/{cid}/transitions", json={"transition": "approve"}, headers=author
    )
    assert own.status_code == 403  # the author cannot approve their own campaign
    ok = client.post(
        f"/v1/campaigns/{cid}/transitions", json={"transition": "approve"}, headers=approver
    )
    assert ok.status_code == 200 and ok.json()["approved_by"], ok.text
    live = client.post(
        f"/v1/campaigns/{cid}/transitions", json={"transition": "launch"}, headers=author
    )
    assert live.json()["state"] == "live"
    return str(cid)


def test_checkin_carries_grants_and_coupon_redeems_once(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Launch a coupon campaign, check in, get the code, redeem it at the till, once."""
    author, approver, phone = _setup(client, engine, clock)
    tpl = client.post(
        "/v1/coupon-templates",
        json={
            "name": "5 off",
            "kind": "value",
            "value": 500,
            "min_spend_cents": 1000,
            "region_id": "fz",
            "stores": ["fz-gulou"],
        },
        headers=author,
    ).json()["id"]
    cid = _launch(
        client,
        author,
        approver,
        {
            "name": "Welcome",
            "region_id": "fz",
            "trigger": "checkin",
            "reward": {"kind": "coupon", "coupon_template_id": tpl, "title": "5 off"},
            "caps": {"budget": 10},
        },
    )
    resp = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
        headers=phone,
    )
    assert resp.status_code == 200, resp.text
    grants = resp.json()["grants"]
    assert [(g["campaign_id"], g["kind"], g["title"]) for g in grants] == [(cid, "coupon", "5 off")]
    code = grants[0]["coupon_code"]
    inbox = client.get("/v1/me/inbox", headers=phone).json()
    assert [i["coupon_code"] for i in inbox] == [code]
    staff = auth(api_key(engine, clock, Role.STORE_STAFF, store_id="fz-gulou"))
    other = auth(api_key(engine, clock, Role.STORE_STAFF, store_id="fz-taijiang"))
    body = {"code": code.lower(), "store_id": "fz-gulou", "client_key": "till-1:0001"}
    assert client.post("/v1/coupons/redeem", json=body, headers=staff).json()["code"] == "min_spend"
    body["spend_cents"] = 1500
    wrong = client.post(
        "/v1/coupons/redeem", json={**body, "store_id": "fz-taijiang"}, headers=other
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "wrong_store"
    first = client.post("/v1/coupons/redeem", json=body, headers=staff)
    assert first.status_code == 200 and first.json()["state"] == "redeemed"
    again = client.post("/v1/coupons/redeem", json=body, headers=staff)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    other_key = client.post(
        "/v1/coupons/redeem", json={**body, "client_key": "till-2:0001"}, headers=staff
    )
    assert other_key.status_code == 409 and other_key.json()["code"] == "coupon_redeemed"
    bad = client.post("/v1/coupons/redeem", json={**body, "client_key": "x"}, headers=staff)
    assert bad.status_code == 422
    decisions = client.get(f"/v1/campaigns/{cid}/grants", headers=author).json()
    assert [d["outcome"] for d in decisions] == ["granted"]


def test_dry_run_explains(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """The dry run lists who qualifies and the reasons of the others; nothing is granted."""
    author, approver, phone = _setup(client, engine, clock)
    client.patch("/v1/me", json={"gender": "female", "age_band": "25-34"}, headers=phone)
    sign_in(client, engine, "+8613800138001")
    resp = client.post(
        "/v1/campaigns",
        json={
            "name": "Women 25-34",
            "region_id": "fz",
            "trigger": "checkin",
            "audience": {"genders": ["female"]},
            "reward": {"kind": "points", "points": 5},
        },
        headers=author,
    )
    cid = resp.json()["id"]
    run = client.post(f"/v1/campaigns/{cid}/dry-run", json={"store_id": "fz-gulou"}, headers=author)
    assert run.status_code == 200, run.text
    verdicts = sorted((v["qualifies"], tuple(v["reasons"])) for v in run.json()["verdicts"])
    assert verdicts == [(False, ("gender not in audience",)), (True, ("qualifies",))]
    xm = client.post(
        f"/v1/campaigns/{cid}/dry-run", json={"store_id": "xm-siming"}, headers=approver
    ).json()
    assert all("store outside the campaign's region" in v["reasons"] for v in xm["verdicts"])
    assert client.get(f"/v1/campaigns/{cid}/grants", headers=author).json() == []


def test_lifecycle_rules(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Only drafts are edited; transitions follow the graph; ended is final."""
    author, approver, _ = _setup(client, engine, clock)
    body = {
        "name": "x",
        "region_id": "fz",
        "trigger": "checkin",
        "reward": {"kind": "points", "points": 5},
    }
    cid = _launch(client, author, approver, body)
    assert client.put(f"/v1/campaigns/{cid}", json=body, headers=author).status_code == 409
    for step, state in (("pause", "paused"), ("resume", "live"), ("end", "ended")):
        resp = client.post(
            f"/v1/campaigns/{cid}/transitions", json={"transition": step}, headers=author
        )
        assert resp.json()["state"] == state
    late = client.post(
        f"/v1/campaigns/{cid}/transitions", json={"transition": "resume"}, headers=author
    )
    assert late.status_code == 409 and late.json()["code"] == "bad_transition"
    xm_store = client.post(
        "/v1/campaigns", json={**body, "where": {"stores": ["xm-siming"]}}, headers=author
    )
    assert xm_store.status_code == 404


def test_coupon_and_points_expire_by_timer(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """The durable timer expires an unused coupon and what is left of an expiring lot."""
    author, _, phone = _setup(client, engine, clock)
    cus = client.get("/v1/me", headers=phone).json()["id"]
    tpl = client.post(
        "/v1/coupon-templates",
        json={"name": "t", "kind": "free_item", "item": "case", "valid_days": 7, "region_id": "fz"},
        headers=author,
    ).json()
    coupon = client.post(
        f"/v1/coupon-templates/{tpl['id']}/issue", json={"customer_id": cus}, headers=author
    ).json()
    with Session(engine) as session:
        points.move(
            session,
            cus,
            PointsKind.EARN,
            100,
            "e1",
            clock.now(),
            expires_at=clock.now() + timedelta(days=5),
        )
        points.move(session, cus, PointsKind.EARN, 50, "e2", clock.now())
        points.move(session, cus, PointsKind.SPEND, -30, "s1", clock.now())
        session.commit()
    clock.advance(timedelta(days=6))
    assert timers.run_due(engine, clock) >= 1
    assert client.get("/v1/me/coupons", headers=phone).json()[0]["state"] == "issued"
    mine = client.get("/v1/me/points", headers=phone).json()
    assert mine["balance"] == 50  # 100 - 30 spent from the expiring lot = 70 expired
    assert mine["entries"][0]["kind"] == "expire" and mine["entries"][0]["delta"] == -70
    clock.advance(timedelta(days=2))
    timers.run_due(engine, clock)
    states = client.get("/v1/me/coupons", headers=phone).json()
    assert [c["state"] for c in states] == ["expired"] and states[0]["id"] == coupon["id"]
    events = client.get(f"/v1/coupons/{coupon['id']}/events", headers=author).json()
    assert [e["action"] for e in events] == ["issued", "expired"]


def test_campaign_ends_by_timer_at_ends_at(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A live campaign with ends_at is ended by the durable timer (paused ones too)."""
    author, approver, _ = _setup(client, engine, clock)
    ends = (clock.now() + timedelta(days=2)).isoformat()
    body = {
        "name": "x",
        "region_id": "fz",
        "trigger": "checkin",
        "when": {"ends_at": ends},
        "reward": {"kind": "points", "points": 5},
    }
    cid = _launch(client, author, approver, body)
    client.post(f"/v1/campaigns/{cid}/transitions", json={"transition": "pause"}, headers=author)
    clock.advance(timedelta(days=1))
    timers.run_due(engine, clock)
    assert client.get(f"/v1/campaigns/{cid}", headers=author).json()["state"] == "paused"
    clock.advance(timedelta(days=1, seconds=1))
    timers.run_due(engine, clock)
    assert client.get(f"/v1/campaigns/{cid}", headers=author).json()["state"] == "ended"
