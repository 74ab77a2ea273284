"""Hub kiosk endpoints for the customer at the kiosk: presence gate, wallet, trials, pickup."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import Session

from hub.embedded import EmbeddedHub
from hub.models.auth import Role
from hub.models.checkins import Presence
from hub.models.customers import Customer
from hub.services.kiosk import PRESENCE_SIGNIN_WINDOW
from storewave.demo_world import sign_in_phone
from tests.hub.oao.helpers import NEAR_GULOU
from tests.kiosk.conftest import STORE
from tests.kiosk.helpers import hear_token

_orders = itertools.count(1)
_others = itertools.count(1)


def _customer(hub: EmbeddedHub, phone: str) -> tuple[str, str, str]:
    """A signed-up customer (SMS consent given): id, phone session, a fresh phone token."""
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    token = own.post("/v1/phone/tokens").json()["token"]
    session = str(own.headers["Authorization"]).removeprefix("Bearer ")
    own.close()
    return customer_id, session, token


def _other_phone() -> str:
    """A number no phone fixture hands out (someone else at the kiosk)."""
    return f"+86136{next(_others):08d}"


def _at(customer_id: str) -> str:
    return f"/v1/stores/{STORE}/kiosk/customers/{customer_id}"


def _order_ready_at_gulou(hub: EmbeddedHub, customer_id: str, product: str = "sim_card") -> str:
    """An online order placed for the customer, dispatched to Gulou and accepted there."""
    start = hub.clock.now() + timedelta(hours=2)
    body = {
        "client_order_key": f"wx-kiosk-{next(_orders):04d}", "channel": "official_account",
        "product": product, "region_id": "fz", "customer_id": customer_id,
        "address": "12 Dongjie Rd", "latitude": NEAR_GULOU[0], "longitude": NEAR_GULOU[1],
        "window_start": start.isoformat(), "window_end": (start + timedelta(hours=4)).isoformat(),
    }
    with hub.client() as admin:
        order = admin.post("/v1/orders", json=body).json()
    assert order["store_id"] == STORE, order
    with hub.client(hub.api_key(Role.STORE_STAFF, store_id=STORE)) as staff:
        assert staff.post(f"/v1/orders/{order['id']}/accept").status_code == 200
    return str(body["client_order_key"])


def _code(resp: httpx.Response) -> Any:
    return resp.json().get("code")


def test_wallet_needs_the_customer_at_this_kiosk(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """Token heard here just now, or the customer's own session: yes; else 403; other store 404."""
    customer_id, session, token = _customer(hub, phone)
    with hub.client() as admin:
        body = {"points": 30, "reason": "welcome", "client_key": f"adj-{customer_id}"}
        assert admin.post(f"/v1/customers/{customer_id}/points/adjust", json=body).is_success
    with hub.client(kiosk_key) as kiosk:
        not_heard = kiosk.get(f"{_at(customer_id)}/wallet")
        assert not_heard.status_code == 403 and _code(not_heard) == "not_at_kiosk"
        hear_token(hub, token)
        heard = kiosk.get(f"{_at(customer_id)}/wallet")
        assert heard.status_code == 200
        assert heard.json()["points"] == 30 and heard.json()["coupons"] == []
        hub.clock.advance(PRESENCE_SIGNIN_WINDOW + timedelta(seconds=1))  # type: ignore[attr-defined]
        assert kiosk.get(f"{_at(customer_id)}/wallet").status_code == 403
        with_session = kiosk.get(f"{_at(customer_id)}/wallet",
                                 headers={"X-Customer-Session": session})
        assert with_session.status_code == 200 and with_session.json()["points"] == 30
        other_id, other_session, _ = _customer(hub, _other_phone())
        borrowed = kiosk.get(f"{_at(customer_id)}/wallet",
                             headers={"X-Customer-Session": other_session})
        assert borrowed.status_code == 403 and other_id != customer_id
        with hub.client(other_session) as other_phone:
            assert other_phone.delete("/v1/phone/session").status_code == 204
        ended = kiosk.get(f"{_at(other_id)}/wallet",
                          headers={"X-Customer-Session": other_session})
        assert ended.status_code == 403 and _code(ended) == "not_at_kiosk"
        assert kiosk.get(f"{_at('cus_nobody')}/wallet").status_code == 404
        hear_token(hub, token)
    # Heard at Siming a moment later: the Gulou kiosk no longer sees them here.
    with Session(hub.engine) as db:
        presence = db.get(Presence, customer_id)
        assert presence is not None
        presence.store_id, presence.node_id = "xm-siming", "xm-siming-n1"
        db.add(presence)
        db.commit()
    with hub.client(kiosk_key) as kiosk:
        assert kiosk.get(f"{_at(customer_id)}/wallet").status_code == 403
    siming_kiosk = hub.api_key(Role.KIOSK, store_id="xm-siming")
    with hub.client(siming_kiosk) as other:
        assert other.get(f"{_at(customer_id)}/wallet").status_code == 404
        assert other.get(f"/v1/stores/xm-siming/kiosk/customers/{customer_id}/wallet",
                         headers={"X-Customer-Session": session}).status_code == 200


