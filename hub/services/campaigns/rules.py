"""Pure campaign rules: trigger match, where, when (store time zone), audience, holdout bucket."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from hub.models.campaigns import Trigger
from hub.models.registry import WEEKDAYS, _hhmm

# The holdout bucket is the first 64 bits of SHA-256: uniform, stable across processes
# and versions (Python's hash() is salted per process, so it would not be stable).
_BUCKET_BITS = 64
_BUCKET_SPAN = float(2**_BUCKET_BITS)
MINUTES_PER_HOUR = 60
SECONDS_PER_MINUTE = 60
SECONDS_PER_DAY = 86_400
# campaign_grant.source_event is 120 characters wide.
SOURCE_KEY_MAX = 120


class CampaignRules(Protocol):
    """What the rules read of a campaign: a ``Campaign`` row or an index snapshot."""

    id: str
    region_id: str | None
    trigger: str
    trigger_param: int | None
    audience: dict[str, Any]
    where: dict[str, Any]
    when: dict[str, Any]
    holdout_share: float


class StoreRules(Protocol):
    """What the rules read of a store: a ``Store`` row or the index's cached facts."""

    @property
    def id(self) -> str: ...

    @property
    def region_id(self) -> str: ...

    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True)
class TriggerEvent:
    """Something a customer did that campaigns may react to."""

    channel: str  # checkin | mqtt | kiosk
    event_id: str  # the source's own id (visit id, MQTT envelope id, kiosk request id)
    customer_id: str
    store_id: str
    at: datetime
    zone_id: str | None = None
    visit_id: str | None = None
    new_visit: bool = False
    visit_started_at: datetime | None = None
    # The source (visit) was created in the evaluating transaction: nothing can have
    # been decided for it yet, so replays need no lookup.
    new_source: bool = False


@dataclass
class CustomerFacts:
    """What audience rules and history triggers read about the customer (loaded once)."""

    gender: str | None
    age_band: str | None
    postal_code: str | None
    consents: frozenset[str]
    tags: frozenset[str]
    visits_before: int  # visits to any store before this event's visit
    store_visits_before: int  # visits to this store before this event's visit
    previous_store_visit_at: datetime | None  # last time seen in this store before this visit
    extra: dict[str, object] = field(default_factory=dict)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    """ZoneInfo objects are cached: building one reads the tz database."""
    return ZoneInfo(name)


def store_local(store: StoreRules, at: datetime) -> datetime:
    """``at`` in the store's own time zone."""
    return at.astimezone(_zone(store.timezone))


def store_day(store: StoreRules, at: datetime) -> str:
    """The store's calendar day at ``at`` (YYYY-MM-DD): the unit of daily caps."""
    return store_local(store, at).date().isoformat()


def in_span(minute: int, start: str, end: str) -> bool:
    """Whether ``minute`` (after local midnight) lies in [start, end); end < start wraps."""
    lo, hi = _hhmm(start), _hhmm(end)
    if lo < hi:
        return lo <= minute < hi
    return minute >= lo or minute < hi


def trigger_fires(campaign: CampaignRules, event: TriggerEvent) -> bool:
    """Whether ``event`` is the kind of event ``campaign`` reacts to (history checked later)."""
    trigger = Trigger(campaign.trigger)
    if event.channel == "kiosk":
        return trigger is Trigger.KIOSK_SIGNIN
    if trigger in (Trigger.CHECKIN, Trigger.FIRST_VISIT, Trigger.RETURN_AFTER_DAYS):
        return event.channel == "checkin" and event.new_visit
    if trigger is Trigger.ZONE_ENTRY:
        return event.zone_id is not None and event.zone_id in campaign.where.get("zones", [])
    if trigger is Trigger.DWELL:
        return (
            event.visit_started_at is not None
            and (event.at - event.visit_started_at).total_seconds()
            >= (campaign.trigger_param or 0) * SECONDS_PER_MINUTE
        )
    return False


def where_reasons(campaign: CampaignRules, store: StoreRules, zone_id: str | None) -> list[str]:
    """Why the campaign does not run at this store/zone (empty: it does)."""
    where = campaign.where or {}
    reasons = []
    if campaign.region_id and store.region_id != campaign.region_id:
        reasons.append("store outside the campaign's region")
    if where.get("stores") and store.id not in where["stores"]:
        reasons.append("store not in where.stores")
    if where.get("regions") and store.region_id not in where["regions"]:
        reasons.append("region not in where.regions")
    zones = where.get("zones") or []
    if zones and zone_id not in zones:
        reasons.append("zone not in where.zones")
    return reasons


