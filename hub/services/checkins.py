"""Check-in verification: rotating code, store/zone, fraud rules, visit and zone path."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from edge.modem.codes import (
    DEFAULT_SLOT_WINDOW,
    from_hex,
    kind_of,
    new_phone_token,
    slot_of,
    split_beacon_code,
    to_hex,
    verify_beacon_code,
)
from hub.clock import Clock
from hub.metrics import CHECKINS
from hub.models.checkins import CheckinAttempt, PhoneToken, Visit, VisitZone
from hub.models.customers import Customer
from hub.models.registry import Beacon, Store
from hub.models.types import new_id
from hub.security import HubCrypto
from hub.services import fraud
from hub.services.campaigns import hooks as campaign_hooks
from hub.services.errors import CheckinRefused, NotFound, RateLimited
from storewave.wire import CheckinRequest, CheckinResponse, CodeKind, PhoneTokenResponse

log = logging.getLogger(__name__)

# A phone reports a code within seconds of hearing it; a heard_at further from the hub's
# clock than this is a stale recording or a broken phone clock.
MAX_HEARD_SKEW = timedelta(minutes=2)
# No code for this long ends a visit; the next check-in in that store is a new visit.
VISIT_IDLE = timedelta(hours=1)
# A phone token is played once at the counter; two minutes covers a slow queue.
PHONE_TOKEN_TTL = timedelta(minutes=2)
# The generic refusal every code failure shares, so a forger learns nothing from it.
CODE_NOT_ACCEPTED = "code not accepted"


def _refuse(
    session: Session,
    attempt: CheckinAttempt,
    outcome: str,
    message: str,
) -> CheckinRefused:
    """Record the refused attempt (committed: it feeds the rate limits) and build the error."""
    attempt.outcome = outcome
    session.add(attempt)
    session.commit()
    CHECKINS.labels(outcome).inc()
    return CheckinRefused(message, code=outcome)


def _verify(crypto: HubCrypto, beacon: Beacon, payload: int, now: datetime) -> bool:
    """Whether the code is this beacon's for a slot within the window (current or old key)."""
    now_slot = slot_of(now.timestamp(), beacon.slot_s)
    keys = [beacon.key_enc]
    if beacon.previous_key_enc and beacon.previous_key_until and beacon.previous_key_until > now:
        keys.append(beacon.previous_key_enc)
    for key_enc in keys:
        key = bytes.fromhex(crypto.decrypt_cached(key_enc))
        if verify_beacon_code(payload, key, now_slot, DEFAULT_SLOT_WINDOW) is not None:
            return True
    return False


def check_in(
    session: Session, crypto: HubCrypto, clock: Clock, customer_id: str, req: CheckinRequest
) -> CheckinResponse:
    """Verify a heard beacon code and record the visit; raise CheckinRefused/RateLimited."""
    now = clock.now()
    # Lock the customer's row first: concurrent check-ins of one customer queue here, so
    # "one visit per stay" holds (SQLite: the transaction already holds the write lock).
    customer = session.exec(
        select(Customer).where(Customer.id == customer_id).with_for_update()
    ).first()
    if customer is None:
        raise NotFound("customer not found")
    try:
        fraud.check_rate_limits(session, now, customer_id, req.device_id)
    except RateLimited as exc:
        session.rollback()  # release the lock now, not in a later teardown
        CHECKINS.labels(exc.code).inc()
        raise
    attempt = CheckinAttempt(
        customer_id=customer_id, device_id=req.device_id, code=req.code, at=now, outcome=""
    )
    if abs(req.heard_at - now) > MAX_HEARD_SKEW:
        raise _refuse(session, attempt, "stale_heard_at", "heard_at is too far from the hub's time")
    payload = from_hex(req.code)
    if kind_of(payload) is not CodeKind.BEACON:
        raise _refuse(session, attempt, "not_beacon", "that is a phone token, not a beacon code")
    attempt.short_id = split_beacon_code(payload).short_id
    beacon = session.get(Beacon, attempt.short_id)
    if beacon is None or not _verify(crypto, beacon, payload, now):
        raise _refuse(session, attempt, "bad_code", CODE_NOT_ACCEPTED)
    store = session.get(Store, beacon.store_id)
    assert store is not None  # foreign key
    attempt.store_id = store.id
    try:
        fraud.check_code_use(session, now, req.code, store)
    except RateLimited as exc:
        raise _refuse(session, attempt, exc.code, exc.message) from None
    if not fraud.is_open(store, now):
        raise _refuse(session, attempt, "store_closed", "the store is closed at this time")
    previous = _last_accepted(session, customer_id)
    if previous is not None and previous.store_id and previous.store_id != store.id:
        prev_store = session.get(Store, previous.store_id)
        if prev_store and fraud.is_impossible_travel(prev_store, previous.at, store, now):
            raise _refuse(session, attempt, "impossible_travel", "check-in refused")
    visit, new_visit = _record_visit(session, customer_id, store.id, beacon.zone_id, now)
    attempt.outcome = "accepted" if new_visit else "same_visit"
    session.add(attempt)
    customer.last_checkin_at = now
    session.add(customer)
    CHECKINS.labels(attempt.outcome).inc()
    # Campaign grants are decided in this same transaction (customer row already locked).
    grants = campaign_hooks.on_checkin(
        session, now, customer_id, store.id, beacon.zone_id, visit, new_visit
    )
    return CheckinResponse(
        visit_id=visit.id,
        store_id=store.id,
        zone_id=beacon.zone_id,
        new_visit=new_visit,
        grants=grants,
    )


