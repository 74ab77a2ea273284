"""POST /v1/checkins through the real app: valid, replayed, expired, forged codes; fraud rules."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from edge.modem.codes import beacon_code, new_phone_token, to_hex
from hub.clock import ManualClock
from hub.models.checkins import Visit, VisitZone
from hub.models.registry import Store
from hub.services import fraud
from tests.hub.factories import auth, checkin_body, live_code, seed, sign_in

PHONE = "+8613800138000"
GULOU_DOOR, GULOU_COUNTER, XIAMEN_DOOR = 101, 104, 401


def _phone(client: TestClient, engine: Engine, clock: ManualClock) -> dict[str, str]:
    seed(engine, clock)
    return auth(sign_in(client, engine, PHONE, device_id="dev-1"))


def test_valid_checkin_opens_visit_and_tracks_zone_path(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """First code: a new visit; a code from another zone extends it, without a second visit."""
    headers = _phone(client, engine, clock)
    first = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
        headers=headers,
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["store_id"] == "fz-gulou" and body["zone_id"] == "fz-gulou-door"
    assert body["new_visit"] is True and body["grants"] == []
    clock.advance(timedelta(minutes=3))
    second = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_COUNTER), clock),
        headers=headers,
    )
    assert second.status_code == 200, second.text
    assert second.json()["visit_id"] == body["visit_id"] and second.json()["new_visit"] is False
    visits = client.get("/v1/me/visits", headers=headers).json()
    assert [v["zone_path"] for v in visits] == [["fz-gulou-door", "fz-gulou-counter"]]
    clock.advance(timedelta(hours=2))
    third = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
        headers=headers,
    )
    assert third.json()["new_visit"] is True and third.json()["visit_id"] != body["visit_id"]


def test_adjacent_slot_accepted_replay_refused(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A code from the previous slot is accepted (skew); the same recording later is refused."""
    headers = _phone(client, engine, clock)
    code = live_code(engine, clock, GULOU_DOOR, slot_offset=-1)
    assert (
        client.post("/v1/checkins", json=checkin_body(code, clock), headers=headers).status_code
        == 200
    )
    clock.advance(timedelta(minutes=5))
    replay = client.post("/v1/checkins", json=checkin_body(code, clock), headers=headers)
    assert replay.status_code == 403
    assert replay.json() == {"detail": "code not accepted", "code": "bad_code"}


def test_future_and_forged_codes_refused(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Codes two slots ahead, with a wrong key, of an unknown beacon, or a token: refused."""
    headers = _phone(client, engine, clock)
    ahead = live_code(engine, clock, GULOU_DOOR, slot_offset=2)
    forged = to_hex(beacon_code(GULOU_DOOR, bytes(32), int(clock.now().timestamp()) // 30))
    unknown = to_hex(beacon_code(99_999, bytes(32), int(clock.now().timestamp()) // 30))
    for code, reason in ((ahead, "bad_code"), (forged, "bad_code"), (unknown, "bad_code")):
        resp = client.post("/v1/checkins", json=checkin_body(code, clock), headers=headers)
        assert (resp.status_code, resp.json()["code"]) == (403, reason)
    token = client.post(
        "/v1/checkins", json=checkin_body(to_hex(new_phone_token()), clock), headers=headers
    )
    assert token.json()["code"] == "not_beacon"
    with Session(engine) as session:
        assert session.exec(select(Visit)).all() == []


def test_stale_heard_at_refused(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """A heard_at minutes away from the hub's clock is refused."""
    headers = _phone(client, engine, clock)
    body = checkin_body(live_code(engine, clock, GULOU_DOOR), clock)
    body["heard_at"] = (clock.now() - timedelta(minutes=10)).isoformat()
    resp = client.post("/v1/checkins", json=body, headers=headers)
    assert resp.json()["code"] == "stale_heard_at"


def test_closed_store_refused_in_its_own_time_zone(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Cangshan closes 12:00-13:30 local (Asia/Shanghai): 04:45 UTC is 12:45 there."""
    headers = _phone(client, engine, clock)
    clock.set(clock.now().replace(hour=4, minute=45))
    resp = client.post(
        "/v1/checkins", json=checkin_body(live_code(engine, clock, 301), clock), headers=headers
    )
    assert resp.json()["code"] == "store_closed"
    clock.advance(timedelta(minutes=50))  # 13:35 local
    ok = client.post(
        "/v1/checkins", json=checkin_body(live_code(engine, clock, 301), clock), headers=headers
    )
    assert ok.status_code == 200, ok.text


def test_impossible_travel_refused(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Fuzhou then Xiamen (~200 km) 20 minutes later is refused; four hours later is fine."""
    headers = _phone(client, engine, clock)
    assert (
        client.post(
            "/v1/checkins",
            json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
            headers=headers,
        ).status_code
        == 200
    )
    clock.advance(timedelta(minutes=20))
    resp = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, XIAMEN_DOOR), clock),
        headers=headers,
    )
    assert resp.json()["code"] == "impossible_travel"
    clock.advance(timedelta(hours=4))
    ok = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, XIAMEN_DOOR), clock),
        headers=headers,
    )
    assert ok.status_code == 200, ok.text


