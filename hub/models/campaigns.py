"""Campaign tables and API models: rules (trigger, audience, where, when), rewards, grants."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, field_validator, model_validator
from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.customers import AgeBand, Gender
from hub.models.registry import WEEKDAYS, _hhmm
from hub.models.types import UtcDateTime

# A holdout above half the audience would starve the campaign it is meant to measure.
MAX_HOLDOUT_SHARE = 0.5
# N in "return after N days" / "dwell over N minutes": a year / a whole day at most.
MAX_RETURN_DAYS = 366
MAX_DWELL_MINUTES = 24 * 60


class Trigger(StrEnum):
    """The event a campaign reacts to."""

    CHECKIN = "checkin"  # every new visit (a check-in that opens a visit)
    FIRST_VISIT = "first_visit"  # the customer's first visit to that store
    RETURN_AFTER_DAYS = "return_after_days"  # a new visit >= N days after the previous one
    ZONE_ENTRY = "zone_entry"  # the customer is placed in one of the campaign's zones
    DWELL = "dwell"  # the visit has lasted >= N minutes
    KIOSK_SIGNIN = "kiosk_signin"  # the customer identified themselves at a kiosk


class CampaignState(StrEnum):
    """Lifecycle: draft -> approved -> live <-> paused -> ended."""

    DRAFT = "draft"
    APPROVED = "approved"
    LIVE = "live"
    PAUSED = "paused"
    ENDED = "ended"


class RewardKind(StrEnum):
    COUPON = "coupon"
    POINTS = "points"


class GrantOutcome(StrEnum):
    """What evaluation did for one qualifying (campaign, event)."""

    GRANTED = "granted"
    HOLDOUT = "holdout"  # qualified, in the control group: gets nothing (measures uplift)
    CAPPED = "capped"  # qualified, stopped by a cap or the budget: logged, never silent


class Consent(StrEnum):
    SMS = "sms"
    PUSH = "push"
    CALL = "call"
    ANALYTICS = "analytics"


# ---------------------------------------------------------------- rule documents


class Audience(SQLModel):
    """Who qualifies; every list that is set must match (empty = anyone)."""

    genders: list[Gender] = []
    age_bands: list[AgeBand] = []
    postal_prefixes: list[str] = Field([], max_length=50)
    tags_all: list[str] = Field([], description="kind:name tags the customer must all carry")
    tags_none: list[str] = Field([], description="kind:name tags that exclude the customer")
    min_visits: int | None = Field(None, ge=0, description="visits (all stores) before this one")
    max_visits: int | None = Field(None, ge=0)
    consents: list[Consent] = []

    @field_validator("tags_all", "tags_none")
    @classmethod
    def _kind_name(cls, value: list[str]) -> list[str]:
        """Tags are written ``kind:name``."""
        for tag in value:
            if ":" not in tag:
                raise ValueError(f"tag {tag!r} must be written kind:name")
        return value


class Where(SQLModel):
    """Where a campaign runs (empty lists = every store of the campaign's region)."""

    stores: list[str] = []
    regions: list[str] = []
    zones: list[str] = []


class HourSpan(SQLModel):
    """A local-time span ``start``-``end`` (HH:MM); ``end`` before ``start`` wraps midnight."""

    start: str
    end: str

    @model_validator(mode="after")
    def _valid(self) -> HourSpan:
        """A span needs two different times."""
        if _hhmm(self.start) == _hhmm(self.end):
            raise ValueError("an hour span needs different start and end")
        return self


class When(SQLModel):
    """When a campaign runs, in each store's own time zone (start/end are instants)."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    days: list[str] = Field([], description="mon..sun; empty = every day")
    hours: HourSpan | None = None
    quiet_hours: HourSpan | None = None

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        """Only mon..sun."""
        for day in value:
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
        return value

    @model_validator(mode="after")
    def _order(self) -> When:
        """The start comes before the end."""
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class Caps(SQLModel):
    """Per-customer caps and the total budget (coupons, or points for a points reward)."""

    per_customer_per_day: int | None = Field(None, ge=1)
    per_customer_total: int | None = Field(None, ge=1)
    budget: int | None = Field(None, ge=1)


class Reward(SQLModel):
    kind: RewardKind
    coupon_template_id: str | None = None
    points: int | None = Field(None, ge=1, le=1_000_000)
    title: str = Field("", max_length=120)

    @model_validator(mode="after")
    def _consistent(self) -> Reward:
        """A coupon reward names its template; a points reward its points."""
        if self.kind is RewardKind.COUPON and not self.coupon_template_id:
            raise ValueError("a coupon reward needs coupon_template_id")
        if self.kind is RewardKind.POINTS and not self.points:
            raise ValueError("a points reward needs points")
        return self


# ---------------------------------------------------------------- tables


class Campaign(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint("budget_remaining IS NULL OR budget_remaining >= 0", name="ck_budget"),
    )
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=120)
    region_id: str | None = Field(None, foreign_key="region.id", index=True, max_length=64)
    state: str = Field(CampaignState.DRAFT.value, max_length=16, index=True)
    trigger: str = Field(max_length=24)
    trigger_param: int | None = None
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    where: dict[str, Any] = Field(default_factory=dict, sa_column=Column("scope", JSON))
    when: dict[str, Any] = Field(default_factory=dict, sa_column=Column("schedule", JSON))
    reward_kind: str = Field(max_length=16)
    coupon_template_id: str | None = Field(None, foreign_key="coupon_template.id", max_length=40)
    points: int | None = None
    title: str = Field("", max_length=120)
    cap_per_customer_day: int | None = None
    cap_per_customer_total: int | None = None
    budget_total: int | None = None
    budget_remaining: int | None = None
    priority: int = 0
    exclusive: bool = False
    holdout_share: float = 0.0
    created_by: str | None = Field(None, max_length=40)
    approved_by: str | None = Field(None, max_length=40)
    approved_at: datetime | None = Field(None, sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class CampaignIndexVersion(SQLModel, table=True):
    """One row (id 1) whose ``version`` database triggers change to a fresh random value
    whenever a campaign row is inserted, deleted, or has ``state`` or ``updated_at``
    written (migration campaigns_0002): the live-campaign index cache reads it by key."""

    __tablename__ = "campaign_index_version"
    id: int = Field(primary_key=True)
    version: int = Field(sa_type=BigInteger)


class CampaignGrant(SQLModel, table=True):
    """One campaign's decision for one source event; the unique key stops double grants."""

    __tablename__ = "campaign_grant"
    __table_args__ = (
        UniqueConstraint("campaign_id", "source_event", name="uq_grant_campaign_event"),
        Index("ix_grant_customer_day", "customer_id", "store_day"),
    )
    id: str = Field(primary_key=True, max_length=40)
    # No index of its own: uq_grant_campaign_event leads with it (campaigns_0003).
    campaign_id: str = Field(foreign_key="campaign.id", max_length=40)
    customer_id: str | None = Field(
        None, foreign_key="customer.id", ondelete="SET NULL", max_length=40
    )
    store_id: str = Field(foreign_key="store.id", max_length=64)
    source_event: str = Field(max_length=120)
    trigger: str = Field(max_length=24)
    outcome: str = Field(max_length=16)
    reason: str = Field("", max_length=64)
    reward_kind: str = Field(max_length=16)
    coupon_id: str | None = Field(None, max_length=40)
    points: int | None = None
    title: str = Field("", max_length=120)
    store_day: str = Field(max_length=10)  # the store's local calendar day, YYYY-MM-DD
    at: datetime = Field(sa_type=UtcDateTime, index=True)
    seen_at: datetime | None = Field(None, sa_type=UtcDateTime)


# ---------------------------------------------------------------- API models


class CampaignCreate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "name": "Weekday welcome",
                    "region_id": "fz",
                    "trigger": "checkin",
                    "audience": {"age_bands": ["18-24", "25-34"], "consents": ["push"]},
                    "where": {"stores": ["fz-gulou"]},
                    "when": {
                        "days": ["mon", "tue"],
                        "quiet_hours": {"start": "21:00", "end": "09:30"},
                    },
                    "reward": {
                        "kind": "coupon",
                        "coupon_template_id": "tpl_...",
                        "title": "10% off",
                    },
                    "caps": {"per_customer_per_day": 1, "budget": 500},
                    "priority": 10,
                    "exclusive": False,
                    "holdout_share": 0.1,
                }
            ]
        }
    )
    name: str = Field(min_length=1, max_length=120)
    region_id: str | None = None
    trigger: Trigger
    trigger_param: int | None = Field(None, ge=1)
    audience: Audience = Audience()
    where: Where = Where()
    when: When = When()
    reward: Reward
    caps: Caps = Caps()
    priority: int = Field(0, ge=-1000, le=1000)
    exclusive: bool = False
    holdout_share: float = Field(0.0, ge=0.0, le=MAX_HOLDOUT_SHARE)

    @model_validator(mode="after")
    def _param(self) -> CampaignCreate:
        """N for the triggers that take it (and only them); zones for zone entry."""
        limits = {Trigger.RETURN_AFTER_DAYS: MAX_RETURN_DAYS, Trigger.DWELL: MAX_DWELL_MINUTES}
        limit = limits.get(self.trigger)
        if limit is not None and not (self.trigger_param and self.trigger_param <= limit):
            raise ValueError(f"trigger {self.trigger.value} needs trigger_param 1..{limit}")
        if limit is None and self.trigger_param is not None:
            raise ValueError(f"trigger {self.trigger.value} takes no trigger_param")
        if self.trigger is Trigger.ZONE_ENTRY and not self.where.zones:
            raise ValueError("a zone_entry campaign needs where.zones")
        return self