def test_trial_start_checks_eligibility_and_converts_at_the_kiosk(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """Wrong handset and missing consent are refused; a ticked box starts it; convert; no repeat."""
    customer_id, session, token = _customer(hub, phone)
    me = {"X-Customer-Session": session}
    with hub.client(session) as own:
        assert own.patch("/v1/me", json={"consent_marketing_sms": False}).status_code == 200
    trials = f"/v1/stores/{STORE}/kiosk/trials"
    with hub.client(kiosk_key) as kiosk:
        standing = {s["service_id"]: s["state"]
                    for s in kiosk.get(f"{_at(customer_id)}/services", headers=me).json()}
        assert standing["video-pack"] == "available" and standing["cloud-game"] == "available"
        body = {"customer_id": customer_id, "service_id": "cloud-game", "handset": ["4G"]}
        wrong_phone = kiosk.post(trials, json=body, headers=me)
        assert wrong_phone.status_code == 422 and _code(wrong_phone) == "handset_incompatible"
        body = {"customer_id": customer_id, "service_id": "video-pack", "handset": ["4G"]}
        no_consent = kiosk.post(trials, json=body, headers=me)
        assert no_consent.status_code == 422 and _code(no_consent) == "no_consent"
        with Session(hub.engine) as db:
            customer = db.get(Customer, customer_id)
            assert customer is not None and not customer.consent_marketing_sms
        # By token presence alone, with the consent box ticked.
        assert kiosk.post(trials, json={**body, "consent_sms": True}).status_code == 403
        hear_token(hub, token)
        started = kiosk.post(trials, json={**body, "consent_sms": True})
        assert started.status_code == 201, started.text
        trial = started.json()
        assert trial["channel"] == "kiosk" and trial["store_id"] == STORE
        assert trial["customer_id"] == customer_id and trial["state"] == "active"
        with Session(hub.engine) as db:
            customer = db.get(Customer, customer_id)
            assert customer is not None and customer.consent_marketing_sms
        again = kiosk.post(trials, json={**body, "consent_sms": True})
        assert again.status_code == 409 and _code(again) == "already_trialled"
        standing_rows = kiosk.get(f"{_at(customer_id)}/services").json()
        row = next(s for s in standing_rows if s["service_id"] == "video-pack")
        assert row["state"] == "trial" and row["trial_id"] == trial["id"]

        other_id, other_session, _ = _customer(hub, _other_phone())
        stolen = kiosk.post(f"{trials}/{trial['id']}/convert", json={"customer_id": other_id},
                            headers={"X-Customer-Session": other_session})
        assert stolen.status_code == 404
        kept = kiosk.post(f"{trials}/{trial['id']}/convert", json={"customer_id": customer_id})
        assert kept.status_code == 200, kept.text
        assert kept.json()["state"] == "converted" and kept.json()["convert_channel"] == "kiosk"
        twice = kiosk.post(f"{trials}/{trial['id']}/convert", json={"customer_id": customer_id})
        assert twice.status_code == 409
        row = next(s for s in kiosk.get(f"{_at(customer_id)}/services").json()
                   if s["service_id"] == "video-pack")
        assert row["state"] == "subscribed"
    siming_kiosk = hub.api_key(Role.KIOSK, store_id="xm-siming")
    with hub.client(siming_kiosk) as other:
        assert other.post(trials, json=body, headers=me).status_code == 404


def test_order_pickup_by_code_only_for_this_customer_and_store(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """Accepted at Gulou -> checked in (in progress); again -> same; others -> not found."""
    customer_id, session, _ = _customer(hub, phone)
    me = {"X-Customer-Session": session}
    code = _order_ready_at_gulou(hub, customer_id)
    install = _order_ready_at_gulou(hub, customer_id, product="plan_change")
    pickups = f"/v1/stores/{STORE}/kiosk/pickups"
    with hub.client(kiosk_key) as kiosk:
        other_id, other_session, _ = _customer(hub, _other_phone())
        not_theirs = kiosk.post(pickups, json={"customer_id": other_id, "order_code": code},
                                headers={"X-Customer-Session": other_session})
        assert not_theirs.status_code == 404 and _code(not_theirs) == "order_not_found"
        unknown = kiosk.post(pickups, json={"customer_id": customer_id, "order_code": "wx-0"},
                             headers=me)
        assert unknown.status_code == 404
        nothing = kiosk.post(pickups, json={"customer_id": customer_id, "order_code": install},
                             headers=me)
        assert nothing.status_code == 422 and _code(nothing) == "not_for_pickup"
        blank = kiosk.post(pickups, json={"customer_id": customer_id, "order_code": ""},
                           headers=me)
        assert blank.status_code == 422
        first = kiosk.post(pickups, json={"customer_id": customer_id, "order_code": f" {code} "},
                           headers=me)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "in_progress" and not first.json()["already_checked_in"]
        again = kiosk.post(pickups, json={"customer_id": customer_id, "order_code": code},
                           headers=me)
        assert again.status_code == 200 and again.json()["already_checked_in"]
    order_id = first.json()["order_id"]
    with hub.client() as admin:
        history = admin.get(f"/v1/orders/{order_id}/history").json()
    last = history["transitions"][-1]
    assert (last["from_status"], last["to_status"]) == ("accepted", "in_progress")
    with hub.client(hub.api_key(Role.STORE_STAFF, store_id=STORE)) as staff:
        assert staff.post(f"/v1/orders/{order_id}/complete").status_code == 200
    with hub.client(kiosk_key) as kiosk:
        done = kiosk.post(pickups, json={"customer_id": customer_id, "order_code": code},
                          headers=me)
        assert done.status_code == 409 and _code(done) == "already_collected"
    siming_kiosk = hub.api_key(Role.KIOSK, store_id="xm-siming")
    with hub.client(siming_kiosk) as other:
        elsewhere = other.post("/v1/stores/xm-siming/kiosk/pickups",
                               json={"customer_id": customer_id, "order_code": code},
                               headers=me)
        assert elsewhere.status_code == 404
