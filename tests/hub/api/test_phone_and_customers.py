"""Phone sign-in by one-time code, profile and consents, tags, erase-my-data."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.checkins import Visit, VisitZone
from hub.models.customers import Customer, CustomerSession, OtpChallenge, OutboxMessage
from hub.services import phone_auth
from tests.hub.factories import (
    CRYPTO,
    api_key,
    auth,
    checkin_body,
    last_sms_code,
    live_code,
    seed,
    sign_in,
)

PHONE = "+86 138-0013-8000"
NORMALISED = "+8613800138000"


def test_sign_in_creates_customer_once_and_stores_no_plain_phone(
    client: TestClient, engine: Engine
) -> None:
    """First sign-in creates the customer; the second finds it; the DB never holds the number."""
    first = sign_in(client, engine, PHONE)
    assert client.get("/v1/me", headers=auth(first)).status_code == 200
    client.post("/v1/phone/otp", json={"phone": NORMALISED})
    code = last_sms_code(engine, NORMALISED)
    again = client.post("/v1/phone/session", json={"phone": NORMALISED, "code": code})
    assert again.json()["new_customer"] is False
    with Session(engine) as session:
        customer = session.exec(select(Customer)).one()
        sessions = session.exec(select(CustomerSession)).all()
    assert NORMALISED not in customer.phone_hash + customer.phone_enc
    assert CRYPTO.decrypt(customer.phone_enc) == NORMALISED
    assert all(first not in s.token_hash for s in sessions)


def test_wrong_codes_burn_the_challenge(client: TestClient, engine: Engine) -> None:
    """Wrong guesses count even though each request fails; then the code is locked."""
    client.post("/v1/phone/otp", json={"phone": NORMALISED})
    code = last_sms_code(engine, NORMALISED)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(phone_auth.OTP_MAX_ATTEMPTS):
        resp = client.post("/v1/phone/session", json={"phone": NORMALISED, "code": wrong})
        assert resp.status_code == 401
    locked = client.post("/v1/phone/session", json={"phone": NORMALISED, "code": code})
    assert locked.status_code == 429 and locked.json()["code"] == "otp_locked"


def test_otp_rate_limit_and_expiry(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Three codes per number per window; an expired code is refused."""
    for _ in range(phone_auth.OTP_MAX_PER_WINDOW):
        assert client.post("/v1/phone/otp", json={"phone": NORMALISED}).status_code == 202
    assert client.post("/v1/phone/otp", json={"phone": NORMALISED}).status_code == 429
    code = last_sms_code(engine, NORMALISED)
    clock.advance(phone_auth.OTP_TTL + timedelta(seconds=1))
    resp = client.post("/v1/phone/session", json={"phone": NORMALISED, "code": code})
    assert resp.status_code == 401


def test_bad_phone_and_code_are_clear_422s(client: TestClient) -> None:
    """A malformed number or code is refused with the reason; nothing is queued."""
    bad = client.post("/v1/phone/otp", json={"phone": "call me maybe"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_phone"
    short = client.post("/v1/phone/session", json={"phone": NORMALISED, "code": "12"})
    assert short.status_code == 422 and "code" in str(short.json()["detail"])


def test_profile_consents_and_microphone_disclosure(client: TestClient, engine: Engine) -> None:
    """Attributes and consents update; accepting the microphone needs the disclosure version."""
    headers = auth(sign_in(client, engine, PHONE, accept_microphone=False))
    refused = client.patch("/v1/me", json={"microphone_accepted": True}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "disclosure_missing"
    body = {
        "gender": "female",
        "age_band": "25-34",
        "postal_code": "350001",
        "consent_marketing_sms": True,
        "microphone_disclosure_version": "2026-01",
        "microphone_accepted": True,
    }
    me = client.patch("/v1/me", json=body, headers=headers).json()
    assert me["age_band"] == "25-34" and me["consent_marketing_sms"] is True
    assert me["microphone_accepted_at"] is not None
    assert not {"phone", "phone_hash", "phone_enc"} & set(me) and "13800138000" not in str(me)
    bad = client.patch("/v1/me", json={"age_band": "30ish"}, headers=headers)
    assert bad.status_code == 422


def test_tags_by_admin(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Admins set and remove basic/application/profile tags."""
    token = sign_in(client, engine, PHONE)
    cid = client.get("/v1/me", headers=auth(token)).json()["id"]
    admin = auth(api_key(engine, clock, Role.ADMIN))
    tag = {"kind": "application", "name": "video_app", "value": "heavy"}
    assert client.put(f"/v1/customers/{cid}/tags", json=tag, headers=admin).status_code == 200
    tags = client.get("/v1/me", headers=auth(token)).json()["tags"]
    assert tags == [tag]
    gone = client.delete(f"/v1/customers/{cid}/tags/application/video_app", headers=admin)
    assert gone.status_code == 204
    bad = client.put(f"/v1/customers/{cid}/tags", json={"kind": "mood", "name": "x"}, headers=admin)
    assert bad.status_code == 422


def test_erase_my_data_keeps_anonymous_visits(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Erase removes phone, profile, sessions, SMS; visits and zone paths stay, unlinked."""
    seed(engine, clock)
    token = sign_in(client, engine, PHONE)
    headers = auth(token)
    client.patch("/v1/me", json={"gender": "male"}, headers=headers)
    assert client.post("/v1/phone/tokens", headers=headers).status_code == 201
    ok = client.post(
        "/v1/checkins", json=checkin_body(live_code(engine, clock, 101), clock), headers=headers
    )
    assert ok.status_code == 200
    erased = client.delete("/v1/me", headers=headers)
    assert erased.json() == {"visits_kept_anonymous": 1}
    assert client.get("/v1/me", headers=headers).status_code == 401
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Customer)).one() == 0
        assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 0
        assert session.exec(select(func.count()).select_from(OtpChallenge)).one() == 0
        visit = session.exec(select(Visit)).one()
        assert visit.customer_id is None and visit.store_id == "fz-gulou"
        assert session.exec(select(VisitZone)).one().zone_id == "fz-gulou-door"
    # The same number can register again as a new customer.
    again = sign_in(client, engine, PHONE)
    assert client.get("/v1/me", headers=auth(again)).json()["gender"] is None


def test_one_code_signs_in_once_under_concurrency(client: TestClient, engine: Engine) -> None:
    """Six simultaneous sign-ins with the same code: one session, one customer."""
    client.post("/v1/phone/otp", json={"phone": NORMALISED})
    code = last_sms_code(engine, NORMALISED)
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def go() -> None:
        barrier.wait()
        resp = client.post("/v1/phone/session", json={"phone": NORMALISED, "code": code})
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] + [401] * 5
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Customer)).one() == 1
        assert session.exec(select(func.count()).select_from(CustomerSession)).one() == 1
