"""The installer loop: sheet on an accepted install order, store fills, installer reads/closes."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.customers import Customer
from tests.hub.factories import CRYPTO, auth
from tests.hub.oao.helpers import Keys, create


def _installer(client: TestClient, keys: Keys, name: str) -> tuple[str, dict[str, str]]:
    """A new installer key of region fz: (key id, headers)."""
    resp = client.post(
        "/v1/api-keys",
        json={"name": name, "role": "installer", "region_id": "fz"},
        headers=keys.admin,
    )
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["api_key"]["id"], auth(resp.json()["key"])


def _customer_with_tags(client: TestClient, engine: Engine, clock: ManualClock, keys: Keys) -> str:
    with Session(engine) as session:
        session.add(
            Customer(
                id="cus_fibre",
                phone_hash="h-fibre",
                phone_enc=CRYPTO.encrypt("+8613000000001"),
                created_at=clock.now(),
            )
        )
        session.commit()
    for name, value in (
        ("plan", "4G 59"),
        ("broadband", "100M copper"),
        ("spend_3m", "58,61.5,59"),
        ("secondary_cards", "many"),
    ):
        resp = client.put(
            "/v1/customers/cus_fibre/tags",
            json={"kind": "basic", "name": name, "value": value},
            headers=keys.admin,
        )
        assert resp.status_code == 200, resp.text
    return "cus_fibre"


def test_installation_sheet_loop_is_closed_and_reported(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Pre-filled from the customer, completed by the store, read and closed by the installer."""
    keys = Keys(engine, clock)
    installer_id, installer = _installer(client, keys, "crew 1")
    _, stranger = _installer(client, keys, "crew 2")
    profile = {
        "skills": ["broadband_install"],
        "order_capacity": 5,
        "installer_key_id": installer_id,
    }
    assert (
        client.put(
            "/v1/oao/stores/fz-taijiang/profile", json=profile, headers=keys.ops_fz
        ).status_code
        == 200
    )
    customer = _customer_with_tags(client, engine, clock, keys)
    order = create(client, keys, clock, product="broadband_install", customer_id=customer)
    assert order["store_id"] == "fz-taijiang"
    taijiang = keys.staff["fz-taijiang"]
    assert client.get("/v1/sheets", headers=taijiang).json() == []  # not before acceptance
    client.post(f"/v1/orders/{order['id']}/accept", headers=taijiang)
    [sheet] = client.get("/v1/sheets", headers=taijiang).json()
    assert sheet["order_id"] == order["id"] and sheet["status"] == "open"
    assert (sheet["current_plan"], sheet["broadband"], sheet["spend_3m"]) == (
        "4G 59",
        "100M copper",
        [58.0, 61.5, 59.0],
    )
    assert sheet["secondary_cards"] is None  # "many" is not a number: left for the store
    path = f"/v1/sheets/{sheet['id']}"
    early = client.post(f"{path}/outcome", json={"outcome": "converted"}, headers=installer)
    assert early.status_code == 409 and early.json()["code"] == "sheet_not_filled"
    fill = {"secondary_cards": 1, "set_top_box": "none", "suggestion": "1000M fibre + IPTV"}
    filled = client.put(path, json=fill, headers=taijiang).json()
    assert filled["status"] == "filled" and filled["current_plan"] == "4G 59"
    assert client.get(path, headers=stranger).status_code == 404
    assert client.get("/v1/sheets", headers=stranger).json() == []
    first_read = client.get(path, headers=installer).json()["read_at"]
    assert first_read is not None and client.get(path, headers=taijiang).status_code == 200
    clock.advance(timedelta(minutes=5))
    assert client.get(path, headers=installer).json()["read_at"] == first_read
    assert client.put(path, json=fill, headers=installer).status_code == 403
    clock.advance(timedelta(hours=5))
    closed = client.post(
        f"{path}/outcome", json={"outcome": "converted", "note": "took it"}, headers=installer
    )
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = client.post(f"{path}/outcome", json={"outcome": "no_visit"}, headers=installer)
    assert again.status_code == 409 and again.json()["code"] == "sheet_closed"
    assert client.put(path, json=fill, headers=taijiang).status_code == 409
    report = client.get("/v1/oao/reports/sheets", headers=keys.ops_fz).json()
    assert report == {
        "fz-taijiang": {"total": 1, "open": 0, "late": 0, "closed": 1, "converted": 1}
    }


def test_open_sheet_past_its_window_is_late(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A sheet nobody closed by the end of the visit window counts as late."""
    keys = Keys(engine, clock)
    assert (
        client.put(
            "/v1/oao/stores/fz-gulou/profile",
            json={"skills": ["broadband_install"]},
            headers=keys.ops_fz,
        ).status_code
        == 200
    )
    order = create(client, keys, clock, product="broadband_install")
    client.post(f"/v1/orders/{order['id']}/accept", headers=keys.staff["fz-gulou"])
    before = client.get("/v1/oao/reports/sheets", headers=keys.admin).json()
    assert before["fz-gulou"]["late"] == 0 and before["fz-gulou"]["open"] == 1
    clock.advance(timedelta(hours=8))  # the window ends 7 h after the order was placed
    after = client.get("/v1/oao/reports/sheets", headers=keys.admin).json()
    assert after["fz-gulou"] == {"total": 1, "open": 1, "late": 1, "closed": 0, "converted": 0}
