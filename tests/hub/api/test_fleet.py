"""Provisioning, one-time credentials, config republishing, key rotation, amqtt-safe configs."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.registry import Node
from hub.services.levels import range_to_level_dbfs
from hub.services.provisioning import NODE_PASSWORD_PURPOSE
from storewave.wire import CommandName
from tests.hub.doubles import RecordingNodeControl
from tests.hub.factories import CRYPTO, api_key, auth, checkin_body, live_code, seed, sign_in


def test_provision_returns_password_once_and_stores_hash(
    client: TestClient, engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> None:
    """The password is in the 201 response and at the broker; the DB keeps only its hash."""
    seed(engine, clock)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    resp = client.post(
        "/v1/nodes", json={"id": "fz-gulou-n9", "store_id": "fz-gulou"}, headers=admin
    )
    assert resp.status_code == 201
    password = resp.json()["mqtt_password"]
    assert node_control.passwords["fz-gulou-n9"] == password
    assert "password" not in client.get("/v1/nodes/fz-gulou-n9", headers=admin).text
    with Session(engine) as session:
        node = session.get(Node, "fz-gulou-n9")
        assert node.password_hash == CRYPTO.keyed_hash(NODE_PASSWORD_PURPOSE, password)
    dup = client.post(
        "/v1/nodes", json={"id": "fz-gulou-n9", "store_id": "fz-gulou"}, headers=admin
    )
    assert dup.status_code == 409
    bad = client.post("/v1/nodes", json={"id": "Bad/Id", "store_id": "fz-gulou"}, headers=admin)
    assert bad.status_code == 422
    reset = client.post("/v1/nodes/fz-gulou-n9/credentials", headers=admin).json()
    assert reset["mqtt_password"] != password == password
    assert node_control.passwords["fz-gulou-n9"] == reset["mqtt_password"]


def test_range_change_and_rotation_republish_higher_versions(
    client: TestClient, engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> None:
    """Each change publishes a retained config with a higher version and the new level/key."""
    seed(engine, clock, node_control)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    before = node_control.configs["fz-gulou-n1"][-1]
    changed = client.patch("/v1/beacons/101", json={"range_m": 3}, headers=admin)
    assert changed.json()["level_dbfs"] == range_to_level_dbfs(3)
    after_range = node_control.configs["fz-gulou-n1"][-1]
    assert after_range.version > before.version
    assert after_range.emit.level_dbfs == range_to_level_dbfs(3) < before.emit.level_dbfs
    old_code = live_code(engine, clock, 101)
    client.post("/v1/beacons/101/rotate", headers=admin)
    rotated = node_control.configs["fz-gulou-n1"][-1]
    assert rotated.version > after_range.version
    assert rotated.beacon is not None and rotated.beacon.key_hex != before.beacon.key_hex
    out_of_range = client.patch("/v1/beacons/101", json={"range_m": 30}, headers=admin)
    assert out_of_range.status_code == 422
    # A phone that heard the old key's code just before rotation still checks in.
    phone = auth(sign_in(client, engine, "+8613800138000"))
    ok = client.post("/v1/checkins", json=checkin_body(old_code, clock), headers=phone)
    assert ok.status_code == 200, ok.text
    clock.advance(timedelta(minutes=5))
    late = client.post("/v1/checkins", json=checkin_body(old_code, clock), headers=phone)
    assert late.status_code == 403


def test_amqtt_mode_keeps_keys_out_of_retained_config(engine: Engine, clock: ManualClock) -> None:
    """When retained messages leak (amqtt), the key goes in a non-retained set_beacon command."""
    leaky = RecordingNodeControl(retained_secrets_safe=False)
    seed(engine, clock, leaky)
    for node_id, configs in leaky.configs.items():
        assert all(c.beacon is None for c in configs), node_id
    command = leaky.commands["fz-gulou-n1"][-1]
    assert command.cmd is CommandName.SET_BEACON
    assert command.args["beacon"]["short_id"] == 101
    assert command.args["config_version"] == leaky.configs["fz-gulou-n1"][-1].version


def test_move_revoke_and_commands(
    client: TestClient, engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> None:
    """Moving checks the zone belongs to the store; revoke reaches the broker; commands go out."""
    seed(engine, clock)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    wrong = client.patch("/v1/nodes/fz-gulou-n1", json={"zone_id": "xm-huli-door"}, headers=admin)
    assert wrong.status_code == 422
    moved = client.patch("/v1/nodes/fz-gulou-n1", json={"store_id": "fz-taijiang"}, headers=admin)
    assert moved.json()["store_id"] == "fz-taijiang" and moved.json()["zone_id"] is None
    assert client.get("/v1/beacons/101", headers=admin).json()["store_id"] == "fz-taijiang"
    sent = client.post("/v1/nodes/fz-gulou-n2/commands", json={"cmd": "self_test"}, headers=admin)
    assert sent.status_code == 202
    assert node_control.commands["fz-gulou-n2"][-1].cmd is CommandName.SELF_TEST
    reserved = client.post(
        "/v1/nodes/fz-gulou-n2/commands", json={"cmd": "set_beacon"}, headers=admin
    )
    assert reserved.status_code == 422
    assert client.delete("/v1/nodes/fz-gulou-n2", headers=admin).status_code == 204
    assert node_control.revoked == ["fz-gulou-n2"]
    assert client.get("/v1/nodes/fz-gulou-n2", headers=admin).json()["state"] == "revoked"


def test_revoked_api_key_stops_working(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A revoked key gets 401 on its next request; a forged key never works."""
    seed(engine, clock)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    issued = client.post(
        "/v1/api-keys",
        json={"name": "ops", "role": "regional_ops", "region_id": "fz"},
        headers=admin,
    ).json()
    ops = auth(issued["key"])
    assert client.get("/v1/stores", headers=ops).status_code == 200
    assert (
        client.delete(f"/v1/api-keys/{issued['api_key']['id']}", headers=admin).status_code == 204
    )
    assert client.get("/v1/stores", headers=ops).status_code == 401
    forged = issued["key"][:-4] + "AAAA"
    assert client.get("/v1/stores", headers=auth(forged)).status_code == 401
    unscoped = client.post("/v1/api-keys", json={"name": "x", "role": "store_staff"}, headers=admin)
    assert unscoped.status_code == 422


