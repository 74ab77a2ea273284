"""Outbox dispatch: once only, retries with backoff, failure after N, consent at send time, STOP."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.customers import Customer, OutboxMessage
from hub.models.journeys import OutboxDelivery
from hub.services import outbox, phone_auth
from storewave.settings import HubSettings
from tests.hub.arc.helpers import make_customer, messages
from tests.hub.factories import CRYPTO, api_key, auth

# The background runner sweeps every 20 ms; a loaded machine gets up to 10 s.
RUNNER_SWEEP_S = 0.02
RUNNER_WAIT_LIMIT_S = 10.0


class Gateway:
    """A real HTTP gateway on a free port that answers with scripted status codes."""

    def __init__(self, statuses: list[int]) -> None:
        """Listen on a free port, answering with ``statuses`` in turn (then 200)."""
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        self.keys: list[str] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                """Record the message and answer with the next status."""
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.received.append(body)
                gateway.keys.append(self.headers["Idempotency-Key"])
                status = gateway.statuses.pop(0) if gateway.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Keep the test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    """A scripted gateway, closed after the test."""
    gw = Gateway([])
    yield gw
    gw.close()


def _enqueue(engine: Engine, clock: ManualClock, cid: str, key: str, channel: str = "sms",
             purpose: str = "marketing", body: str = "Hello there") -> None:
    """Queue one message for a customer."""
    with Session(engine) as s:
        customer = s.get(Customer, cid)
        assert customer is not None
        outbox.enqueue_message(s, channel=channel, customer_id=cid,
                               recipient_enc=customer.phone_enc, body=body, dedupe_key=key,
                               now=clock.now(), purpose=purpose, source_kind="test",
                               source_id="t1")
        s.commit()


def _status(engine: Engine) -> list[tuple[str, int]]:
    """(status, attempts) per delivery."""
    with Session(engine) as s:
        return [(d.status, d.attempts) for d in
                s.execute(select(OutboxDelivery).order_by(OutboxDelivery.id)).scalars()]


def test_each_message_is_sent_once(arc_engine: Engine, clock: ManualClock,
                                   gateway: Gateway) -> None:
    """Enqueue twice with one key, dispatch twice: the gateway sees one POST, with the key."""
    cid, phone = make_customer(arc_engine, clock)
    _enqueue(arc_engine, clock, cid, "k1")
    _enqueue(arc_engine, clock, cid, "k1")
    sender = outbox.WebhookSender(gateway.url)
    try:
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).sent == 1
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).handled == 0
    finally:
        sender.close()
    assert gateway.received == [{"id": 1, "channel": "sms", "to": phone, "body": "Hello there"}]
    assert gateway.keys == ["k1"]
    with Session(arc_engine) as s:
        assert s.execute(select(OutboxMessage.sent_at)).scalar_one() == clock.now()


def test_retries_with_backoff_then_fails_after_max_attempts(
    arc_engine: Engine, clock: ManualClock, gateway: Gateway
) -> None:
    """503, 503, 200 -> sent on the third try; a gateway that always fails -> failed after 5."""
    cid, _ = make_customer(arc_engine, clock)
    _enqueue(arc_engine, clock, cid, "flaky")
    gateway.statuses = [503, 503]
    sender = outbox.WebhookSender(gateway.url)
    try:
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).retried == 1
        # Not due again before the backoff (30 s) has passed.
        clock.advance(timedelta(seconds=29))
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).handled == 0
        clock.advance(timedelta(seconds=1))
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).retried == 1
        clock.advance(timedelta(seconds=60))
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).sent == 1
        assert _status(arc_engine) == [("sent", 3)]
        _enqueue(arc_engine, clock, cid, "doomed")
        gateway.statuses = [500] * outbox.MAX_ATTEMPTS
        for _ in range(outbox.MAX_ATTEMPTS):
            outbox.dispatch_due(arc_engine, CRYPTO, sender, clock)
            clock.advance(timedelta(hours=1))
    finally:
        sender.close()
    assert _status(arc_engine) == [("sent", 3), ("failed", outbox.MAX_ATTEMPTS)]
    assert len(gateway.received) == 3 + outbox.MAX_ATTEMPTS


def test_unreachable_gateway_is_retried(arc_engine: Engine, clock: ManualClock) -> None:
    """A connection refused is a send failure, not a crash."""
    cid, _ = make_customer(arc_engine, clock)
    _enqueue(arc_engine, clock, cid, "k")
    gw = Gateway([])
    url = gw.url
    gw.close()  # nothing listens on that port any more
    sender = outbox.WebhookSender(url, timeout_s=2.0)
    try:
        assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).retried == 1
    finally:
        sender.close()
    assert _status(arc_engine) == [("queued", 1)]


def test_consent_is_checked_at_send_time(arc_engine: Engine, clock: ManualClock) -> None:
    """Consent withdrawn after queueing: suppressed. Service messages skip consent, not DNC."""
    cid, _ = make_customer(arc_engine, clock)
    _enqueue(arc_engine, clock, cid, "promo")
    _enqueue(arc_engine, clock, cid, "manual", channel="mms", purpose="service")
    with Session(arc_engine) as s:
        customer = s.get(Customer, cid)
        assert customer is not None
        customer.consent_marketing_sms = False
        s.add(customer)
        s.commit()
    sender = outbox.LogSender()
    summary = outbox.dispatch_due(arc_engine, CRYPTO, sender, clock)
    assert (summary.sent, summary.suppressed, sender.sent) == (1, 1, 1)
    assert [s for _, _, s in messages(arc_engine, cid)] == ["suppressed", "sent"]


def test_stop_reply_sets_do_not_contact_for_that_channel(
    client: TestClient, arc_engine: Engine, clock: ManualClock
) -> None:
    """STOP by SMS blocks SMS and MMS (even service messages) but not push."""
    admin = api_key(arc_engine, clock, Role.ADMIN)
    cid, phone = make_customer(arc_engine, clock)
    resp = client.post("/v1/outbox/replies", headers=auth(admin),
                       json={"channel": "sms", "phone": phone, "text": " Stop "})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"action": "do_not_contact", "channels": ["sms", "mms"]}
    _enqueue(arc_engine, clock, cid, "a", channel="sms")
    _enqueue(arc_engine, clock, cid, "b", channel="mms", purpose="service")
    _enqueue(arc_engine, clock, cid, "c", channel="push")
    outbox.dispatch_due(arc_engine, CRYPTO, outbox.LogSender(), clock)
    assert [s for _, _, s in messages(arc_engine, cid)] == ["suppressed", "suppressed", "sent"]
    unknown = client.post("/v1/outbox/replies", headers=auth(admin),
                          json={"phone": "+8613999999999", "text": "STOP"})
    assert unknown.json() == {"action": "unknown_sender"}
    bad = client.post("/v1/outbox/replies", headers=auth(admin),
                      json={"phone": "not a phone", "text": "STOP"})
    assert bad.status_code == 422
    stats = client.get("/v1/outbox/stats", headers=auth(admin)).json()
    assert stats == {"suppressed": 2, "sent": 1}


def test_sign_in_codes_are_adopted_and_sent_without_marketing_consent(
    arc_engine: Engine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Core OTP messages get a delivery row and go out; the log holds no phone or body."""
    phone = "+8613812345678"
    with Session(arc_engine) as s:
        phone_auth.request_otp(s, CRYPTO, clock, phone)
        s.commit()
    caplog.set_level(logging.INFO, logger="hub.services.outbox")
    sender = outbox.LogSender()
    assert outbox.dispatch_due(arc_engine, CRYPTO, sender, clock).sent == 1
    assert _status(arc_engine) == [("sent", 1)]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "message sent" in logged
    assert phone not in logged and "sign-in code" not in logged


