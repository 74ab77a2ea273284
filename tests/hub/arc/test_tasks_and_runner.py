"""Staff tasks over the API (scope, close once) and the background outbox runner."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.customers import Customer
from hub.services import outbox
from tests.hub.arc.helpers import enrol, make_customer, messages, publish
from tests.hub.factories import CRYPTO, api_key, auth, seed

# The runner sweeps every 20 ms; the test gives it at most 10 s (a loaded machine).
SWEEP_S = 0.02
WAIT_LIMIT_S = 10.0


def test_staff_close_their_store_tasks_once(
    client: TestClient, arc_engine: Engine, clock: ManualClock
) -> None:
    """Gulou staff see and close the call task; Siming staff get 404; closing twice is 409."""
    seed(arc_engine, clock)
    publish(arc_engine, clock, {"name": "calls", "start": "call", "steps": [
        {"id": "call", "type": "task", "kind": "call", "title": "Call back", "due_in": "PT2H"}]})
    cid, _ = make_customer(arc_engine, clock)
    enrol(arc_engine, clock, "calls", cid, store_id="fz-gulou")
    gulou = auth(api_key(arc_engine, clock, Role.STORE_STAFF, store_id="fz-gulou"))
    siming = auth(api_key(arc_engine, clock, Role.STORE_STAFF, store_id="xm-siming"))
    tasks = client.get("/v1/stores/fz-gulou/tasks", headers=gulou).json()
    assert [(t["kind"], t["title"], t["state"]) for t in tasks] == [("call", "Call back", "open")]
    task_id = tasks[0]["id"]
    assert client.get("/v1/stores/fz-gulou/tasks", headers=siming).status_code == 404
    assert client.post(f"/v1/tasks/{task_id}/done", headers=siming, json={}).status_code == 404
    done = client.post(f"/v1/tasks/{task_id}/done", headers=gulou, json={"outcome": "reached"})
    assert done.status_code == 200 and done.json()["state"] == "done"
    again = client.post(f"/v1/tasks/{task_id}/done", headers=gulou, json={})
    assert (again.status_code, again.json()["code"]) == (409, "task_closed")
    assert client.get("/v1/stores/fz-gulou/tasks", headers=gulou).json() == []


def test_outbox_runner_sends_in_the_background(arc_engine: Engine, clock: ManualClock) -> None:
    """The runner thread picks up a queued message within its sweep and stops cleanly."""
    cid, _ = make_customer(arc_engine, clock)
    with Session(arc_engine) as s:
        customer = s.get(Customer, cid)
        assert customer is not None
        outbox.enqueue_message(s, channel="push", customer_id=cid,
                               recipient_enc=customer.phone_enc, body="hi", dedupe_key="r1",
                               now=clock.now())
        s.commit()
    sender = outbox.LogSender()
    runner = outbox.OutboxRunner(arc_engine, CRYPTO, sender, clock, interval_s=SWEEP_S)
    runner.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while sender.sent == 0 and time.monotonic() < deadline:
            time.sleep(SWEEP_S)
    finally:
        runner.stop()
    assert sender.sent == 1
    clock.advance(timedelta(minutes=1))
    assert [s for _, _, s in messages(arc_engine, cid)] == ["sent"]
