"""Registry tables and API models: regions, stores, zones, nodes, beacons, alerts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, field_validator
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime
from storewave.wire import NODE_ID_PATTERN

# Store and region ids travel in URLs and wire messages: short, URL-safe, lower-case.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,63}$"
DEFAULT_TIMEZONE = "Asia/Shanghai"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Shoplat's generators were set between 3 and 10 m by output power (SEEDS.md 1).
MIN_RANGE_M = 3.0
MAX_RANGE_M = 10.0


class StoreTier(StrEnum):
    """Store efficiency tiers of SEEDS.md 5."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class NodeState(StrEnum):
    """A node's lifecycle and presence as the hub sees it."""

    PROVISIONED = "provisioned"
    ONLINE = "online"
    LOST = "lost"
    OFFLINE = "offline"
    REVOKED = "revoked"


# ---------------------------------------------------------------- regions


class RegionBase(SQLModel):
    name: str = Field(min_length=1, max_length=120)


class Region(RegionBase, table=True):
    id: str = Field(primary_key=True, max_length=64)


class RegionCreate(RegionBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"id": "fz", "name": "Fuzhou"}]}
    )
    id: str = Field(schema_extra={"pattern": SLUG_PATTERN})


class RegionPublic(RegionBase):
    id: str


# ---------------------------------------------------------------- stores

OpeningHours = dict[str, list[tuple[str, str]]]


def _check_opening_hours(value: dict[str, Any]) -> dict[str, Any]:
    """``{"mon": [["09:00", "21:00"]], ...}``: known days, HH:MM pairs, open before close."""
    for day, spans in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
        for span in spans:
            if len(span) != 2:
                raise ValueError(f"{day}: each span is [open, close]")
            start, end = (_hhmm(t) for t in span)
            if start >= end:
                raise ValueError(f"{day}: opening {span[0]} must be before closing {span[1]}")
    return value


def _hhmm(text: str) -> int:
    """Minutes after midnight of ``HH:MM`` (24:00 allowed as end of day)."""
    try:
        hours, minutes = (int(p) for p in text.split(":"))
    except ValueError:
        raise ValueError(f"time {text!r} is not HH:MM") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"time {text!r} is out of range")
    return hours * 60 + minutes


class StoreBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field("", max_length=400)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    timezone: str = Field(DEFAULT_TIMEZONE, max_length=64)
    capacity: int = Field(50, ge=1, le=100_000)
    tier: StoreTier = StoreTier.MEDIUM


