"""Data-service catalogue (trial length, price, handset fit), free trials and subscriptions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime

# SEEDS.md 2: a free trial lasts one month.
DEFAULT_TRIAL_DAYS = 30
# A trial shorter than a day cannot be cared for; longer than a quarter is a discount.
MIN_TRIAL_DAYS = 1
MAX_TRIAL_DAYS = 92
SERVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,63}$"


class AcquireChannel(StrEnum):
    """Where a trial was signed up (SEEDS.md 2: six channels, the channel is recorded)."""

    FRONT_DESK = "front_desk"
    ONLINE_HALL = "online_hall"
    APP = "app"
    KIOSK = "kiosk"
    CALL_CENTRE = "call_centre"
    SMS = "sms"


class ConvertChannel(StrEnum):
    """How a customer converted with one step."""

    REPLY = "reply"
    APP = "app"
    KIOSK = "kiosk"
    AGENT = "agent"


class TrialState(StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"
    EXPIRED = "expired"


class NonConversionReason(StrEnum):
    """Why a trial did not convert (SEEDS.md 2: analyse the reason)."""

    PRICE = "price"
    NOT_USEFUL = "not_useful"
    NETWORK = "network"
    OTHER = "other"


class DataServiceBase(SQLModel):
    name: str = Field(min_length=1, max_length=120)
    price_fen: int = Field(ge=0, le=10_000_000)  # monthly price in fen (1/100 yuan)
    trial_days: int = Field(DEFAULT_TRIAL_DAYS, ge=MIN_TRIAL_DAYS, le=MAX_TRIAL_DAYS)
    # Low-usage threshold for the care stage's usage helper, in MB over the trial so far.
    low_usage_mb: float = Field(100.0, ge=0)
    bundle_offer: str = Field("", max_length=200)  # offered when the reason is price
    active: bool = True


class DataService(DataServiceBase, table=True):
    __tablename__ = "data_service"
    id: str = Field(primary_key=True, max_length=64)
    # Handset capabilities the service needs, every one of them (e.g. ["5g", "volte"]).
    requires: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class DataServiceCreate(DataServiceBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "id": "video-pack",
                    "name": "Video data pack 20 GB",
                    "price_fen": 300,
                    "trial_days": 30,
                    "requires": ["4g"],
                }
            ]
        }
    )
    id: str = Field(schema_extra={"pattern": SERVICE_ID_PATTERN})
    requires: list[str] = Field(default_factory=list)


class DataServicePublic(DataServiceBase):
    id: str
    requires: list[str]


class Trial(SQLModel, table=True):
    """One customer's free trial of one service, with who signed it up and how it ended."""

    __tablename__ = "trial"
    __table_args__ = (
        Index("ix_trial_customer_service", "customer_id", "service_id"),
        # Set only while active: one running trial per customer and service on both backends.
        UniqueConstraint("active_key", name="uq_trial_active"),
    )
    id: str = Field(primary_key=True, max_length=40)
    service_id: str = Field(foreign_key="data_service.id", index=True, max_length=64)
    customer_id: str = Field(foreign_key="customer.id", ondelete="CASCADE")
    store_id: str | None = Field(None, foreign_key="store.id", index=True, max_length=64)
    city: str | None = Field(None, max_length=64)  # the store's region: city branches acquire
    channel: str = Field(max_length=16)
    staff_id: str | None = Field(None, max_length=64)  # earns the commission
    handset: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(TrialState.ACTIVE.value, max_length=12)
    active_key: str | None = Field(None, max_length=120)
    started_at: datetime = Field(sa_type=UtcDateTime)
    ends_at: datetime = Field(sa_type=UtcDateTime)
    rating: int | None = None
    feedback: str | None = Field(None, max_length=500)
    usage_mb: float | None = None
    converted_at: datetime | None = Field(None, sa_type=UtcDateTime)
    convert_channel: str | None = Field(None, max_length=16)
    reason: str | None = Field(None, max_length=16)
    instance_id: str | None = Field(None, max_length=40)


class Subscription(SQLModel, table=True):
    """A paid service a customer holds (after converting a trial, or bought outright)."""

    __tablename__ = "subscription"
    __table_args__ = (UniqueConstraint("customer_id", "service_id", name="uq_subscription"),)
    id: int | None = Field(None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", ondelete="CASCADE")
    service_id: str = Field(foreign_key="data_service.id", max_length=64)
    trial_id: str | None = Field(None, foreign_key="trial.id", max_length=40)
    price_fen: int
    started_at: datetime = Field(sa_type=UtcDateTime)


class TrialStart(SQLModel):
    """A trial sign-up at a channel; the staff member earns the commission."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "service_id": "video-pack",
                    "customer_id": "cus_0192...",
                    "store_id": "fz-gulou",
                    "channel": "front_desk",
                    "staff_id": "emp-0042",
                    "handset": ["4g", "volte"],
                }
            ]
        }
    )
    service_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=40)
    store_id: str = Field(max_length=64)
    channel: AcquireChannel
    staff_id: str | None = Field(None, max_length=64)
    handset: list[str] = Field(default_factory=list, max_length=16)


class TrialPublic(SQLModel):
    id: str
    service_id: str
    customer_id: str
    store_id: str | None
    city: str | None
    channel: str
    staff_id: str | None
    state: str
    started_at: datetime
    ends_at: datetime
    rating: int | None
    usage_mb: float | None
    converted_at: datetime | None
    convert_channel: str | None
    reason: str | None
    instance_id: str | None


class UsageReport(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"usage_mb": 812.5}]}
    )
    usage_mb: float = Field(ge=0, le=10_000_000)


class Feedback(SQLModel):
    """A rating (1-5) and/or a non-conversion reason captured by an agent or the app."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"rating": 5, "feedback": "fast"}, {"reason": "price"}]}
    )
    rating: int | None = Field(None, ge=1, le=5)
    feedback: str | None = Field(None, max_length=500)
    reason: NonConversionReason | None = None


class Conversion(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"channel": "agent"}]}
    )
    channel: ConvertChannel

