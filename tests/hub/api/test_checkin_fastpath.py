"""The check-in's fast path (hub.api.fastpath) answers exactly as the FastAPI route does.

A body declared ``application/json`` from a phone session is served by the fast path; the
same request declared ``application/vnd.storewave+json`` (JSON to FastAPI, not to the fast
path) goes through the route. Both must give the same status, body and Retry-After.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from edge.modem.codes import beacon_code, slot_of, to_hex
from hub.api.fastpath import MAX_FAST_BODY, CheckinFastPath
from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.checkins import CheckinAttempt, Visit
from hub.services import fraud
from tests.hub.factories import api_key, auth, checkin_body, live_code, seed, sign_in

GULOU_DOOR, GULOU_COUNTER = 101, 104
FAST = "application/json"
ROUTE = "application/vnd.storewave+json"


def _fast_path(client: TestClient) -> CheckinFastPath:
    """The app's CheckinFastPath middleware instance (the stack is built on first request)."""
    layer: Any = client.app.middleware_stack  # type: ignore[attr-defined]
    while layer is not None and not isinstance(layer, CheckinFastPath):
        layer = getattr(layer, "app", None)
    assert layer is not None, "CheckinFastPath is not in the middleware stack"
    return layer


def _post(
    client: TestClient, body: Any, headers: dict[str, str], content_type: str
) -> tuple[int, Any, str | None]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = client.post(
        "/v1/checkins", content=raw, headers={**headers, "Content-Type": content_type}
    )
    return resp.status_code, resp.json(), resp.headers.get("retry-after")


def _world(client: TestClient, engine: Engine, clock: ManualClock) -> list[dict[str, str]]:
    seed(engine, clock)
    return [
        auth(sign_in(client, engine, f"+86138001380{i:02d}", device_id=f"dev-{i}"))
        for i in range(2)
    ]


