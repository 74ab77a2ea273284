"""Phone token -> node hears it -> the kiosk of that store sees the customer (only that kiosk)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.services.node_events import apply_node_event
from storewave.wire import CodeKind, DetectionBody, DetectionEvent
from tests.hub.factories import api_key, auth, seed, sign_in


def _heard(engine: Engine, clock: ManualClock, node: str, token: str) -> None:
    body = DetectionBody(
        code=token, kind=CodeKind.TOKEN, snr_db=9.0, confidence=0.8, first_heard=clock.now()
    )
    with Session(engine) as session:
        apply_node_event(session, DetectionEvent(node=node, boot=1, seq=1, body=body), clock.now())
        session.commit()


def test_kiosk_sees_customer_whose_token_its_node_heard(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """The token binds presence at the node's store/zone; other stores' kiosks cannot look."""
    seed(engine, clock)
    phone = auth(sign_in(client, engine, "+8613800138000"))
    issued = client.post("/v1/phone/tokens", headers=phone)
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert int(token, 16) >> 47 == 1  # the token kind bit
    me = client.get("/v1/me", headers=phone).json()["id"]
    _heard(engine, clock, "fz-gulou-n4", token)
    kiosk = auth(api_key(engine, clock, Role.KIOSK, store_id="fz-gulou"))
    present = client.get("/v1/stores/fz-gulou/presence", headers=kiosk).json()
    assert [(p["customer_id"], p["zone_id"]) for p in present] == [(me, "fz-gulou-counter")]
    other = auth(api_key(engine, clock, Role.KIOSK, store_id="xm-siming"))
    assert client.get("/v1/stores/fz-gulou/presence", headers=other).status_code == 404
    clock.advance(timedelta(minutes=15))
    assert client.get("/v1/stores/fz-gulou/presence", headers=kiosk).json() == []
