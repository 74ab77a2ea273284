"""Quiet hours: whether a local time falls in a window (which may span midnight), and its end."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# Zones are few (one per store, a handful per country); caching saves a file read per call.
_ZONE_CACHE_SIZE = 256


@lru_cache(maxsize=_ZONE_CACHE_SIZE)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for ``name`` (cached)."""
    return ZoneInfo(name)


def in_window(local: time, start: time, end: time) -> bool:
    """Whether ``local`` lies in [start, end) where end < start means the window spans midnight."""
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_until(now: datetime, start: time, end: time, tz_name: str) -> datetime | None:
    """When quiet hours end if ``now`` is inside them (UTC), else None."""
    tz = zone(tz_name)
    local = now.astimezone(tz)
    if not in_window(local.time().replace(tzinfo=None), start, end):
        return None
    day = local.date()
    candidate = datetime.combine(day, end, tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(day + timedelta(days=1), end, tzinfo=tz)
    return candidate.astimezone(UTC)
