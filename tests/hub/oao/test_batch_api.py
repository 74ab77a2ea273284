"""POST /v1/orders/batch: a channel's burst over HTTP, same rules as one POST per order."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from hub.clock import ManualClock
from hub.models.oao import OaoOrder
from tests.hub.oao.helpers import Keys, order_body


def _count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(OaoOrder)).one()


def test_a_batch_is_dispatched_in_order_and_a_resend_returns_the_same_orders(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Five orders (one key twice): four stored, answers in order; resent: 200, same ids."""
    keys = Keys(engine, clock)
    bodies = [order_body(clock) for _ in range(4)]
    bodies.insert(2, dict(bodies[0]))
    resp = client.post("/v1/orders/batch", json=bodies, headers=keys.ops_fz)
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert [o["client_order_key"] for o in got] == [b["client_order_key"] for b in bodies]
    assert got[2]["id"] == got[0]["id"] and len({o["id"] for o in got}) == 4
    assert {o["status"] for o in got} == {"dispatched"}
    assert got[0]["store_id"] == "fz-gulou"
    assert _count(engine) == 4
    again = client.post("/v1/orders/batch", json=bodies, headers=keys.ops_fz)
    assert again.status_code == 200
    assert [o["id"] for o in again.json()] == [o["id"] for o in got]
    history = client.get(f"/v1/orders/{got[1]['id']}/history", headers=keys.ops_fz).json()
    assert [t["to_status"] for t in history["transitions"]] == ["received", "dispatched"]


def test_a_bad_order_fails_the_batch_naming_it_and_stores_nothing(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Unknown region, a region out of the caller's scope, empty or oversized: nothing stored."""
    keys = Keys(engine, clock)
    good = order_body(clock)
    bad = order_body(clock, region_id="nowhere")
    resp = client.post("/v1/orders/batch", json=[good, bad], headers=keys.ops_fz)
    assert resp.status_code == 404
    assert f"order 1 ({bad['client_order_key']}): region 'nowhere' not found" in resp.text
    xm = order_body(clock, region_id="xm")
    assert client.post("/v1/orders/batch", json=[good, xm], headers=keys.ops_fz).status_code == 404
    assert client.post("/v1/orders/batch", json=[], headers=keys.ops_fz).status_code == 422
    many = [order_body(clock) for _ in range(1_001)]
    assert client.post("/v1/orders/batch", json=many, headers=keys.ops_fz).status_code == 422
    staff = client.post("/v1/orders/batch", json=[good], headers=keys.staff["fz-gulou"])
    assert staff.status_code == 403
    assert _count(engine) == 0
