"""Orders through the real app: intake, idempotency, bad input, decisions, state machine."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from hub.clock import ManualClock
from hub.models.oao import OaoOrder, OaoTransition
from tests.hub.oao.helpers import Keys, create, order_body


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_order_is_dispatched_to_the_nearest_open_store_with_its_reason(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A new order goes to fz-gulou; its history holds every candidate and the reason."""
    keys = Keys(engine, clock)
    order = create(client, keys, clock)
    assert order["status"] == "dispatched" and order["store_id"] == "fz-gulou"
    assert order["hops"] == 1
    history = client.get(f"/v1/orders/{order['id']}/history", headers=keys.ops_fz).json()
    [decision] = history["dispatches"]
    assert decision["policy"] == "nearest" and decision["outcome"] == "pending"
    assert decision["reason"].startswith("nearest eligible store fz-gulou at 0.3")
    assert [c["store_id"] for c in decision["candidates"]][:1] == ["fz-gulou"]
    assert [(t["from_status"], t["to_status"]) for t in history["transitions"]] == [
        (None, "received"),
        ("received", "dispatched"),
    ]
    assert history["transitions"][0]["actor"].startswith("regional_ops:fz:key_")


def test_client_order_key_makes_intake_idempotent(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A resent order returns the first (200); the key on another order is a 409."""
    keys = Keys(engine, clock)
    body = order_body(clock)
    first = client.post("/v1/orders", json=body, headers=keys.ops_fz)
    again = client.post("/v1/orders", json=body, headers=keys.ops_fz)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/orders", json={**body, "product": "device"}, headers=keys.ops_fz)
    assert other.status_code == 409
    assert other.json() == {
        "detail": f"client_order_key {body['client_order_key']!r} was used for another order "
        "(product differs)",
        "code": "client_key_reused",
    }
    assert _count(engine, OaoOrder) == 1


def test_bad_input_is_refused_clearly_and_stores_nothing(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Reversed window, unknown product, unknown customer, foreign region: nothing stored."""
    keys = Keys(engine, clock)
    start = clock.now().isoformat()
    reversed_window = order_body(clock, window_end=start, window_start=start)
    resp = client.post("/v1/orders", json=reversed_window, headers=keys.ops_fz)
    assert resp.status_code == 422 and "window_start must be before window_end" in resp.text
    resp = client.post("/v1/orders", json=order_body(clock, product="pizza"), headers=keys.ops_fz)
    assert resp.status_code == 422 and "product" in resp.text
    resp = client.post(
        "/v1/orders", json=order_body(clock, customer_id="cus_nobody"), headers=keys.ops_fz
    )
    assert resp.status_code == 422 and resp.json()["code"] == "unknown_customer"
    resp = client.post("/v1/orders", json=order_body(clock, region_id="xm"), headers=keys.ops_fz)
    assert resp.status_code == 404
    resp = client.post("/v1/orders", json=order_body(clock, latitude=91), headers=keys.ops_fz)
    assert resp.status_code == 422
    assert _count(engine, OaoOrder) == 0 and _count(engine, OaoTransition) == 0


def test_no_eligible_store_escalates_with_an_alert(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """No seeded store installs broadband: the order is kept, escalated, and ops alerted."""
    keys = Keys(engine, clock)
    order = create(client, keys, clock, product="broadband_install")
    assert order["status"] == "escalated" and order["store_id"] is None
    assert order["escalation_reason"].startswith("no eligible store: no eligible store within")
    queue = client.get("/v1/orders?status=escalated", headers=keys.ops_fz).json()
    assert [o["id"] for o in queue] == [order["id"]]
    alerts = client.get("/v1/alerts", headers=keys.ops_fz).json()
    assert [a["kind"] for a in alerts] == ["oao_no_store"]
    assert order["id"] in alerts[0]["detail"]
    history = client.get(f"/v1/orders/{order['id']}/history", headers=keys.ops_fz).json()
    verdicts = {c["verdict"] for c in history["dispatches"][0]["candidates"]}
    assert verdicts == {"does not do broadband_install"}


def test_full_lifecycle_is_audited_and_illegal_moves_are_refused(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """accept -> start -> complete, each audited; out-of-order moves get a clear 409."""
    keys = Keys(engine, clock)
    order = create(client, keys, clock)
    gulou = keys.staff["fz-gulou"]
    path = f"/v1/orders/{order['id']}"
    early = client.post(f"{path}/complete", headers=gulou)
    assert early.status_code == 409
    assert early.json() == {
        "detail": f"order {order['id']} is dispatched; cannot move to completed "
        "(allowed from dispatched: accepted, dispatched, escalated)",
        "code": "illegal_transition",
    }
    assert client.post(f"{path}/accept", headers=gulou).json()["status"] == "accepted"
    again = client.post(f"{path}/accept", headers=gulou)
    assert again.status_code == 409 and again.json()["code"] == "already_accepted"
    assert client.post(f"{path}/reject", json={"reason": "x"}, headers=gulou).status_code == 409
    assert client.post(f"{path}/start", headers=gulou).json()["status"] == "in_progress"
    done = client.post(f"{path}/complete", headers=gulou).json()
    assert done["status"] == "completed" and done["finished_at"] is not None
    final = client.post(f"{path}/fail", json={"reason": "late"}, headers=gulou)
    assert final.status_code == 409 and "completed is final" in final.json()["detail"]
    history = client.get(f"{path}/history", headers=keys.admin).json()
    assert [t["to_status"] for t in history["transitions"]] == [
        "received",
        "dispatched",
        "accepted",
        "in_progress",
        "completed",
    ]
    assert history["dispatches"][0]["outcome"] == "accepted"


def test_reject_moves_the_order_to_the_next_store(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A rejection needs a reason; the next nearest store gets it; the decliner loses sight."""
    keys = Keys(engine, clock)
    order = create(client, keys, clock)
    path = f"/v1/orders/{order['id']}"
    gulou = keys.staff["fz-gulou"]
    blank = client.post(f"{path}/reject", json={"reason": " "}, headers=gulou)
    assert blank.status_code == 422 and blank.json()["code"] == "reason_required"
    moved = client.post(f"{path}/reject", json={"reason": "no stock"}, headers=gulou).json()
    assert moved["store_id"] == "fz-taijiang" and moved["hops"] == 2
    late = client.post(f"{path}/accept", headers=gulou)
    assert late.status_code == 409 and late.json()["code"] == "offer_withdrawn"
    assert client.get(path, headers=keys.staff["fz-cangshan"]).status_code == 404
    history = client.get(f"{path}/history", headers=keys.ops_fz).json()
    assert [d["outcome"] for d in history["dispatches"]] == ["rejected", "pending"]
    assert history["dispatches"][0]["outcome_reason"] == "no stock"
    assert history["transitions"][-1]["reason"].startswith("rejected by fz-gulou: no stock")


def test_policy_channel_rule_and_directed_mode_via_api(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Ops set a channel rule and directed mode; orders follow them."""
    keys = Keys(engine, clock)
    bad = client.put(
        "/v1/oao/policies/fz", json={"channel_rules": {"app": ["xm-siming"]}}, headers=keys.ops_fz
    )
    assert bad.status_code == 422 and "not a store of region fz" in bad.text
    policy = {"mode": "directed", "channel_rules": {"enterprise_chat": ["fz-cangshan"]}}
    assert client.put("/v1/oao/policies/fz", json=policy, headers=keys.ops_fz).status_code == 200
    ruled = create(client, keys, clock, channel="enterprise_chat")
    assert ruled["store_id"] == "fz-cangshan"
    directed = create(client, keys, clock, directed_store_id="fz-taijiang")
    assert directed["store_id"] == "fz-taijiang"
    plain = create(client, keys, clock)
    assert plain["store_id"] == "fz-gulou"
    assert client.get("/v1/oao/policies/fz", headers=keys.ops_xm).status_code == 404


def test_store_profile_adds_broadband_and_capacity(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A store that installs broadband takes such orders until its capacity is reached."""
    keys = Keys(engine, clock)
    profile = {"skills": ["broadband_install", "sim_card"], "order_capacity": 1}
    resp = client.put("/v1/oao/stores/fz-taijiang/profile", json=profile, headers=keys.ops_fz)
    assert resp.status_code == 200, resp.text
    first = create(client, keys, clock, product="broadband_install")
    second = create(client, keys, clock, product="broadband_install")
    assert first["store_id"] == "fz-taijiang" and second["status"] == "escalated"
    history = client.get(f"/v1/orders/{second['id']}/history", headers=keys.admin).json()
    verdicts = {c["store_id"]: c["verdict"] for c in history["dispatches"][0]["candidates"]}
    assert verdicts["fz-taijiang"] == "full (1/1 open orders)"
