"""Outbox dispatch: enqueue, send once through a pluggable sender, retry, consent at send time.

Messages live in the core ``outbox`` table; their dispatch state lives in
``outbox_delivery``. ``dispatch_due`` claims queued deliveries, re-checks consent and
do-not-contact for the channel at that moment (a customer who said STOP after enrolment
gets nothing more), calls the sender, and records the result in the same transaction.
A crash between a provider accepting a message and the commit can repeat that one
message; the dedupe key goes to the provider as its idempotency key so it can drop it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from hub.clock import Clock
from hub.models.customers import Customer, OutboxMessage
from hub.models.journeys import DeliveryStatus, DoNotContact, OutboxDelivery
from hub.security import HubCrypto, SecretError
from hub.services.periodic import PeriodicWorker

log = logging.getLogger(__name__)

# Which consent flag a marketing message on each channel needs (hub.models.customers).
CONSENT_FIELD = {
    "sms": "consent_marketing_sms",
    "mms": "consent_marketing_sms",  # MMS rides on the SMS consent the customer gave
    "push": "consent_marketing_push",
    "call": "consent_marketing_call",
}
# A STOP by SMS also stops MMS: customers do not tell the two apart.
STOP_COVERS = {"sms": ("sms", "mms"), "mms": ("sms", "mms"), "push": ("push",), "call": ("call",)}
STOP_WORDS = frozenset({"stop", "unsubscribe", "td", "退订"})
PURPOSES = ("marketing", "service", "transactional")
# A failing gateway is retried after 30 s, 60 s, 120 s, ... and given up on after five
# tries (about 8 minutes): a message that late is still useful; later it is not.
RETRY_BASE_S = 30.0
MAX_ATTEMPTS = 5
# Deliveries claimed per transaction: bounds how long one pass holds the SQLite write lock.
DISPATCH_BATCH = 200
# An SMS gateway that has not answered in 10 s is down; retrying beats hanging the sweep.
WEBHOOK_TIMEOUT_S = 10.0
DEFAULT_SWEEP_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What a sender gets: the decrypted recipient exists only here, in memory."""

    outbox_id: int
    channel: str
    recipient: str
    body: str
    dedupe_key: str


class SendError(Exception):
    """The sender could not hand the message over; the dispatcher retries."""


class Sender(Protocol):
    """Hands one message to a gateway; raises SendError when it could not."""

    def send(self, message: OutboundMessage) -> None:
        """Deliver ``message`` or raise SendError."""
        ...


class LogSender:
    """Logs that a message went out, without recipient or body (no PII in logs)."""

    def __init__(self) -> None:
        """Start with nothing sent."""
        self.sent = 0

    def send(self, message: OutboundMessage) -> None:
        """Log the channel, id and dedupe key only."""
        self.sent += 1
        log.info(
            "message sent",
            extra={"outbox_id": message.outbox_id, "channel": message.channel,
                   "dedupe_key": message.dedupe_key},
        )


class WebhookSender:
    """POSTs each message as JSON to an SMS/push/dialer gateway URL (httpx)."""

    def __init__(self, url: str, client: httpx.Client | None = None,
                 timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        """Send to ``url`` with ``client`` (one is made if not given)."""
        self._url = url
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, message: OutboundMessage) -> None:
        """POST the message; any non-2xx answer or transport error is a SendError."""
        try:
            resp = self._client.post(
                self._url,
                json={"id": message.outbox_id, "channel": message.channel,
                      "to": message.recipient, "body": message.body},
                headers={"Idempotency-Key": message.dedupe_key},
            )
        except httpx.HTTPError as exc:
            raise SendError(f"{type(exc).__name__}") from None
        if not resp.is_success:
            raise SendError(f"gateway answered {resp.status_code}")

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


SENDER_KINDS = ("log", "webhook")


def make_sender(kind: str, webhook_url: str = "") -> LogSender | WebhookSender:
    """The sender the settings name (``[hub] outbox_sender``): ``log`` or ``webhook``."""
    if kind == "log":
        return LogSender()
    if kind == "webhook":
        if not webhook_url.startswith(("http://", "https://")):
            raise ValueError("the webhook sender needs an http(s) outbox_webhook_url")
        return WebhookSender(webhook_url)
    raise ValueError(f"unknown outbox sender {kind!r} (one of {', '.join(SENDER_KINDS)})")