def test_settings_select_the_webhook_sender(
    arc_engine: Engine, clock: ManualClock, gateway: Gateway, tmp_path: Path
) -> None:
    """``outbox_sender = "webhook"``: the runner the hub builds POSTs to the configured URL."""
    with pytest.raises(ValidationError, match="outbox_webhook_url"):
        HubSettings(data_dir=tmp_path, outbox_sender="webhook")
    with pytest.raises(ValidationError, match="outbox_sender"):
        HubSettings(data_dir=tmp_path, outbox_sender="carrier-pigeon")
    assert isinstance(outbox.make_sender(HubSettings(data_dir=tmp_path).outbox_sender),
                      outbox.LogSender)
    settings = HubSettings(data_dir=tmp_path, outbox_sender="webhook",
                           outbox_webhook_url=gateway.url)
    cid, phone = make_customer(arc_engine, clock)
    _enqueue(arc_engine, clock, cid, "via-settings", body="Your trial")
    runner = outbox.OutboxRunner(
        arc_engine, CRYPTO, outbox.make_sender(settings.outbox_sender, settings.outbox_webhook_url),
        clock, interval_s=RUNNER_SWEEP_S)
    runner.start()
    try:
        deadline = time.monotonic() + RUNNER_WAIT_LIMIT_S
        while not gateway.received and time.monotonic() < deadline:
            time.sleep(RUNNER_SWEEP_S)
    finally:
        runner.stop()
    assert gateway.received == [{"id": 1, "channel": "sms", "to": phone, "body": "Your trial"}]
    assert gateway.keys == ["via-settings"]
    assert _status(arc_engine) == [("sent", 1)]
