"""SLA with a moved clock: reminder, re-dispatch with ops alert, hop limit, cancelled timers."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hub.clock import ManualClock
from hub.models.customers import OutboxMessage
from hub.models.timers import Timer, TimerState
from hub.services.oao.sla import STAFF_CHANNEL
from tests.hub.oao.helpers import Keys, create, sweep

ACCEPT = timedelta(minutes=30)  # default normal-priority acceptance window
GRACE = timedelta(minutes=15)  # default grace after the reminder
TICK = timedelta(seconds=1)


def _outbox(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    return [(r.channel, r.recipient_enc, r.dedupe_key) for r in rows]


def test_timeout_reminds_then_redispatches_then_escalates_at_the_hop_limit(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Nobody answers: reminder, re-dispatch to the next store (ops alerted), ... escalation."""
    keys = Keys(engine, clock)
    # Short windows so the whole walk ends before fz-cangshan closes for lunch at 12:00.
    policy = {"accept_minutes": {"normal": 10}, "grace_minutes": {"normal": 5}}
    assert client.put("/v1/oao/policies/fz", json=policy, headers=keys.ops_fz).status_code == 200
    accept, grace = timedelta(minutes=10), timedelta(minutes=5)
    order = create(client, keys, clock)
    oid, path = order["id"], f"/v1/orders/{order['id']}"
    assert sweep(engine, clock, accept - TICK) == 0
    sweep(engine, clock, TICK)
    assert _outbox(engine) == [(STAFF_CHANNEL, "store:fz-gulou", f"oao:remind:{oid}:1")]
    assert client.get(path, headers=keys.ops_fz).json()["store_id"] == "fz-gulou"
    sweep(engine, clock, grace)
    moved = client.get(path, headers=keys.ops_fz).json()
    assert (moved["status"], moved["store_id"], moved["hops"]) == ("dispatched", "fz-taijiang", 2)
    alerts = client.get("/v1/alerts", headers=keys.ops_fz).json()
    assert [(a["kind"], a["store_id"]) for a in alerts] == [("oao_timeout", "fz-gulou")]
    late = client.post(f"{path}/accept", headers=keys.staff["fz-gulou"])
    assert late.status_code == 409 and late.json()["code"] == "offer_withdrawn"
    sweep(engine, clock, accept + grace)  # taijiang times out -> cangshan (hop 3)
    assert client.get(path, headers=keys.ops_fz).json()["store_id"] == "fz-cangshan"
    sweep(engine, clock, accept + grace)  # cangshan times out: hop limit 3 reached
    final = client.get(path, headers=keys.ops_fz).json()
    assert final["status"] == "escalated" and final["store_id"] is None
    assert final["escalation_reason"] == (
        "fz-cangshan timed out; hop limit 3 reached without a store accepting"
    )
    history = client.get(f"{path}/history", headers=keys.ops_fz).json()
    assert [d["outcome"] for d in history["dispatches"]] == ["timed_out"] * 3
    assert all(d["reminded_at"] is not None for d in history["dispatches"])
    kinds = [a["kind"] for a in client.get("/v1/alerts", headers=keys.ops_fz).json()]
    assert sorted(kinds) == ["oao_escalated"] + ["oao_timeout"] * 3
    assert len(_outbox(engine)) == 3
    # Ops take it from the queue and hand it to a store by hand.
    handed = client.post(
        f"{path}/redirect", json={"store_id": "fz-gulou", "reason": "called"}, headers=keys.ops_fz
    )
    assert handed.status_code == 200 and handed.json()["store_id"] == "fz-gulou"
    assert handed.json()["status"] == "dispatched"


def test_accepting_cancels_the_deadlines(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """After acceptance no reminder is queued and the order stays with its store."""
    keys = Keys(engine, clock)
    order = create(client, keys, clock)
    path = f"/v1/orders/{order['id']}"
    assert client.post(f"{path}/accept", headers=keys.staff["fz-gulou"]).status_code == 200
    assert sweep(engine, clock, ACCEPT + GRACE + TICK) == 0
    assert _outbox(engine) == []
    with Session(engine) as session:
        states = {t.state for t in session.exec(select(Timer)).all()}
    assert states == {TimerState.CANCELLED}
    assert client.get(path, headers=keys.ops_fz).json()["status"] == "accepted"


def test_urgent_sla_from_the_region_policy_and_a_retried_sweep(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Urgent orders use the policy's shorter window; a second sweep sends nothing twice."""
    keys = Keys(engine, clock)
    policy = {"accept_minutes": {"urgent": 5}, "grace_minutes": {"urgent": 2}}
    assert client.put("/v1/oao/policies/fz", json=policy, headers=keys.ops_fz).status_code == 200
    order = create(client, keys, clock, priority="urgent")
    sweep(engine, clock, timedelta(minutes=5))
    assert len(_outbox(engine)) == 1
    assert sweep(engine, clock, timedelta(seconds=30)) == 0
    sweep(engine, clock, timedelta(minutes=2))
    got = client.get(f"/v1/orders/{order['id']}", headers=keys.ops_fz).json()
    assert got["store_id"] == "fz-taijiang" and len(_outbox(engine)) == 1
