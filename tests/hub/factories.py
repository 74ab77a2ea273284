"""Factories for hub tests: seeded registry, API keys per role, signed-in phones, live codes."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from edge.modem.codes import beacon_code, slot_of, to_hex
from hub.clock import ManualClock
from hub.models.auth import ApiKeyCreate, Role
from hub.models.customers import OutboxMessage
from hub.models.registry import Beacon
from hub.security import HubCrypto
from hub.seed import load_seeds
from hub.services import phone_auth
from hub.services.auth import create_api_key
from tests.hub.conftest import TEST_SECRET
from tests.hub.doubles import RecordingNodeControl

CRYPTO = HubCrypto(TEST_SECRET.encode())
_CODE_IN_SMS = re.compile(r"\b(\d{6})\b")


def seed(engine: Engine, clock: ManualClock, control: RecordingNodeControl | None = None) -> None:
    """Load the demo registry."""
    with Session(engine) as session:
        load_seeds(session, crypto=CRYPTO, clock=clock, node_control=control)
        session.commit()


def api_key(
    engine: Engine,
    clock: ManualClock,
    role: Role,
    region_id: str | None = None,
    store_id: str | None = None,
) -> str:
    """A fresh API key for ``role`` bound to the given scope."""
    with Session(engine) as session:
        _, key = create_api_key(
            session,
            CRYPTO,
            clock,
            ApiKeyCreate(
                name=f"test {role.value}", role=role, region_id=region_id, store_id=store_id
            ),
        )
        session.commit()
    return key


def auth(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def last_sms_code(engine: Engine, phone: str) -> str:
    """The one-time code most recently queued by SMS for ``phone``."""
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "sms")
            .order_by(col(OutboxMessage.id).desc())
        ).all()
    for row in rows:
        if CRYPTO.decrypt(row.recipient_enc) == phone_auth.normalize_phone(phone):
            match = _CODE_IN_SMS.search(row.body)
            assert match, row.body
            return match.group(1)
    raise AssertionError("no SMS queued for that phone")


# The microphone disclosure text version test phones accept (as the app does on first run).
MIC_DISCLOSURE_VERSION = "2026-01"


def sign_in(
    client: TestClient,
    engine: Engine,
    phone: str,
    device_id: str | None = None,
    accept_microphone: bool = True,
) -> str:
    """Sign a phone in through the API (accepting the microphone disclosure); return its token."""
    assert client.post("/v1/phone/otp", json={"phone": phone}).status_code == 202
    code = last_sms_code(engine, phone)
    resp = client.post(
        "/v1/phone/session", json={"phone": phone, "code": code, "device_id": device_id}
    )
    assert resp.status_code == 200, resp.text
    token = str(resp.json()["token"])
    if accept_microphone:
        consent = {
            "microphone_disclosure_version": MIC_DISCLOSURE_VERSION,
            "microphone_accepted": True,
        }
        accepted = client.patch("/v1/me", json=consent, headers=auth(token))
        assert accepted.status_code == 200, accepted.text
    return token


def live_code(engine: Engine, clock: ManualClock, short_id: int, slot_offset: int = 0) -> str:
    """The code beacon ``short_id`` plays now (or ``slot_offset`` slots away)."""
    with Session(engine) as session:
        beacon = session.get(Beacon, short_id)
        assert beacon is not None
        key = bytes.fromhex(CRYPTO.decrypt(beacon.key_enc))
        slot = slot_of(clock.now().timestamp(), beacon.slot_s) + slot_offset
    return to_hex(beacon_code(short_id, key, slot))


def checkin_body(
    code: str, clock: ManualClock, device_id: str | None = "dev-1"
) -> dict[str, object]:
    """A CheckinRequest body heard now."""
    return {
        "code": code,
        "heard_at": clock.now().isoformat(),
        "snr_db": 14.0,
        "device_id": device_id,
    }