def enqueue_message(
    session: Session,
    *,
    channel: str,
    customer_id: str | None,
    recipient_enc: str,
    body: str,
    dedupe_key: str,
    now: datetime,
    purpose: str = "marketing",
    source_kind: str | None = None,
    source_id: str | None = None,
) -> OutboxMessage:
    """Queue a message (idempotent on ``dedupe_key``: a second call returns the first)."""
    if channel not in CONSENT_FIELD:
        raise ValueError(f"unknown channel {channel!r}")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    existing = session.execute(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    message = OutboxMessage(
        channel=channel, recipient_enc=recipient_enc, customer_id=customer_id,
        body=body, dedupe_key=dedupe_key, created_at=now,
    )
    session.add(message)
    session.flush()
    session.add(OutboxDelivery(
        outbox_id=message.id, purpose=purpose, next_attempt_at=now,
        source_kind=source_kind, source_id=source_id, updated_at=now,
    ))
    return message


def cancel_source(session: Session, source_kind: str, source_id: str, now: datetime) -> int:
    """Cancel every still-queued message of one source (e.g. a journey instance)."""
    result = session.execute(
        update(OutboxDelivery)
        .where(
            OutboxDelivery.source_kind == source_kind,
            OutboxDelivery.source_id == source_id,
            OutboxDelivery.status == DeliveryStatus.QUEUED,
        )
        .values(status=DeliveryStatus.CANCELLED, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def adopt_core_messages(session: Session, now: datetime) -> int:
    """Give unsent outbox rows queued without a delivery row (sign-in codes) one."""
    rows = session.execute(
        select(OutboxMessage.id)
        .outerjoin(OutboxDelivery, OutboxDelivery.outbox_id == OutboxMessage.id)
        .where(col(OutboxDelivery.id).is_(None), col(OutboxMessage.sent_at).is_(None))
    ).scalars().all()
    for outbox_id in rows:
        session.add(OutboxDelivery(outbox_id=outbox_id, purpose="transactional",
                                   next_attempt_at=now, source_kind="core", updated_at=now))
    return len(rows)


def set_do_not_contact(session: Session, customer_id: str, channel: str, source: str,
                       now: datetime) -> list[str]:
    """Record do-not-contact for ``channel`` (and what STOP on it covers); return channels."""
    channels = list(STOP_COVERS.get(channel, (channel,)))
    for ch in channels:
        found = session.execute(
            select(DoNotContact).where(
                DoNotContact.customer_id == customer_id, DoNotContact.channel == ch)
        ).scalar_one_or_none()
        if found is None:
            session.add(DoNotContact(customer_id=customer_id, channel=ch, source=source,
                                     created_at=now))
    log.info("do-not-contact set", extra={"customer_id": customer_id, "channels": channels})
    return channels


def is_stop(text: str) -> bool:
    """Whether a reply asks to stop messages."""
    return text.strip().lower() in STOP_WORDS


def _blocked(session: Session, delivery: OutboxDelivery, message: OutboxMessage) -> str | None:
    """Why this message may not go out now (consent / do-not-contact), or None."""
    if delivery.purpose == "transactional" or message.customer_id is None:
        return None
    dnc = session.execute(
        select(DoNotContact.id).where(
            DoNotContact.customer_id == message.customer_id,
            DoNotContact.channel == message.channel,
        )
    ).first()
    if dnc is not None:
        return "do_not_contact"
    if delivery.purpose == "marketing":
        customer = session.get(Customer, message.customer_id)
        if customer is None or not getattr(customer, CONSENT_FIELD[message.channel]):
            return "no_consent"
    return None


@dataclass
class DispatchSummary:
    """What one ``dispatch_due`` call did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0

    @property
    def handled(self) -> int:
        """Deliveries this call finished or rescheduled."""
        return self.sent + self.retried + self.failed + self.suppressed


def dispatch_due(engine: Engine, crypto: HubCrypto, sender: Sender, clock: Clock,
                 *, batch: int = DISPATCH_BATCH, limit: int | None = None) -> DispatchSummary:
    """Send every due queued message once; retry failures with backoff; suppress blocked ones."""
    summary = DispatchSummary()
    with Session(engine) as session:
        adopt_core_messages(session, clock.now())
        session.commit()
    while limit is None or summary.handled < limit:
        now = clock.now()
        with Session(engine, expire_on_commit=False) as session:
            query = (
                select(OutboxDelivery, OutboxMessage)
                .join(OutboxMessage, OutboxMessage.id == OutboxDelivery.outbox_id)
                .where(OutboxDelivery.status == DeliveryStatus.QUEUED,
                       OutboxDelivery.next_attempt_at <= now)
                .order_by(OutboxDelivery.next_attempt_at, OutboxDelivery.id)
                .limit(batch)
            )
            if engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=OutboxDelivery)
            claimed = session.execute(query).all()
            if not claimed:
                break
            for delivery, message in claimed:
                _dispatch_one(session, crypto, sender, delivery, message, now, summary)
            session.commit()
    return summary


def _dispatch_one(session: Session, crypto: HubCrypto, sender: Sender, delivery: OutboxDelivery,
                  message: OutboxMessage, now: datetime, summary: DispatchSummary) -> None:
    """Check, send and record one claimed delivery."""
    delivery.updated_at = now
    reason = _blocked(session, delivery, message)
    if reason is not None:
        delivery.status = DeliveryStatus.SUPPRESSED
        delivery.last_error = reason
        summary.suppressed += 1
        session.add(delivery)
        return
    delivery.attempts += 1
    try:
        recipient = crypto.decrypt(message.recipient_enc)
        sender.send(OutboundMessage(message.id or 0, message.channel, recipient, message.body,
                                    message.dedupe_key))
    except (SendError, SecretError) as exc:
        delivery.last_error = str(exc)[:300] or type(exc).__name__
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            summary.failed += 1
            log.error("message failed for good",
                      extra={"outbox_id": message.id, "attempts": delivery.attempts})
        else:
            delivery.next_attempt_at = now + timedelta(
                seconds=RETRY_BASE_S * 2 ** (delivery.attempts - 1))
            summary.retried += 1
        session.add(delivery)
        return
    delivery.status = DeliveryStatus.SENT
    delivery.last_error = None
    message.sent_at = now
    session.add(delivery)
    session.add(message)
    summary.sent += 1


class OutboxRunner(PeriodicWorker):
    """A background thread that dispatches due messages every ``interval_s`` until stopped."""

    def __init__(self, engine: Engine, crypto: HubCrypto, sender: Sender, clock: Clock,
                 interval_s: float = DEFAULT_SWEEP_INTERVAL_S) -> None:
        """Prepare a runner; ``start()`` launches the thread."""
        super().__init__(
            "outbox-runner", lambda: dispatch_due(engine, crypto, sender, clock), interval_s
        )
        self.sender = sender

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop sweeping, then close the sender's connections (if it holds any)."""
        super().stop(timeout_s)
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()
