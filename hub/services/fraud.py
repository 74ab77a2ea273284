"""Check-in fraud rules: rate limits, opening hours, impossible travel (pure where possible)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, func, literal, select

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
_ATTEMPT = CheckinAttempt.__table__  # type: ignore[attr-defined]


ACCEPTED_OUTCOMES = ("accepted", "same_visit")
# The same as plain bound values: ``in_`` of a tuple of strings would be an "expanding"
# parameter that SQLAlchemy re-renders into the SQL on every execution.
_ACCEPTED = tuple(literal(outcome) for outcome in ACCEPTED_OUTCOMES)


@dataclass(frozen=True, slots=True)
class AttemptCounts:
    """The recent attempts every rate limit needs, read in one statement."""

    by_customer: int
    by_device: int
    failures: int
    code_uses: int
    last_store_id: str | None
    last_at: datetime | None


def _count(*where: Any) -> Any:
    """A scalar subquery counting attempts matching ``where``."""
    return select(func.count()).select_from(_ATTEMPT).where(*where).scalar_subquery()


@functools.cache
def counts_columns(with_device: bool) -> tuple[Any, ...]:
    """The counters of :class:`AttemptCounts` as scalar subqueries over bind parameters.

    Built once per variant and reused: building and cache-keying a SQLAlchemy statement
    costs more CPU than SQLite takes to run it. Each subquery uses its own index
    (customer, device, code). Parameters: :func:`counts_params`.
    """
    a = _ATTEMPT.c
    customer = bindparam("fr_customer")
    last = (
        select(a.store_id, a.at)
        .where(a.customer_id == customer, a.outcome.in_(_ACCEPTED))
        .order_by(a.at.desc(), a.id.desc())
        .limit(1)
    )
    # No device id must match no row (``== None`` would mean every device-less attempt).
    by_device = (
        _count(a.device_id == bindparam("fr_device"), a.at > bindparam("fr_attempts_since"))
        if with_device
        else literal(0)
    )
    return (
        _count(a.customer_id == customer, a.at > bindparam("fr_attempts_since")),
        by_device,
        _count(
            a.customer_id == customer,
            a.at > bindparam("fr_failures_since"),
            a.outcome.not_in(_ACCEPTED),
        ),
        _count(
            a.code == bindparam("fr_code"),
            a.at > bindparam("fr_code_since"),
            a.outcome == "accepted",
        ),
        last.with_only_columns(a.store_id).scalar_subquery(),
        last.with_only_columns(a.at).scalar_subquery(),
    )


def counts_params(
    now: datetime, customer_id: str, device_id: str | None, code: str
) -> dict[str, Any]:
    """The bind parameters of :func:`counts_columns`."""
    return {
        "fr_customer": customer_id,
        "fr_device": device_id,
        "fr_code": code,
        "fr_attempts_since": now - ATTEMPT_WINDOW,
        "fr_failures_since": now - FAILURE_WINDOW,
        "fr_code_since": now - CODE_WINDOW,
    }


def counts_from_row(row: Sequence[Any]) -> AttemptCounts:
    """The :class:`AttemptCounts` in the first columns of a row that selected them."""
    return AttemptCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], row[5])


COUNT_COLUMNS = 6


def read_counts(
    connection: Connection, now: datetime, customer_id: str, device_id: str | None, code: str
) -> AttemptCounts:
    """Every counter of the rules below and the customer's last accepted check-in, at once.

    Run it after locking the customer's row so concurrent check-ins of one customer see
    each other. (The check-in service adds its own reads to the same statement.)
    """
    query = select(*counts_columns(device_id is not None))
    row = connection.execute(query, counts_params(now, customer_id, device_id, code)).one()
    return counts_from_row(row)


def check_rate_limits(counts: AttemptCounts, device_id: str | None) -> None:
    """Refuse a customer or device that is attempting too often or failing too often."""
    retry_s = int(ATTEMPT_WINDOW.total_seconds())
    if counts.by_customer >= MAX_ATTEMPTS_PER_CUSTOMER:
        raise RateLimited("too many check-ins from this account", retry_s, "customer_rate")
    if device_id is not None and counts.by_device >= MAX_ATTEMPTS_PER_DEVICE:
        raise RateLimited("too many check-ins from this device", retry_s, "device_rate")
    if counts.failures >= MAX_FAILURES_PER_CUSTOMER:
        raise RateLimited(
            "too many refused check-ins; try again later",
            int(FAILURE_WINDOW.total_seconds()),
            "failure_rate",
        )


def check_code_use(counts: AttemptCounts, capacity: int) -> None:
    """Refuse a code used by more customers than the store can hold (a shared recording)."""
    if counts.code_uses >= capacity:
        raise RateLimited(
            "this code has been used too often", int(CODE_WINDOW.total_seconds()), "code_rate"
        )


OpeningSpans = tuple[tuple[tuple[int, int], ...], ...]


def opening_spans(hours: dict[str, Any] | None) -> OpeningSpans | None:
    """Hours ``{"mon": [["09:00", "21:00"]]}`` as [start, end) minutes per weekday (Monday 0).

    None when there are no hours at all: a store that never closes.
    """
    if not hours:
        return None
    return tuple(
        tuple((_minutes(start), _minutes(end)) for start, end in hours.get(day, []))
        for day in WEEKDAYS
    )


def is_open_at(spans: OpeningSpans | None, timezone: ZoneInfo, when: datetime) -> bool:
    """Whether a store with ``spans`` in ``timezone`` is open at ``when``."""
    if spans is None:
        return True
    local = when.astimezone(timezone)
    minute = local.hour * MINUTES_PER_HOUR + local.minute
    return any(start <= minute < end for start, end in spans[local.weekday()])


def is_open(store: Store, when: datetime) -> bool:
    """Whether ``store`` is open at ``when`` in its own time zone (no hours = always open)."""
    return is_open_at(opening_spans(store.opening_hours), ZoneInfo(store.timezone), when)


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


class Place(Protocol):
    """Anything with a store id and coordinates (a Store row or a cached store)."""

    id: str
    latitude: float
    longitude: float


def is_impossible_travel(
    previous: Place, previous_at: datetime, current: Place, now: datetime
) -> bool:
    """Whether reaching ``current`` by ``now`` from ``previous`` at ``previous_at`` is too fast."""
    if previous.id == current.id:
        return False
    km = distance_km(previous.latitude, previous.longitude, current.latitude, current.longitude)
    if km <= NEARBY_STORES_KM:
        return False
    hours = max((now - previous_at).total_seconds(), 1.0) / 3600
    return km / hours > MAX_TRAVEL_SPEED_KMH
