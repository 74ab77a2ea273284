"""Phone sign-in: one-time codes sent through the outbox, then a hashed session token."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from hub.clock import Clock
from hub.models.customers import (
    PHONE_PATTERN,
    Customer,
    CustomerSession,
    OtpChallenge,
    OutboxMessage,
)
from hub.models.types import new_id
from hub.security import HubCrypto, new_token
from hub.services.auth import SESSION_PREFIX, SESSION_PURPOSE
from hub.services.errors import Invalid, RateLimited, Unauthorized

log = logging.getLogger(__name__)

PHONE_PURPOSE = "phone"
_OTP_PURPOSE = "otp"
OTP_DIGITS = 6
# Long enough to read an SMS and type it, short enough that a leaked code is soon useless.
OTP_TTL = timedelta(minutes=5)
# SMS costs money and can be abused to spam a number: three codes per number per window.
OTP_MAX_PER_WINDOW = 3
OTP_WINDOW = timedelta(minutes=10)
# Wrong guesses per code before it is burnt: 5 guesses of 10^6 is a 1-in-200,000 chance.
OTP_MAX_ATTEMPTS = 5
# A phone app stays signed in for a month of use; erase or sign-out revokes it sooner.
SESSION_TTL = timedelta(days=30)
_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE_RE = re.compile(PHONE_PATTERN)


def normalize_phone(raw: str) -> str:
    """The phone number without separators, or Invalid with what is expected."""
    phone = _SEPARATORS.sub("", raw)
    if not _PHONE_RE.match(phone):
        raise Invalid("phone must be 7-15 digits, optionally starting with +", code="invalid_phone")
    return phone


def phone_hash(crypto: HubCrypto, phone: str) -> str:
    """The keyed hash that identifies a customer by phone without storing the number."""
    return crypto.keyed_hash(PHONE_PURPOSE, phone)


def request_otp(session: Session, crypto: HubCrypto, clock: Clock, raw_phone: str) -> datetime:
    """Create a one-time code and queue its SMS; return when it expires."""
    phone = normalize_phone(raw_phone)
    digest = phone_hash(crypto, phone)
    now = clock.now()
    recent = session.exec(
        select(func.count())
        .select_from(OtpChallenge)
        .where(OtpChallenge.phone_hash == digest, OtpChallenge.created_at > now - OTP_WINDOW)
    ).one()
    if recent >= OTP_MAX_PER_WINDOW:
        raise RateLimited(
            "too many codes requested for this number", int(OTP_WINDOW.total_seconds())
        )
    code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
    challenge = OtpChallenge(
        phone_hash=digest,
        code_hash=crypto.keyed_hash(_OTP_PURPOSE, f"{digest}:{code}"),
        created_at=now,
        expires_at=now + OTP_TTL,
    )
    session.add(challenge)
    session.flush()
    customer = session.exec(select(Customer).where(Customer.phone_hash == digest)).first()
    session.add(
        OutboxMessage(
            channel="sms",
            recipient_enc=crypto.encrypt(phone),
            customer_id=customer.id if customer else None,
            body=f"Your StoreWave sign-in code is {code}. It expires in "
            f"{int(OTP_TTL.total_seconds() // 60)} minutes.",
            dedupe_key=f"otp:{challenge.id}",
            created_at=now,
        )
    )
    return challenge.expires_at


def open_session(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    raw_phone: str,
    code: str,
    device_id: str | None,
) -> tuple[str, Customer, datetime, bool]:
    """Check the code; return (session token, customer, expiry, new customer?)."""
    phone = normalize_phone(raw_phone)
    digest = phone_hash(crypto, phone)
    now = clock.now()
    challenge = session.exec(
        select(OtpChallenge)
        .where(
            OtpChallenge.phone_hash == digest,
            col(OtpChallenge.used_at).is_(None),
            OtpChallenge.expires_at > now,
        )
        .order_by(col(OtpChallenge.id).desc())
        # Row lock: two concurrent sign-ins with one code must not both succeed.
        .with_for_update()
    ).first()
    if challenge is None:
        raise Unauthorized("no valid code for this number; request a new one", code="otp_invalid")
    if challenge.attempts >= OTP_MAX_ATTEMPTS:
        raise RateLimited("too many wrong codes; request a new one", 0, code="otp_locked")
    expected = crypto.keyed_hash(_OTP_PURPOSE, f"{digest}:{code}")
    if not hmac.compare_digest(expected, challenge.code_hash):
        challenge.attempts += 1
        session.add(challenge)
        session.commit()  # the failed attempt must count even though this request fails
        raise Unauthorized("wrong code", code="otp_invalid")
    challenge.used_at = now
    session.add(challenge)
    customer, created = _customer_for(session, crypto, now, digest, phone)
    token, _ = new_token(SESSION_PREFIX)
    expires_at = now + SESSION_TTL
    session.add(
        CustomerSession(
            token_hash=crypto.keyed_hash(SESSION_PURPOSE, token),
            customer_id=customer.id,
            device_id=device_id,
            created_at=now,
            expires_at=expires_at,
        )
    )
    log.info("phone session opened", extra={"customer_id": customer.id, "new": created})
    return token, customer, expires_at, created


def _customer_for(
    session: Session, crypto: HubCrypto, now: datetime, digest: str, phone: str
) -> tuple[Customer, bool]:
    """The customer with this phone hash, created on first sign-in."""
    customer = session.exec(select(Customer).where(Customer.phone_hash == digest)).first()
    if customer is not None:
        return customer, False
    customer = Customer(
        id=new_id("cus"), phone_hash=digest, phone_enc=crypto.encrypt(phone), created_at=now
    )
    try:
        with session.begin_nested():
            session.add(customer)
    except IntegrityError:  # the same number signed in twice at once: use the winner
        return session.exec(select(Customer).where(Customer.phone_hash == digest)).one(), False
    return customer, True


def close_session(session: Session, crypto: HubCrypto, clock: Clock, token: str) -> None:
    """Revoke the session of ``token`` (sign-out)."""
    row = session.get(CustomerSession, crypto.keyed_hash(SESSION_PURPOSE, token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = clock.now()
        session.add(row)