def _last_accepted(session: Session, customer_id: str) -> CheckinAttempt | None:
    """The customer's most recent accepted check-in."""
    return session.exec(
        select(CheckinAttempt)
        .where(
            CheckinAttempt.customer_id == customer_id,
            col(CheckinAttempt.outcome).in_(("accepted", "same_visit")),
        )
        .order_by(col(CheckinAttempt.at).desc(), col(CheckinAttempt.id).desc())
    ).first()


def _record_visit(
    session: Session, customer_id: str, store_id: str, zone_id: str | None, now: datetime
) -> tuple[Visit, bool]:
    """Extend the open visit (adding a zone step if the zone changed) or start a new one."""
    visit = session.exec(
        select(Visit)
        .where(
            Visit.customer_id == customer_id,
            Visit.store_id == store_id,
            Visit.last_seen_at > now - VISIT_IDLE,
        )
        .order_by(col(Visit.started_at).desc())
    ).first()
    if visit is None:
        visit = Visit(
            id=new_id("vis"),
            customer_id=customer_id,
            store_id=store_id,
            started_at=now,
            last_seen_at=now,
        )
        session.add(visit)
        session.flush()
        session.add(VisitZone(visit_id=visit.id, zone_id=zone_id, entered_at=now))
        return visit, True
    visit.last_seen_at = now
    visit.checkins += 1
    session.add(visit)
    last_step = session.exec(
        select(VisitZone).where(VisitZone.visit_id == visit.id).order_by(col(VisitZone.id).desc())
    ).first()
    if last_step is None or last_step.zone_id != zone_id:
        session.add(VisitZone(visit_id=visit.id, zone_id=zone_id, entered_at=now))
    return visit, False


def zone_path(session: Session, visit_id: str) -> list[str | None]:
    """The zones a visit went through, in order."""
    steps = session.exec(
        select(VisitZone).where(VisitZone.visit_id == visit_id).order_by(col(VisitZone.id))
    ).all()
    return [s.zone_id for s in steps]


def issue_phone_token(session: Session, clock: Clock, customer_id: str) -> PhoneTokenResponse:
    """A fresh short-lived token for the phone to play; the customer's expired ones go."""
    now = clock.now()
    for old in session.exec(
        select(PhoneToken).where(
            PhoneToken.customer_id == customer_id, PhoneToken.expires_at <= now
        )
    ):
        session.delete(old)
    token = PhoneToken(
        token=to_hex(new_phone_token()),
        customer_id=customer_id,
        issued_at=now,
        expires_at=now + PHONE_TOKEN_TTL,
    )
    session.add(token)
    return PhoneTokenResponse(token=token.token, expires_at=token.expires_at)
