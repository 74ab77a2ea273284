"""Check-ins against the caches: registry and session changes take effect, consent is required."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from edge.modem.codes import beacon_code, slot_of, to_hex
from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.checkins import CheckinAttempt, Visit
from hub.models.registry import Beacon, Node, NodeState
from hub.services import registry_cache
from hub.services.auth import SESSION_CACHE_TTL
from hub.services.registry_cache import REGISTRY_CACHE_TTL
from tests.hub.factories import (
    CRYPTO,
    MIC_DISCLOSURE_VERSION,
    api_key,
    auth,
    checkin_body,
    live_code,
    seed,
    sign_in,
)

PHONE = "+8613800138000"
GULOU_DOOR = 101
# Gulou's hours in the seeds cover the test clock; these close it all week.
CLOSED_ALL_WEEK = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _check_in(
    client: TestClient, engine: Engine, clock: ManualClock, headers: dict[str, str], short_id: int
) -> tuple[int, dict[str, object]]:
    resp = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, short_id), clock),
        headers=headers,
    )
    return resp.status_code, resp.json()


def _world(client: TestClient, engine: Engine, clock: ManualClock) -> tuple[dict, dict]:
    """Seeded registry, an admin and a signed-in phone (whose first check-in filled the cache)."""
    seed(engine, clock)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    phone = auth(sign_in(client, engine, PHONE, device_id="dev-1"))
    status, body = _check_in(client, engine, clock, phone, GULOU_DOOR)
    assert status == 200, body
    return admin, phone


def test_checkin_needs_the_microphone_disclosure_accepted(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """403 microphone_not_accepted (nothing recorded) until accepted, and again once withdrawn."""
    seed(engine, clock)
    headers = auth(sign_in(client, engine, PHONE, accept_microphone=False))
    status, body = _check_in(client, engine, clock, headers, GULOU_DOOR)
    assert (status, body["code"]) == (403, "microphone_not_accepted")
    with Session(engine) as session:
        assert session.exec(select(CheckinAttempt)).all() == []
        assert session.exec(select(Visit)).all() == []
    accept = {"microphone_disclosure_version": MIC_DISCLOSURE_VERSION, "microphone_accepted": True}
    assert client.patch("/v1/me", json=accept, headers=headers).status_code == 200
    assert _check_in(client, engine, clock, headers, GULOU_DOOR)[0] == 200
    withdrawn = client.patch("/v1/me", json={"microphone_accepted": False}, headers=headers)
    assert withdrawn.status_code == 200
    status, body = _check_in(client, engine, clock, headers, GULOU_DOOR)
    assert (status, body["code"]) == (403, "microphone_not_accepted")


def test_rotated_key_works_at_once_and_old_key_for_the_window(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Right after a rotation the new key's codes verify (cache dropped), the old ones still do."""
    admin, phone = _world(client, engine, clock)
    old_code = live_code(engine, clock, GULOU_DOOR)
    assert client.post(f"/v1/beacons/{GULOU_DOOR}/rotate", headers=admin).status_code == 200
    new_code = live_code(engine, clock, GULOU_DOOR)
    assert new_code != old_code
    for code in (new_code, old_code):
        resp = client.post("/v1/checkins", json=checkin_body(code, clock), headers=phone)
        assert resp.status_code == 200, resp.text