def test_fast_path_and_route_give_the_same_answers(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Accepted, same visit, forged, stale, rate limited, revoked session: twin answers."""
    phones = _world(client, engine, clock)
    assert client.get("/healthz").status_code == 200  # builds the middleware stack
    fast_path = _fast_path(client)
    answers: dict[str, list[tuple[int, Any, str | None]]] = {FAST: [], ROUTE: []}
    for phone, content_type in zip(phones, (FAST, ROUTE), strict=True):
        out = answers[content_type]
        slot = slot_of(clock.now().timestamp())
        door = checkin_body(live_code(engine, clock, GULOU_DOOR), clock, device_id=None)
        out.append(_post(client, door, phone, content_type))  # accepted, new visit
        counter = checkin_body(live_code(engine, clock, GULOU_COUNTER), clock, device_id=None)
        out.append(_post(client, counter, phone, content_type))  # same visit
        forged = {**door, "code": to_hex(beacon_code(GULOU_DOOR, bytes(32), slot))}
        out.append(_post(client, forged, phone, content_type))  # bad_code
        stale = {**door, "heard_at": (clock.now() - timedelta(minutes=5)).isoformat()}
        out.append(_post(client, stale, phone, content_type))  # stale_heard_at
        for _ in range(fraud.MAX_FAILURES_PER_CUSTOMER):
            last = _post(client, forged, phone, content_type)
        out.append(last)  # failure_rate: 429 with Retry-After
        if content_type == FAST:
            # Only the answers so far came from the fast path; the route's come next.
            assert fast_path._executor is not None
    for fast, route in zip(answers[FAST], answers[ROUTE], strict=True):
        fast_status, fast_body, fast_retry = fast
        route_status, route_body, route_retry = route
        assert (fast_status, fast_retry) == (route_status, route_retry)
        if fast_status == 200:  # different visits, same shape
            assert fast_body.keys() == route_body.keys()
            assert {k: fast_body[k] for k in ("store_id", "zone_id", "new_visit", "grants")} == {
                k: route_body[k] for k in ("store_id", "zone_id", "new_visit", "grants")
            }
        else:
            assert fast_body == route_body
    assert [a[0] for a in answers[FAST]] == [200, 200, 403, 403, 429]
    assert [a[1].get("code") for a in answers[FAST][2:]] == [
        "bad_code",
        "stale_heard_at",
        "failure_rate",
    ]
    assert answers[FAST][4][2] == str(int(fraud.FAILURE_WINDOW.total_seconds()))
    # A session revoked by another process: 401 on both paths, nothing recorded.
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer_session SET revoked_at = created_at"))
    with Session(engine) as session:
        attempts = len(session.exec(select(CheckinAttempt)).all())
    for phone, content_type in zip(phones, (FAST, ROUTE), strict=True):
        body = checkin_body(live_code(engine, clock, GULOU_DOOR), clock)
        status, detail, _ = _post(client, body, phone, content_type)
        assert (status, detail["code"]) == (401, "unauthorized")
    with Session(engine) as session:
        assert len(session.exec(select(CheckinAttempt)).all()) == attempts


def test_what_the_fast_path_leaves_to_the_route(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Staff keys 403, no token 401, bad JSON or fields 422, unknown session 401."""
    phone = _world(client, engine, clock)[0]
    body = checkin_body(live_code(engine, clock, GULOU_DOOR), clock)
    staff = auth(api_key(engine, clock, Role.STORE_STAFF, store_id="fz-gulou"))
    assert _post(client, body, staff, FAST)[0] == 403
    assert _post(client, body, {}, FAST)[0] == 401
    assert _post(client, body, {"Authorization": "Basic c3dzX3g6eA=="}, FAST)[0] == 401
    status, detail, _ = _post(client, b"{not json", phone, FAST)
    assert status == 422 and detail["detail"][0]["type"] == "json_invalid"
    status, detail, _ = _post(client, {**body, "code": "xyz"}, phone, FAST)
    assert status == 422 and "code" in detail["detail"][0]["loc"]
    unknown = {"Authorization": "Bearer sws_nobody_0123456789abcdef"}
    status, detail, _ = _post(client, body, unknown, FAST)
    assert (status, detail["code"]) == (401, "unauthorized")
    with Session(engine) as session:
        assert session.exec(select(CheckinAttempt)).all() == []


def test_a_large_streamed_body_is_replayed_to_the_route(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A body streamed in chunks past MAX_FAST_BODY reaches the route whole and is served."""
    phone = _world(client, engine, clock)[0]
    assert client.get("/healthz").status_code == 200
    app = client.app
    body = json.dumps(checkin_body(live_code(engine, clock, GULOU_DOOR), clock)).encode()
    padded = body[:-1] + b" " * (MAX_FAST_BODY * 2) + b"}"
    chunk = MAX_FAST_BODY // 2 + 1
    chunks = [padded[i : i + chunk] for i in range(0, len(padded), chunk)]
    token = phone["Authorization"].encode()
    sent: list[dict[str, Any]] = []

    async def call() -> None:
        pending = list(chunks)

        async def receive() -> dict[str, Any]:
            if pending:
                part = pending.pop(0)
                return {"type": "http.request", "body": part, "more_body": bool(pending)}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/checkins",
            "raw_path": b"/v1/checkins",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"hub"),
                (b"authorization", token),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(padded)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "state": {},
        }
        await app(scope, receive, send)  # type: ignore[arg-type]

    asyncio.run(call())
    assert len(chunks) > 2
    assert sent[0]["status"] == 200, sent
    answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert answer["store_id"] == "fz-gulou" and answer["new_visit"] is True
    with Session(engine) as session:
        assert len(session.exec(select(Visit)).all()) == 1


def _checkins_counted(client: TestClient, status: str) -> float:
    """storewave_api_requests_total for POST /v1/checkins with ``status`` (e.g. "2xx")."""
    for row in client.get("/metrics").text.splitlines():
        if (
            row.startswith("storewave_api_requests_total{")
            and 'route="/v1/checkins"' in row
            and 'method="POST"' in row
            and f'status="{status}"' in row
        ):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


def test_fast_path_check_ins_are_counted_under_the_route(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """The API metrics label fast-path check-ins with the route template and status class."""
    phone = _world(client, engine, clock)[0]
    body = checkin_body(live_code(engine, clock, GULOU_DOOR), clock)
    ok, refused = _checkins_counted(client, "2xx"), _checkins_counted(client, "4xx")
    assert _post(client, body, phone, FAST)[0] == 200
    clock.advance(timedelta(minutes=10))  # the code is stale now: 403
    assert _post(client, body, phone, FAST)[0] == 403
    assert _checkins_counted(client, "2xx") == ok + 1
    assert _checkins_counted(client, "4xx") == refused + 1
