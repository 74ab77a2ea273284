"""Check-in fraud rules: rate limits, opening hours, impossible travel (pure where possible)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, false, or_
from sqlmodel import Session, func, select

from hub.models.checkins import CheckinAttempt
from hub.models.registry import WEEKDAYS, Store
from hub.services.errors import RateLimited

# A phone in a store hears at most a few zone beacons a minute; ten attempts a minute
# from one customer or one device is already a script, not a walk.
MAX_ATTEMPTS_PER_CUSTOMER = 10
MAX_ATTEMPTS_PER_DEVICE = 10
ATTEMPT_WINDOW = timedelta(minutes=1)
# Guessing a 30-bit MAC needs many failures; five per ten minutes stops it cold while a
# real customer who stood at the door for a stale code still gets through.
MAX_FAILURES_PER_CUSTOMER = 5
FAILURE_WINDOW = timedelta(minutes=10)
# A code lives for the slot window (about 90 s); no more customers than the store holds
# can hear it in that time, so more uses than capacity means a posted recording.
CODE_WINDOW = timedelta(minutes=3)
# Ground travel tops out with high-speed rail; faster between two stores is a replay.
MAX_TRAVEL_SPEED_KMH = 300.0
# Two stores this close share a mall or a street: walking between them is always possible.
NEARBY_STORES_KM = 1.0
EARTH_RADIUS_KM = 6371.0088
MINUTES_PER_HOUR = 60


def _count(session: Session, *where: Any) -> int:
    """Number of attempts matching ``where``."""
    return int(session.exec(select(func.count()).select_from(CheckinAttempt).where(*where)).one())


def check_rate_limits(
    session: Session, now: datetime, customer_id: str, device_id: str | None
) -> None:
    """Refuse a customer or device that is attempting too often or failing too often."""
    since = now - ATTEMPT_WINDOW
    # No device id must match no row (``== None`` would mean every device-less attempt).
    same_device = CheckinAttempt.device_id == device_id if device_id is not None else false()
    failed = CheckinAttempt.outcome.not_in(("accepted", "same_visit"))  # type: ignore[attr-defined]
    # One query for the three counters: this runs on every check-in.
    by_customer, by_device, failures = session.exec(
        select(
            func.count(
                case(
                    (and_(CheckinAttempt.customer_id == customer_id, CheckinAttempt.at > since), 1)
                )
            ),
            func.count(case((and_(same_device, CheckinAttempt.at > since), 1))),
            func.count(case((and_(CheckinAttempt.customer_id == customer_id, failed), 1))),
        ).where(
            or_(CheckinAttempt.customer_id == customer_id, same_device),
            CheckinAttempt.at > now - max(ATTEMPT_WINDOW, FAILURE_WINDOW),
        )
    ).one()
    retry_s = int(ATTEMPT_WINDOW.total_seconds())
    if by_customer >= MAX_ATTEMPTS_PER_CUSTOMER:
        raise RateLimited("too many check-ins from this account", retry_s, "customer_rate")
    if device_id is not None and by_device >= MAX_ATTEMPTS_PER_DEVICE:
        raise RateLimited("too many check-ins from this device", retry_s, "device_rate")
    if failures >= MAX_FAILURES_PER_CUSTOMER:
        raise RateLimited(
            "too many refused check-ins; try again later",
            int(FAILURE_WINDOW.total_seconds()),
            "failure_rate",
        )


def check_code_use(session: Session, now: datetime, code: str, store: Store) -> None:
    """Refuse a code used by more customers than the store can hold (a shared recording)."""
    uses = _count(
        session,
        CheckinAttempt.code == code,
        CheckinAttempt.at > now - CODE_WINDOW,
        CheckinAttempt.outcome == "accepted",
    )
    if uses >= store.capacity:
        raise RateLimited(
            "this code has been used too often", int(CODE_WINDOW.total_seconds()), "code_rate"
        )


def is_open(store: Store, when: datetime) -> bool:
    """Whether ``store`` is open at ``when`` in its own time zone (no hours = always open)."""
    hours: dict[str, list[list[str]]] = store.opening_hours or {}
    if not hours:
        return True
    local = when.astimezone(ZoneInfo(store.timezone))
    minute = local.hour * MINUTES_PER_HOUR + local.minute
    for start, end in hours.get(WEEKDAYS[local.weekday()], []):
        if _minutes(start) <= minute < _minutes(end):
            return True
    return False


def _minutes(hhmm: str) -> int:
    """Minutes after midnight of ``HH:MM``."""
    hours, minutes = hhmm.split(":")
    return int(hours) * MINUTES_PER_HOUR + int(minutes)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) between two points, in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def is_impossible_travel(
    previous: Store, previous_at: datetime, current: Store, now: datetime
) -> bool:
    """Whether reaching ``current`` by ``now`` from ``previous`` at ``previous_at`` is too fast."""
    if previous.id == current.id:
        return False
    km = distance_km(previous.latitude, previous.longitude, current.latitude, current.longitude)
    if km <= NEARBY_STORES_KM:
        return False
    hours = max((now - previous_at).total_seconds(), 1.0) / 3600
    return km / hours > MAX_TRAVEL_SPEED_KMH
