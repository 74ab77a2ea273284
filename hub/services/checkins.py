"""Check-in verification: rotating code, store/zone, fraud rules, visit and zone path."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session, col
from sqlmodel import select as orm_select

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
from hub.db import DriverStatement, run_all
from hub.metrics import CHECKINS
from hub.models.checkins import CheckinAttempt, PhoneToken, Visit, VisitZone
from hub.models.customers import Customer, CustomerSession
from hub.models.types import new_id
from hub.security import HubCrypto
from hub.services import fraud, registry_cache
from hub.services.auth import SESSIONS
from hub.services.campaigns import facts as campaign_facts
from hub.services.campaigns import hooks as campaign_hooks
from hub.services.errors import CheckinRefused, NotFound, RateLimited, Unauthorized
from hub.services.registry_cache import CachedBeacon
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
# A customer who has not accepted the microphone-use disclosure is refused (403) with
# this code before any rule runs: the app must not listen for beacons without it.
MICROPHONE_NOT_ACCEPTED = "microphone_not_accepted"
# A genuine code (its MAC verified) of a beacon whose node was revoked: a stolen or
# decommissioned node must not keep bringing check-ins. Said only after the MAC verified,
# so a forger learns nothing from it.
NODE_REVOKED = "node_revoked"


_ATTEMPT = CheckinAttempt.__table__  # type: ignore[attr-defined]
_VISIT = Visit.__table__  # type: ignore[attr-defined]
_STEP = VisitZone.__table__  # type: ignore[attr-defined]
_CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
_SESSION = CustomerSession.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _OpenVisit:
    """The customer's visit to this store that a check-in now would extend."""

    id: str
    started_at: datetime
    checkins: int
    last_step_id: int | None
    last_zone_id: str | None


def _refuse(
    session: Session, attempt: dict[str, Any], outcome: str, message: str
) -> CheckinRefused:
    """Record the refused attempt (committed: it feeds the rate limits) and build the error."""
    _INSERT_ATTEMPT.run(session.connection(), {**attempt, "outcome": outcome})
    session.commit()
    CHECKINS.labels(outcome).inc()
    return CheckinRefused(message, code=outcome)


def _verify(beacon: CachedBeacon, payload: int, now: datetime) -> bool:
    """Whether the code is this beacon's for a slot within the window (current or old key)."""
    now_slot = slot_of(now.timestamp(), beacon.slot_s)
    for key in beacon.keys:
        if key.until is not None and key.until <= now:
            continue
        if verify_beacon_code(payload, key.key, now_slot, DEFAULT_SLOT_WINDOW) is not None:
            return True
    return False


def _lock_customer(
    connection: Connection, customer_id: str | None, session_hash: str | None, now: datetime
) -> dict[str, Any]:
    """Lock the customer's row and return it; refuse a bad session or no microphone consent.

    The row (by column name) carries what the campaign rules read
    (``campaign_facts.AUDIENCE_COLUMNS``): the campaign hook uses it instead of reading and
    locking the customer again.

    With ``session_hash`` (the phone's session) the customer is found through the session
    row, which must exist, be unrevoked and unexpired (else 401): the check-in's own
    transaction authenticates the caller, so a sign-out or erase stops check-ins at once
    and no separate authentication transaction is needed. Concurrent check-ins of one
    customer queue on this lock, so "one visit per stay" holds (SQLite: the transaction
    already holds the write lock).
    """
    generation = SESSIONS.generation
    if session_hash is not None:
        row = _LOCK_BY_SESSION.mapping(connection, {"ci_session": session_hash})
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
            raise Unauthorized("unknown, expired or revoked session")
        SESSIONS.put(session_hash, row["id"], row["expires_at"], now, generation)
    else:
        row = _LOCK_BY_ID.mapping(connection, {"ci_customer": customer_id})
        if row is None:
            raise NotFound("customer not found")
    if row["microphone_accepted_at"] is None:
        CHECKINS.labels(MICROPHONE_NOT_ACCEPTED).inc()
        raise CheckinRefused(
            "accept the microphone-use disclosure in the app before checking in "
            "(PATCH /v1/me with microphone_disclosure_version and microphone_accepted)",
            code=MICROPHONE_NOT_ACCEPTED,
        )
    return row


# The check-in's own statements run on the driver's cursor (hub.db.DriverStatement):
# SQLAlchemy's per-statement work was a third of a check-in's CPU.
_LOCK_BY_ID = DriverStatement(
    select(_CUSTOMER.c.id, _CUSTOMER.c.microphone_accepted_at, *campaign_facts.AUDIENCE_COLUMNS)
    .where(_CUSTOMER.c.id == bindparam("ci_customer"))
    .with_for_update(of=_CUSTOMER)
)
_LOCK_BY_SESSION = DriverStatement(
    select(
        _CUSTOMER.c.id,
        _CUSTOMER.c.microphone_accepted_at,
        _SESSION.c.revoked_at,
        _SESSION.c.expires_at,
        *campaign_facts.AUDIENCE_COLUMNS,
    )
    .select_from(_SESSION.join(_CUSTOMER, _CUSTOMER.c.id == _SESSION.c.customer_id))
    .where(_SESSION.c.token_hash == bindparam("ci_session"))
    .with_for_update(of=_CUSTOMER)
)