def test_rate_limits_per_customer_and_failures(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Repeated failures lock the customer out for a while (429 with Retry-After)."""
    headers = _phone(client, engine, clock)
    forged = to_hex(beacon_code(GULOU_DOOR, bytes(32), 1))
    codes = [
        client.post("/v1/checkins", json=checkin_body(forged, clock), headers=headers).status_code
        for _ in range(fraud.MAX_FAILURES_PER_CUSTOMER + 1)
    ]
    assert codes[:-1] == [403] * fraud.MAX_FAILURES_PER_CUSTOMER and codes[-1] == 429
    locked = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
        headers=headers,
    )
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    clock.advance(fraud.FAILURE_WINDOW + timedelta(seconds=1))
    ok = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
        headers=headers,
    )
    assert ok.status_code == 200


def test_rate_limit_per_device(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """One device driving many accounts is capped."""
    seed(engine, clock)
    tokens = [
        sign_in(client, engine, f"+86138001390{i:02d}")
        for i in range(fraud.MAX_ATTEMPTS_PER_DEVICE + 1)
    ]
    statuses = []
    for token in tokens:
        resp = client.post(
            "/v1/checkins",
            json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock, "shared-dev"),
            headers=auth(token),
        )
        statuses.append(resp.status_code)
    assert statuses[:-1] == [200] * fraud.MAX_ATTEMPTS_PER_DEVICE
    assert statuses[-1] == 429


def test_code_used_beyond_capacity_refused(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A code used by more customers than the store holds (a posted recording) is refused."""
    seed(engine, clock)
    with Session(engine) as session:
        store = session.get(Store, "fz-gulou")
        store.capacity = 2
        session.add(store)
        session.commit()
    code = live_code(engine, clock, GULOU_DOOR)
    results = []
    for i in range(3):
        token = sign_in(client, engine, f"+86138001400{i:02d}")
        results.append(
            client.post(
                "/v1/checkins", json=checkin_body(code, clock, f"d{i}"), headers=auth(token)
            ).status_code
        )
    assert results == [200, 200, 403]


def test_concurrent_checkins_make_one_visit(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Eight simultaneous check-ins of one customer: exactly one new visit."""
    headers = _phone(client, engine, clock)
    code = live_code(engine, clock, GULOU_DOOR)
    results: list[dict[str, object]] = []
    barrier = threading.Barrier(8)

    def go(i: int) -> None:
        barrier.wait()
        resp = client.post(
            "/v1/checkins", json=checkin_body(code, clock, f"dev-{i}"), headers=headers
        )
        results.append(resp.json())

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(1 for r in results if r.get("new_visit") is True) == 1
    assert len({r["visit_id"] for r in results}) == 1
    with Session(engine) as session:
        assert len(session.exec(select(Visit)).all()) == 1
        assert len(session.exec(select(VisitZone)).all()) == 1


def test_invalid_bodies_are_422_with_field_names(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Malformed check-ins say which field is wrong."""
    headers = _phone(client, engine, clock)
    cases = [
        ({"code": "xyz", "heard_at": clock.now().isoformat()}, "code"),
        ({"code": "0123456789ab"}, "heard_at"),
        ({"code": "0123456789ab", "heard_at": "2026-11-30T03:00:00"}, "heard_at"),
        ({"code": "0123456789ab", "heard_at": clock.now().isoformat(), "extra": 1}, "extra"),
    ]
    for body, field in cases:
        resp = client.post("/v1/checkins", json=body, headers=headers)
        assert resp.status_code == 422
        assert field in {str(p) for err in resp.json()["detail"] for p in err["loc"]}


def test_checkin_needs_phone_session(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """No token: 401."""
    seed(engine, clock)
    resp = client.post(
        "/v1/checkins", json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock)
    )
    assert resp.status_code == 401