class Store(StoreBase, table=True):
    id: str = Field(primary_key=True, max_length=64)
    region_id: str = Field(foreign_key="region.id", index=True, max_length=64)
    opening_hours: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class StoreCreate(StoreBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "id": "fz-gulou",
                    "region_id": "fz",
                    "name": "Gulou flagship",
                    "address": "88 Wusi Rd, Gulou, Fuzhou",
                    "latitude": 26.0845,
                    "longitude": 119.2965,
                    "timezone": "Asia/Shanghai",
                    "opening_hours": {"mon": [["09:00", "21:00"]]},
                    "capacity": 60,
                    "tier": "high",
                }
            ]
        }
    )
    id: str = Field(schema_extra={"pattern": SLUG_PATTERN})
    region_id: str
    opening_hours: dict[str, list[list[str]]] = Field(default_factory=dict)

    @field_validator("opening_hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_opening_hours(value)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return check_timezone(value)


def check_timezone(value: str) -> str:
    """Refuse a time zone name the tz database does not know."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class StoreUpdate(SQLModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    address: str | None = Field(None, max_length=400)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    timezone: str | None = Field(None, max_length=64)
    capacity: int | None = Field(None, ge=1, le=100_000)
    tier: StoreTier | None = None
    opening_hours: dict[str, list[list[str]]] | None = None

    @field_validator("opening_hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_opening_hours(value)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class StorePublic(StoreBase):
    id: str
    region_id: str
    opening_hours: dict[str, Any]


# ---------------------------------------------------------------- zones


class ZoneBase(SQLModel):
    name: str = Field(min_length=1, max_length=120)


class Zone(ZoneBase, table=True):
    id: str = Field(primary_key=True, max_length=64)
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)


class ZoneCreate(ZoneBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"id": "fz-gulou-phones", "name": "Phones"}]}
    )
    id: str = Field(schema_extra={"pattern": SLUG_PATTERN})


class ZonePublic(ZoneBase):
    id: str
    store_id: str


# ---------------------------------------------------------------- nodes


class Node(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    zone_id: str | None = Field(None, foreign_key="zone.id", max_length=64)
    password_hash: str = Field(max_length=128)
    state: str = Field(NodeState.PROVISIONED.value, max_length=16)
    boot: int | None = None
    last_seen_at: datetime | None = Field(None, sa_type=UtcDateTime)
    config_version: int = 0
    reported_config_version: int | None = None
    health: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(sa_type=UtcDateTime)


class NodeCreate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [{"id": "fz-gulou-n1", "store_id": "fz-gulou", "zone_id": "fz-gulou-door"}]
        }
    )
    id: str = Field(schema_extra={"pattern": NODE_ID_PATTERN})
    store_id: str
    zone_id: str | None = None


class NodeUpdate(SQLModel):
    store_id: str | None = None
    zone_id: str | None = None


class NodePublic(SQLModel):
    id: str
    store_id: str
    zone_id: str | None
    state: str
    boot: int | None
    last_seen_at: datetime | None
    config_version: int
    reported_config_version: int | None
    health: dict[str, Any]


class NodeCredentials(SQLModel):
    """Returned once at provisioning or reset; the hub keeps only a hash."""

    node: NodePublic
    mqtt_username: str
    mqtt_password: str


# ---------------------------------------------------------------- beacons


class Beacon(SQLModel, table=True):
    short_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    node_id: str = Field(foreign_key="node.id", unique=True, max_length=64)
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    zone_id: str | None = Field(None, foreign_key="zone.id", max_length=64)
    key_enc: str = Field(max_length=512)
    previous_key_enc: str | None = Field(None, max_length=512)
    previous_key_until: datetime | None = Field(None, sa_type=UtcDateTime)
    range_m: float
    level_dbfs: float
    slot_s: int
    created_at: datetime = Field(sa_type=UtcDateTime)
    rotated_at: datetime | None = Field(None, sa_type=UtcDateTime)


class BeaconCreate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"node_id": "fz-gulou-n1", "range_m": 5}]}
    )
    node_id: str
    range_m: float = Field(ge=MIN_RANGE_M, le=MAX_RANGE_M)


class BeaconUpdate(SQLModel):
    range_m: float = Field(ge=MIN_RANGE_M, le=MAX_RANGE_M)


class BeaconPublic(SQLModel):
    short_id: int
    node_id: str
    store_id: str
    zone_id: str | None
    range_m: float
    level_dbfs: float
    slot_s: int
    rotated_at: datetime | None


class BeaconHearing(SQLModel, table=True):
    """A node heard a beacon (its own in a self-test, or a neighbour's)."""

    __tablename__ = "beacon_hearing"
    node_id: str = Field(primary_key=True, max_length=64)
    short_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_heard_at: datetime = Field(sa_type=UtcDateTime)
    snr_db: float
    count: int = 0


# ---------------------------------------------------------------- alerts


class Alert(SQLModel, table=True):
    """Something an operator should look at; ``node_id`` may name an unknown node."""

    id: int | None = Field(None, primary_key=True)
    kind: str = Field(max_length=40, index=True)
    node_id: str | None = Field(None, max_length=64, index=True)
    store_id: str | None = Field(None, max_length=64, index=True)
    detail: str = Field("", max_length=500)
    created_at: datetime = Field(sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(None, sa_type=UtcDateTime)


class AlertPublic(SQLModel):
    id: int
    kind: str
    node_id: str | None
    store_id: str | None
    detail: str
    created_at: datetime
    resolved_at: datetime | None