class CampaignPublic(SQLModel):
    id: str
    name: str
    region_id: str | None
    state: str
    trigger: str
    trigger_param: int | None
    audience: dict[str, Any]
    where: dict[str, Any]
    when: dict[str, Any]
    reward_kind: str
    coupon_template_id: str | None
    points: int | None
    title: str
    cap_per_customer_day: int | None
    cap_per_customer_total: int | None
    budget_total: int | None
    budget_remaining: int | None
    priority: int
    exclusive: bool
    holdout_share: float
    created_by: str | None
    approved_by: str | None
    approved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Transition(StrEnum):
    APPROVE = "approve"
    LAUNCH = "launch"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"


class GrantPublic(SQLModel):
    id: str
    campaign_id: str
    store_id: str
    trigger: str
    outcome: str
    reason: str
    reward_kind: str
    coupon_id: str | None
    points: int | None
    title: str
    at: datetime
    seen_at: datetime | None = None
    coupon_code: str | None = None


class DryRunRequest(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"store_id": "fz-gulou", "limit": 100}]}
    )
    store_id: str
    at: datetime | None = None
    zone_id: str | None = None
    customer_ids: list[str] = Field([], max_length=1000)
    limit: int = Field(100, ge=1, le=1000)


class DryRunVerdict(SQLModel):
    customer_id: str
    qualifies: bool
    holdout: bool
    reasons: list[str]


class DryRunResult(SQLModel):
    campaign_id: str
    store_id: str
    at: datetime
    checked: int
    qualifying: int
    verdicts: list[DryRunVerdict]