def test_concurrent_creates_of_one_id_conflict_cleanly(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Six admins creating the same region at once: one 201, the rest 409, never a 500."""
    admin = auth(api_key(engine, clock, Role.ADMIN))
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def go() -> None:
        barrier.wait()
        resp = client.post("/v1/regions", json={"id": "qz", "name": "Quanzhou"}, headers=admin)
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201] + [409] * 5


def test_path_ids_past_what_the_database_stores_are_422_not_500(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A huge or negative id in the path is refused by validation (the fuzzer found SQLite's
    'Python int too large to convert to SQLite INTEGER' as a 500 here)."""
    seed(engine, clock)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    huge = 2**64
    for method, url in (
        ("GET", f"/v1/beacons/{huge}"),
        ("GET", "/v1/beacons/-1"),
        ("PATCH", f"/v1/beacons/{huge}"),
        ("POST", f"/v1/beacons/{huge}/rotate"),
        ("POST", f"/v1/alerts/{huge}/resolve"),
        ("POST", "/v1/alerts/0/resolve"),
    ):
        kwargs = {"json": {"range_m": 5}} if method == "PATCH" else {}
        resp = client.request(method, url, headers=admin, **kwargs)
        assert resp.status_code == 422, (method, url, resp.status_code, resp.text)
    assert client.get("/v1/beacons/131071", headers=admin).status_code == 404  # in range


def test_paging_offsets_past_what_the_database_stores_are_422_not_500(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A huge ``offset`` query parameter is refused by validation, not passed to the driver
    (SQLite's 'Python int too large to convert to SQLite INTEGER' was a 500 on each list)."""
    seed(engine, clock)
    admin = auth(api_key(engine, clock, Role.ADMIN))
    huge = 2**64
    for url in ("/v1/stores", "/v1/orders", "/v1/campaigns/cmp_none/grants"):
        resp = client.get(f"{url}?offset={huge}", headers=admin)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert resp.json()["detail"][0]["loc"] == ["query", "offset"]
        resp = client.get(f"{url}?offset={2**63 - 1}", headers=admin)
        assert resp.status_code in (200, 404), (url, resp.status_code, resp.text)
        if url != "/v1/campaigns/cmp_none/grants":
            assert resp.json() == []  # past the end: an empty page