def when_reasons(campaign: CampaignRules, store: StoreRules, at: datetime) -> list[str]:
    """Why the campaign does not run at ``at`` in the store's local time (empty: it does)."""
    when = campaign.when or {}
    reasons = []
    starts, ends = when.get("starts_at"), when.get("ends_at")
    if starts and at < datetime.fromisoformat(starts):
        reasons.append("before starts_at")
    if ends and at >= datetime.fromisoformat(ends):
        reasons.append("after ends_at")
    local = store_local(store, at)
    minute = local.hour * MINUTES_PER_HOUR + local.minute
    days = when.get("days") or []
    if days and WEEKDAYS[local.weekday()] not in days:
        reasons.append("not on one of the campaign's days")
    hours = when.get("hours")
    if hours and not in_span(minute, hours["start"], hours["end"]):
        reasons.append("outside the campaign's hours")
    quiet = when.get("quiet_hours")
    if quiet and in_span(minute, quiet["start"], quiet["end"]):
        reasons.append("quiet hours")
    return reasons


def audience_reasons(campaign: CampaignRules, facts: CustomerFacts) -> list[str]:
    """Why the customer is outside the audience (empty: inside)."""
    rules = campaign.audience or {}
    reasons = []
    if rules.get("genders") and facts.gender not in rules["genders"]:
        reasons.append("gender not in audience")
    if rules.get("age_bands") and facts.age_band not in rules["age_bands"]:
        reasons.append("age band not in audience")
    prefixes = rules.get("postal_prefixes") or []
    if prefixes and not (facts.postal_code and facts.postal_code.startswith(tuple(prefixes))):
        reasons.append("postal code not in audience")
    missing = [t for t in rules.get("tags_all") or [] if t not in facts.tags]
    if missing:
        reasons.append(f"missing tag {missing[0]}")
    banned = [t for t in rules.get("tags_none") or [] if t in facts.tags]
    if banned:
        reasons.append(f"excluded by tag {banned[0]}")
    if rules.get("min_visits") is not None and facts.visits_before < rules["min_visits"]:
        reasons.append("fewer visits than min_visits")
    if rules.get("max_visits") is not None and facts.visits_before > rules["max_visits"]:
        reasons.append("more visits than max_visits")
    lacking = [c for c in rules.get("consents") or [] if c not in facts.consents]
    if lacking:
        reasons.append(f"no {lacking[0]} consent")
    return reasons


def history_reasons(campaign: CampaignRules, facts: CustomerFacts, at: datetime) -> list[str]:
    """Visit-history conditions of the first-visit and return-after-N-days triggers."""
    trigger = Trigger(campaign.trigger)
    if trigger is Trigger.FIRST_VISIT and facts.store_visits_before > 0:
        return ["not the first visit to this store"]
    if trigger is Trigger.RETURN_AFTER_DAYS:
        previous = facts.previous_store_visit_at
        if previous is None:
            return ["no earlier visit to this store"]
        days = (at - previous).total_seconds() / SECONDS_PER_DAY
        if days < (campaign.trigger_param or 0):
            return [f"returned after {days:.1f} days, fewer than {campaign.trigger_param}"]
    return []


def holdout_bucket(campaign_id: str, customer_id: str) -> float:
    """A stable number in [0, 1) for (campaign, customer).

    Salted with the campaign id so one unlucky customer is not in every control group.
    """
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[: _BUCKET_BITS // 8], "big") / _BUCKET_SPAN


def in_holdout(campaign: CampaignRules, customer_id: str) -> bool:
    """Whether the customer is in the campaign's control group."""
    return campaign.holdout_share > 0 and (
        holdout_bucket(campaign.id, customer_id) < campaign.holdout_share
    )


def source_key(campaign: CampaignRules, event: TriggerEvent) -> str:
    """The key that makes one event grant at most once per campaign, however often it arrives.

    Visit ids belong to one customer; other sources' ids are prefixed with the customer,
    so one customer's event can never collide with another's.
    """
    if event.visit_id:
        base = f"visit:{event.visit_id}"
    else:
        base = f"{event.channel}:{event.customer_id}:{event.event_id}"
    trigger = Trigger(campaign.trigger)
    if trigger is Trigger.ZONE_ENTRY:
        base = f"{base}:zone:{event.zone_id}"
    elif trigger is Trigger.DWELL:
        base = f"{base}:dwell"
    elif trigger is Trigger.KIOSK_SIGNIN:
        base = f"kiosk:{event.customer_id}:{event.event_id}"
    if len(base) <= SOURCE_KEY_MAX:
        return base
    # Long ids (an MQTT uuid plus a zone) are hashed to fit the column, keeping uniqueness.
    return f"{event.channel}:{hashlib.sha256(base.encode()).hexdigest()}"