def _open_visit_columns() -> tuple[Any, ...]:
    """Scalar subqueries reading the open visit and its last zone step (ride the counts)."""
    v, z = _VISIT.c, _STEP.c
    visit = (
        select(v.id)
        .where(
            v.customer_id == bindparam("fr_customer"),
            v.store_id == bindparam("ci_store"),
            v.last_seen_at > bindparam("ci_visit_since"),
        )
        .order_by(v.started_at.desc())
        .limit(1)
    )
    visit_id = visit.scalar_subquery()
    step = select(z.id).where(z.visit_id == visit_id).order_by(z.id.desc()).limit(1)
    return (
        visit_id,
        visit.with_only_columns(v.started_at).scalar_subquery(),
        visit.with_only_columns(v.checkins).scalar_subquery(),
        step.scalar_subquery(),
        step.with_only_columns(z.zone_id).scalar_subquery(),
    )


@functools.cache
def _reads_statement(with_device: bool, with_visit: bool) -> DriverStatement:
    """Every counter of the fraud rules, plus the open visit when the code verified."""
    return DriverStatement(
        select(*fraud.counts_columns(with_device), *(_open_visit_columns() if with_visit else ()))
    )


_ATTEMPT_KEYS = ("customer_id", "device_id", "code", "at", "short_id", "store_id", "outcome")
_VISIT_KEYS = ("id", "customer_id", "store_id", "started_at", "last_seen_at", "checkins")
_STEP_KEYS = ("visit_id", "zone_id", "entered_at")
# inline(): the new rows' keys are not read back (no RETURNING on PostgreSQL).
_INSERT_ATTEMPT = DriverStatement(insert(_ATTEMPT).inline(), _ATTEMPT_KEYS)
_INSERT_VISIT = DriverStatement(insert(_VISIT).inline(), _VISIT_KEYS)
_INSERT_STEP = DriverStatement(insert(_STEP).inline(), _STEP_KEYS)
_EXTEND_VISIT = DriverStatement(
    update(_VISIT)
    .where(_VISIT.c.id == bindparam("ci_visit"))
    .values(last_seen_at=bindparam("ci_now"), checkins=_VISIT.c.checkins + 1)
)
_TOUCH_CUSTOMER = DriverStatement(
    update(_CUSTOMER)
    .where(_CUSTOMER.c.id == bindparam("ci_customer"))
    .values(last_checkin_at=bindparam("ci_now"))
)


def prepare_statements(dialect: Any) -> None:
    """Compile every check-in statement for ``dialect`` now (the app does at start).

    Compiling them costs ~20 ms of CPU; left to the first check-ins, it stalls the single
    SQLite check-in thread and the requests queued behind it (the first second after a
    start had a p99 of 100+ ms for that alone).
    """
    statements = [
        _LOCK_BY_ID,
        _LOCK_BY_SESSION,
        _INSERT_ATTEMPT,
        _INSERT_VISIT,
        _INSERT_STEP,
        _EXTEND_VISIT,
        _TOUCH_CUSTOMER,
    ]
    statements += [_reads_statement(device, visit) for device in (0, 1) for visit in (0, 1)]
    for statement in statements:
        statement.sql(dialect)