def test_range_change_and_node_move_reach_the_cache(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A range change empties the cache; a moved node's beacon checks in at its new store."""
    admin, phone = _world(client, engine, clock)
    with Session(engine) as session:
        cache = registry_cache.cache_for(session)
    assert cache.size() > 0
    assert client.patch(f"/v1/beacons/{GULOU_DOOR}", json={"range_m": 3}, headers=admin).is_success
    assert cache.size() == 0
    moved = client.patch("/v1/nodes/fz-gulou-n1", json={"store_id": "fz-taijiang"}, headers=admin)
    assert moved.status_code == 200, moved.text
    clock.advance(timedelta(hours=2))  # a new visit, and no impossible travel within Fuzhou
    status, body = _check_in(client, engine, clock, phone, GULOU_DOOR)
    assert status == 200, body
    assert body["store_id"] == "fz-taijiang" and body["new_visit"] is True


def test_deleted_beacon_and_new_hours_take_effect_at_once(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """New opening hours refuse the next check-in; a deleted beacon's codes stop verifying."""
    admin, phone = _world(client, engine, clock)
    closed = client.patch(
        "/v1/stores/fz-gulou", json={"opening_hours": CLOSED_ALL_WEEK}, headers=admin
    )
    assert closed.status_code == 200, closed.text
    status, body = _check_in(client, engine, clock, phone, GULOU_DOOR)
    assert (status, body["code"]) == (403, "store_closed")
    code = live_code(engine, clock, 102)
    with Session(engine) as session:
        session.delete(session.get(Beacon, 102))
        session.commit()
    resp = client.post("/v1/checkins", json=checkin_body(code, clock), headers=phone)
    assert (resp.status_code, resp.json()["code"]) == (403, "bad_code")


def test_another_process_change_is_seen_within_the_ttl(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A key change no ORM event announces (another worker did it) applies once the TTL ends."""
    _, phone = _world(client, engine, clock)
    old_key, other_key = _key(engine, GULOU_DOOR), _key(engine, 103)
    with engine.begin() as conn:  # Core, as another process would: no event in this one
        conn.execute(
            text(
                "UPDATE beacon SET key_enc = (SELECT b.key_enc FROM beacon AS b "
                "WHERE b.short_id = 103) WHERE short_id = 101"
            )
        )
    old_key_code = _code(GULOU_DOOR, old_key, clock)
    ok = client.post("/v1/checkins", json=checkin_body(old_key_code, clock), headers=phone)
    assert ok.status_code == 200, ok.text  # still the cached key: stale for at most the TTL
    clock.advance(REGISTRY_CACHE_TTL)
    new_key_code = _code(GULOU_DOOR, other_key, clock)
    fresh = client.post("/v1/checkins", json=checkin_body(new_key_code, clock), headers=phone)
    assert fresh.status_code == 200, fresh.text
    stale = _code(GULOU_DOOR, old_key, clock)
    refused = client.post("/v1/checkins", json=checkin_body(stale, clock), headers=phone)
    assert (refused.status_code, refused.json()["code"]) == (403, "bad_code")


def test_sign_out_and_erase_end_a_cached_session_at_once(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """The session cache forgets a signed-out or erased session in this process at once."""
    _, phone = _world(client, engine, clock)
    assert client.get("/v1/me", headers=phone).status_code == 200
    assert client.delete("/v1/phone/session", headers=phone).status_code == 204
    assert client.get("/v1/me", headers=phone).status_code == 401
    assert _check_in(client, engine, clock, phone, GULOU_DOOR)[0] == 401
    again = auth(sign_in(client, engine, PHONE))
    assert client.get("/v1/me", headers=again).status_code == 200
    assert client.delete("/v1/me", headers=again).status_code == 200
    assert client.get("/v1/me", headers=again).status_code == 401


def test_revocation_elsewhere_stops_checkins_at_once_and_reads_within_the_ttl(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Revoked by another process: check-ins refuse it at once (401), other reads after the TTL."""
    _, phone = _world(client, engine, clock)
    assert client.get("/v1/me", headers=phone).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE customer_session SET revoked_at = created_at"))
    assert _check_in(client, engine, clock, phone, GULOU_DOOR)[0] == 401
    assert client.get("/v1/me", headers=phone).status_code == 200  # cached, as documented
    clock.advance(SESSION_CACHE_TTL)
    assert client.get("/v1/me", headers=phone).status_code == 401


def _key(engine: Engine, short_id: int) -> bytes:
    """Beacon ``short_id``'s current key, as the database has it."""
    with Session(engine) as session:
        beacon = session.get(Beacon, short_id)
        assert beacon is not None
        return bytes.fromhex(CRYPTO.decrypt(beacon.key_enc))


def _code(short_id: int, key: bytes, clock: ManualClock) -> str:
    """Beacon ``short_id``'s code for now, signed with ``key``."""
    return to_hex(beacon_code(short_id, key, slot_of(clock.now().timestamp())))


def test_checkin_authenticates_in_its_own_transaction(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Unknown, malformed or expired phone sessions get 401; a staff key 403; nothing recorded."""
    seed(engine, clock)
    token = sign_in(client, engine, PHONE)
    staff = auth(api_key(engine, clock, Role.STORE_STAFF, store_id="fz-gulou"))
    body = checkin_body(live_code(engine, clock, GULOU_DOOR), clock)
    for headers, status in (
        (auth("sws_00000000_" + "x" * 32), 401),
        (auth("sws_nonsense"), 401),
        (staff, 403),
    ):
        assert client.post("/v1/checkins", json=body, headers=headers).status_code == status
    clock.advance(timedelta(days=31))  # past the session's 30 days
    expired = client.post(
        "/v1/checkins",
        json=checkin_body(live_code(engine, clock, GULOU_DOOR), clock),
        headers=auth(token),
    )
    assert expired.status_code == 401
    with Session(engine) as session:
        assert session.exec(select(CheckinAttempt)).all() == []


def test_a_revoked_nodes_beacon_stops_checking_in_at_once(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Revoking a node refuses its beacon's genuine codes (node_revoked) at once, a forged one
    stays bad_code (nothing learnt); new credentials reinstate it."""
    admin, phone = _world(client, engine, clock)
    assert client.delete("/v1/nodes/fz-gulou-n1", headers=admin).status_code == 204
    status, body = _check_in(client, engine, clock, phone, GULOU_DOOR)
    assert (status, body["code"]) == (403, "node_revoked")
    forged = _code(GULOU_DOOR, bytes(32), clock)
    resp = client.post("/v1/checkins", json=checkin_body(forged, clock), headers=phone)
    assert (resp.status_code, resp.json()["code"]) == (403, "bad_code")
    with Session(engine) as session:
        outcomes = [
            a.outcome for a in session.exec(select(CheckinAttempt).order_by(CheckinAttempt.id))
        ]
    assert outcomes[-2:] == ["node_revoked", "bad_code"]
    reset = client.post("/v1/nodes/fz-gulou-n1/credentials", headers=admin)
    assert reset.status_code == 200, reset.text
    clock.advance(timedelta(minutes=10))  # past the failure window
    assert _check_in(client, engine, clock, phone, GULOU_DOOR)[0] == 200


def test_a_node_revoked_or_deleted_elsewhere_stops_within_the_ttl(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Revoked or deleted by another process (no ORM event here): refused once the TTL ends."""
    _, phone = _world(client, engine, clock)
    with engine.begin() as conn:
        conn.execute(text("UPDATE node SET state = 'revoked' WHERE id = 'fz-gulou-n1'"))
    assert _check_in(client, engine, clock, phone, GULOU_DOOR)[0] == 200  # cached: stale
    clock.advance(REGISTRY_CACHE_TTL)
    status, body = _check_in(client, engine, clock, phone, GULOU_DOOR)
    assert (status, body["code"]) == (403, "node_revoked")
    counter = 104
    assert _check_in(client, engine, clock, phone, counter)[0] == 200
    code = live_code(engine, clock, counter)
    with engine.begin() as conn:
        node = conn.execute(text(f"SELECT node_id FROM beacon WHERE short_id = {counter}")).one()
        conn.execute(text(f"DELETE FROM beacon WHERE short_id = {counter}"))
        conn.execute(text("DELETE FROM node WHERE id = :id"), {"id": node.node_id})
    clock.advance(REGISTRY_CACHE_TTL)
    resp = client.post("/v1/checkins", json=checkin_body(code, clock), headers=phone)
    assert (resp.status_code, resp.json()["code"]) == (403, "bad_code")


def test_node_liveness_updates_keep_the_registry_cache(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Ingest's last-seen/state/health writes leave the cache; a move or revocation empties it."""
    _, phone = _world(client, engine, clock)
    with Session(engine) as session:
        cache = registry_cache.cache_for(session)
        assert cache.size() > 0
        node = session.get(Node, "fz-gulou-n1")
        assert node is not None
        node.last_seen_at = clock.now()
        node.state = NodeState.ONLINE.value
        node.health = {"temperature_c": 41.0}
        node.reported_config_version = 3
        session.add(node)
        session.commit()
        assert cache.size() > 0
        node.state = NodeState.REVOKED.value
        session.add(node)
        session.flush()
        assert cache.size() == 0
        session.rollback()
    assert _check_in(client, engine, clock, phone, GULOU_DOOR)[0] == 200
    with Session(engine) as session:
        assert cache.size() > 0
        node = session.get(Node, "fz-gulou-n2")
        assert node is not None
        node.zone_id = None
        session.add(node)
        session.flush()
        assert cache.size() == 0
