"""Cross-sell ranking: main and secondary pushes from tags and attributes, with reasons."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.customers import Customer
from hub.services.oao.crosssell import Profile, rank
from tests.hub.factories import CRYPTO
from tests.hub.oao.helpers import Keys


def test_ranking_adds_rule_weights_and_keeps_every_reason() -> None:
    """Copper broadband + heavy video: fibre leads (two reasons), then STB, data add-on."""
    profile = Profile(
        {("basic", "broadband"): "100M copper", ("application", "video_app"): "heavy"},
        age_band=None,
    )
    ranked = rank(profile)
    assert [o.code for o in ranked] == ["fibre_1000m", "iptv_stb", "data_addon"]
    assert ranked[0].score == 5.0
    assert ranked[0].reason == "broadband is copper or at most 100M; heavy video use"
    assert ranked[1].reason == "watches video but has no set-top box"


def test_attributes_and_ties_are_deterministic() -> None:
    """Equal scores order by offer code; a profile with nothing known gets nothing."""
    senior = rank(Profile({("profile", "family"): ""}, age_band="65+"))
    assert [(o.code, o.score) for o in senior] == [
        ("family_bundle", 3.0),
        ("senior_care", 3.0),
        ("secondary_card", 2.0),
    ]
    assert rank(Profile({}, age_band=None)) == []


def test_endpoint_for_agent_and_kiosk(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """A store's kiosk gets main + at most two secondary pushes; unknown customer is 404."""
    keys = Keys(engine, clock)
    with Session(engine) as session:
        session.add(
            Customer(
                id="cus_x",
                phone_hash="h-x",
                phone_enc=CRYPTO.encrypt("+861"),
                age_band="18-24",
                created_at=clock.now(),
            )
        )
        session.commit()
    for kind, name, value in (
        ("application", "video_app", "heavy"),
        ("application", "photo_app", ""),
        ("basic", "plan", "4G 59"),
    ):
        client.put(
            "/v1/customers/cus_x/tags",
            json={"kind": kind, "name": name, "value": value},
            headers=keys.admin,
        )
    resp = client.get(
        "/v1/stores/fz-gulou/customers/cus_x/cross-sell", headers=keys.staff["fz-gulou"]
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["main_push"]["code"] == "iptv_stb"
    assert [o["code"] for o in body["secondary_push"]] == ["cloud_storage", "data_addon"]
    assert all(o["reason"] for o in [body["main_push"], *body["secondary_push"]])
    missing = client.get("/v1/stores/fz-gulou/customers/cus_nobody/cross-sell", headers=keys.admin)
    assert missing.status_code == 404