def check_in(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    customer_id: str | None,
    req: CheckinRequest,
    session_hash: str | None = None,
) -> CheckinResponse:
    """Verify a heard beacon code and record the visit; raise CheckinRefused/RateLimited.

    The customer is ``customer_id``, or with ``session_hash`` (the phone's session, as the
    route passes it) whoever that session belongs to, verified under the customer lock.
    Statements: lock, one read of every counter and the open visit, then the writes
    (attempt, visit, zone step if the zone changed, customer) and the campaign engine's.
    """
    now = clock.now()
    connection = session.connection()
    locked = _lock_customer(connection, customer_id, session_hash, now)
    customer_id = str(locked["id"])
    # Pure work first (no rule decided yet): which beacon, and does its MAC verify?
    payload = from_hex(req.code)
    is_beacon = kind_of(payload) is CodeKind.BEACON
    short_id = split_beacon_code(payload).short_id if is_beacon else None
    registry = registry_cache.cache_for(session)
    beacon = registry.beacon(session, crypto, short_id, now) if short_id is not None else None
    verified = beacon is not None and _verify(beacon, payload, now)
    params = fraud.counts_params(now, customer_id, req.device_id, req.code)
    if verified:
        params.update(ci_store=beacon.store_id, ci_visit_since=now - VISIT_IDLE)
    row = _reads_statement(req.device_id is not None, verified).first(connection, params)
    assert row is not None  # a SELECT of scalar subqueries without FROM: always one row
    counts, visit_row = fraud.counts_from_row(row), row[fraud.COUNT_COLUMNS :]
    # The rules, in order: the first that fails decides the answer.
    try:
        fraud.check_rate_limits(counts, req.device_id)
    except RateLimited as exc:
        session.rollback()  # release the lock now, not in a later teardown
        CHECKINS.labels(exc.code).inc()
        raise
    attempt: dict[str, Any] = {
        "customer_id": customer_id,
        "device_id": req.device_id,
        "code": req.code,
        "at": now,
        "short_id": short_id,
        "store_id": None,
    }
    if abs(req.heard_at - now) > MAX_HEARD_SKEW:
        raise _refuse(session, attempt, "stale_heard_at", "heard_at is too far from the hub's time")
    if not is_beacon:
        raise _refuse(session, attempt, "not_beacon", "that is a phone token, not a beacon code")
    if beacon is None or not verified:
        raise _refuse(session, attempt, "bad_code", CODE_NOT_ACCEPTED)
    if beacon.revoked:
        raise _refuse(session, attempt, NODE_REVOKED, "this beacon's node has been revoked")
    store = registry.store(session, beacon.store_id, now)
    assert store is not None  # foreign key
    attempt["store_id"] = store.id
    try:
        fraud.check_code_use(counts, store.capacity)
    except RateLimited as exc:
        raise _refuse(session, attempt, exc.code, exc.message) from None
    if not store.is_open(now):
        raise _refuse(session, attempt, "store_closed", "the store is closed at this time")
    if counts.last_store_id and counts.last_at and counts.last_store_id != store.id:
        previous = registry.store(session, counts.last_store_id, now)
        if previous and fraud.is_impossible_travel(previous, counts.last_at, store, now):
            raise _refuse(session, attempt, "impossible_travel", "check-in refused")
    open_visit = _OpenVisit(*visit_row) if visit_row and visit_row[0] is not None else None
    visit, writes = _record_visit(customer_id, store.id, beacon.zone_id, now, open_visit)
    new_visit = open_visit is None
    attempt["outcome"] = "accepted" if new_visit else "same_visit"
    writes.append((_INSERT_ATTEMPT, attempt))
    writes.append((_TOUCH_CUSTOMER, {"ci_customer": customer_id, "ci_now": now}))
    run_all(connection, writes)  # PostgreSQL: one round trip for the 3-4 writes
    CHECKINS.labels(attempt["outcome"]).inc()
    # Campaign grants are decided in this same transaction (customer row already locked).
    grants = campaign_hooks.on_checkin(
        session, now, customer_id, store.id, beacon.zone_id, visit, new_visit, locked
    )
    return CheckinResponse(
        visit_id=visit.id,
        store_id=store.id,
        zone_id=beacon.zone_id,
        new_visit=new_visit,
        grants=grants,
    )


def _record_visit(
    customer_id: str,
    store_id: str,
    zone_id: str | None,
    now: datetime,
    open_visit: _OpenVisit | None,
) -> tuple[Visit, list[tuple[DriverStatement, dict[str, Any]]]]:
    """Extend the open visit (adding a zone step if the zone changed) or start a new one:
    the visit as it will be, and the writes that make it so (run by the caller)."""
    if open_visit is None:
        visit_id = new_id("vis")
        writes = [
            (
                _INSERT_VISIT,
                {
                    "id": visit_id,
                    "customer_id": customer_id,
                    "store_id": store_id,
                    "started_at": now,
                    "last_seen_at": now,
                    "checkins": 1,
                },
            ),
            (_INSERT_STEP, {"visit_id": visit_id, "zone_id": zone_id, "entered_at": now}),
        ]
        visit = _visit(
            id=visit_id,
            customer_id=customer_id,
            store_id=store_id,
            started_at=now,
            last_seen_at=now,
            checkins=1,
        )
        return visit, writes
    writes = [(_EXTEND_VISIT, {"ci_visit": open_visit.id, "ci_now": now})]
    if open_visit.last_step_id is None or open_visit.last_zone_id != zone_id:
        writes.append(
            (_INSERT_STEP, {"visit_id": open_visit.id, "zone_id": zone_id, "entered_at": now})
        )
    visit = _visit(
        id=open_visit.id,
        customer_id=customer_id,
        store_id=store_id,
        started_at=open_visit.started_at,
        last_seen_at=now,
        checkins=open_visit.checkins + 1,
    )
    return visit, writes


_mappers_configured = False


def _visit(**values: Any) -> Visit:
    """A Visit of values this module made itself, unvalidated (a validated one costs ~0.15 ms).

    An unvalidated instance's attributes need the ORM mappers configured, which a
    validated construction would have triggered: done once here.
    """
    global _mappers_configured
    if not _mappers_configured:
        configure_mappers()
        _mappers_configured = True
    return Visit.model_construct(**values)


def zone_path(session: Session, visit_id: str) -> list[str | None]:
    """The zones a visit went through, in order."""
    steps = session.exec(
        orm_select(VisitZone).where(VisitZone.visit_id == visit_id).order_by(col(VisitZone.id))
    ).all()
    return [s.zone_id for s in steps]


def issue_phone_token(session: Session, clock: Clock, customer_id: str) -> PhoneTokenResponse:
    """A fresh short-lived token for the phone to play; the customer's expired ones go."""
    now = clock.now()
    for old in session.exec(
        orm_select(PhoneToken).where(
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
