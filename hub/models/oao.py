"""OAO tables and API models: orders, dispatch decisions, transitions, policies, sheets."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, model_validator
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime

# Client order keys come from channel systems (their own order numbers): bounded, printable.
CLIENT_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# Three stores in a row that do not take an order means the area needs a person (issue 8).
DEFAULT_HOP_LIMIT = 3
# A store must accept a normal order within 30 min (urgent: 10) before it is reminded; the
# grace after the reminder is how long it still has before the order moves on.
DEFAULT_ACCEPT_MIN = {"normal": 30, "urgent": 10}
DEFAULT_GRACE_MIN = {"normal": 15, "urgent": 5}
# Farther than this from the address a store is not a sensible home-visit outlet.
DEFAULT_MAX_DISTANCE_KM = 50.0


class Channel(StrEnum):
    """Online channels that place orders."""

    OFFICIAL_ACCOUNT = "official_account"
    WEB_HALL = "web_hall"
    APP = "app"
    ENTERPRISE_CHAT = "enterprise_chat"


class Product(StrEnum):
    """What an order asks a store to deliver or do."""

    SIM_CARD = "sim_card"
    BROADBAND_INSTALL = "broadband_install"
    DEVICE = "device"
    PLAN_CHANGE = "plan_change"


class Priority(StrEnum):
    """SLA class of an order."""

    NORMAL = "normal"
    URGENT = "urgent"


class OrderStatus(StrEnum):
    """Where an order is; ``hub.services.oao.states`` says which moves are legal."""

    RECEIVED = "received"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    ESCALATED = "escalated"


class DispatchPolicyKind(StrEnum):
    """How a region picks a store (channel rules apply first under either)."""

    NEAREST = "nearest"
    DIRECTED = "directed"


class DispatchOutcome(StrEnum):
    """What became of one offer of an order to one store."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    WITHDRAWN = "withdrawn"


# ---------------------------------------------------------------- orders


class OrderBase(SQLModel):
    channel: Channel
    product: Product
    customer_id: str | None = Field(None, max_length=40)
    region_id: str = Field(max_length=64)
    address: str = Field(min_length=1, max_length=400)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    window_start: datetime = Field(sa_type=UtcDateTime)
    window_end: datetime = Field(sa_type=UtcDateTime)
    priority: Priority = Priority.NORMAL
    directed_store_id: str | None = Field(None, max_length=64)


class OaoOrder(OrderBase, table=True):
    """An online order routed to an offline store."""

    __tablename__ = "oao_order"
    __table_args__ = (Index("ix_oao_order_store_status", "store_id", "status"),)
    id: str = Field(primary_key=True, max_length=40)
    client_order_key: str = Field(unique=True, max_length=128)
    # Plain strings in the table (the StrEnum values), enums at the API edge.
    channel: str = Field(max_length=24)
    product: str = Field(max_length=24)
    priority: str = Field(Priority.NORMAL.value, max_length=12)
    customer_id: str | None = Field(
        None, foreign_key="customer.id", index=True, ondelete="SET NULL", max_length=40
    )
    region_id: str = Field(foreign_key="region.id", index=True, max_length=64)
    status: str = Field(OrderStatus.RECEIVED.value, max_length=16, index=True)
    store_id: str | None = Field(None, foreign_key="store.id", max_length=64)
    hops: int = 0
    escalation_reason: str | None = Field(None, max_length=500)
    created_at: datetime = Field(sa_type=UtcDateTime)
    dispatched_at: datetime | None = Field(None, sa_type=UtcDateTime)
    accepted_at: datetime | None = Field(None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(None, sa_type=UtcDateTime)


class OrderCreate(OrderBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "client_order_key": "wx-20261130-0001",
                    "channel": "official_account",
                    "product": "broadband_install",
                    "region_id": "fz",
                    "address": "12 Dongjie Rd, Gulou, Fuzhou",
                    "latitude": 26.088,
                    "longitude": 119.301,
                    "window_start": "2026-11-30T06:00:00Z",
                    "window_end": "2026-11-30T10:00:00Z",
                    "priority": "normal",
                }
            ]
        }
    )
    client_order_key: str = Field(schema_extra={"pattern": CLIENT_KEY_PATTERN})

    @model_validator(mode="after")
    def _window_in_order(self) -> OrderCreate:
        if self.window_start.tzinfo is None or self.window_end.tzinfo is None:
            raise ValueError("window_start and window_end need a time zone (e.g. Z)")
        if self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")
        return self


class OrderPublic(OrderBase):
    id: str
    client_order_key: str
    status: OrderStatus
    store_id: str | None
    hops: int
    escalation_reason: str | None
    created_at: datetime
    dispatched_at: datetime | None
    accepted_at: datetime | None
    finished_at: datetime | None


class OrderAction(SQLModel):
    """A store's reason for rejecting or failing an order (required there, else optional)."""

    reason: str = Field("", max_length=300)


class OrderRedirect(SQLModel):
    """Ops hand an order to a named store (from the escalation queue)."""

    store_id: str
    reason: str = Field(min_length=1, max_length=300)


# ---------------------------------------------------------------- decisions and audit


class OaoDispatch(SQLModel, table=True):
    """One dispatch decision: the store chosen, every candidate considered, and why."""

    __tablename__ = "oao_dispatch"
    id: int | None = Field(None, primary_key=True)
    order_id: str = Field(foreign_key="oao_order.id", index=True, ondelete="CASCADE")
    hop: int
    store_id: str | None = Field(None, max_length=64)
    policy: str = Field(max_length=32)
    reason: str = Field(max_length=500)
    candidates: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    decided_at: datetime = Field(sa_type=UtcDateTime)
    outcome: str = Field(DispatchOutcome.PENDING.value, max_length=16)
    outcome_reason: str | None = Field(None, max_length=300)
    outcome_at: datetime | None = Field(None, sa_type=UtcDateTime)
    reminded_at: datetime | None = Field(None, sa_type=UtcDateTime)


class DispatchPublic(SQLModel):
    hop: int
    store_id: str | None
    policy: str
    reason: str
    candidates: list[dict[str, Any]]
    decided_at: datetime
    outcome: DispatchOutcome
    outcome_reason: str | None
    outcome_at: datetime | None
    reminded_at: datetime | None


class OaoTransition(SQLModel, table=True):
    """Audit trail: every status change of an order, who made it and why."""

    __tablename__ = "oao_transition"
    id: int | None = Field(None, primary_key=True)
    order_id: str = Field(foreign_key="oao_order.id", index=True, ondelete="CASCADE")
    from_status: str | None = Field(None, max_length=16)
    to_status: str = Field(max_length=16)
    actor: str = Field(max_length=80)
    reason: str = Field("", max_length=500)
    at: datetime = Field(sa_type=UtcDateTime)


class TransitionPublic(SQLModel):
    from_status: str | None
    to_status: str
    actor: str
    reason: str
    at: datetime


class OrderHistory(SQLModel):
    order: OrderPublic
    dispatches: list[DispatchPublic]
    transitions: list[TransitionPublic]


# ---------------------------------------------------------------- configuration


class PolicyBase(SQLModel):
    mode: DispatchPolicyKind = DispatchPolicyKind.NEAREST
    # channel -> store ids that channel's orders always go to (nearest eligible of them).
    channel_rules: dict[str, list[str]] = Field(default_factory=dict, sa_column=Column(JSON))
    accept_minutes: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_ACCEPT_MIN), sa_column=Column(JSON)
    )
    grace_minutes: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_GRACE_MIN), sa_column=Column(JSON)
    )
    hop_limit: int = Field(DEFAULT_HOP_LIMIT, ge=1, le=20)
    max_distance_km: float = Field(DEFAULT_MAX_DISTANCE_KM, gt=0, le=20_000)


class OaoRegionPolicy(PolicyBase, table=True):
    """Dispatch policy and SLA of one region (a region without a row uses the defaults)."""

    __tablename__ = "oao_region_policy"
    region_id: str = Field(primary_key=True, foreign_key="region.id", max_length=64)
    mode: str = Field(DispatchPolicyKind.NEAREST.value, max_length=16)


class PolicyUpdate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "mode": "nearest",
                    "channel_rules": {"enterprise_chat": ["fz-gulou"]},
                    "accept_minutes": {"normal": 30, "urgent": 10},
                    "grace_minutes": {"normal": 15, "urgent": 5},
                    "hop_limit": 3,
                    "max_distance_km": 50,
                }
            ]
        }
    )
    mode: DispatchPolicyKind = DispatchPolicyKind.NEAREST
    channel_rules: dict[Channel, list[str]] = Field(default_factory=dict)
    accept_minutes: dict[Priority, int] = Field(default_factory=lambda: dict(DEFAULT_ACCEPT_MIN))
    grace_minutes: dict[Priority, int] = Field(default_factory=lambda: dict(DEFAULT_GRACE_MIN))
    hop_limit: int = Field(DEFAULT_HOP_LIMIT, ge=1, le=20)
    max_distance_km: float = Field(DEFAULT_MAX_DISTANCE_KM, gt=0, le=20_000)

    @model_validator(mode="after")
    def _positive_minutes(self) -> PolicyUpdate:
        for name in ("accept_minutes", "grace_minutes"):
            for priority, minutes in getattr(self, name).items():
                if minutes < 1:
                    raise ValueError(f"{name}[{priority}] must be at least 1 minute")
        return self


class PolicyPublic(PolicyBase):
    region_id: str


class OaoStoreProfile(SQLModel, table=True):
    """A store's OAO side: what it can do, how many open orders it takes, its installer."""

    __tablename__ = "oao_store_profile"
    store_id: str = Field(primary_key=True, foreign_key="store.id", max_length=64)
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    order_capacity: int = Field(20, ge=0, le=10_000)
    installer_key_id: str | None = Field(None, foreign_key="api_key.id", max_length=40)


class StoreProfileUpdate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "skills": ["sim_card", "broadband_install", "device", "plan_change"],
                    "order_capacity": 20,
                    "installer_key_id": "key_0192...",
                }
            ]
        }
    )
    skills: list[Product]
    order_capacity: int = Field(20, ge=0, le=10_000)
    installer_key_id: str | None = None


class StoreProfilePublic(SQLModel):
    store_id: str
    skills: list[str]
    order_capacity: int
    installer_key_id: str | None


# ---------------------------------------------------------------- installer sheets


class SheetStatus(StrEnum):
    """A communication sheet's loop: created -> filled by the store -> closed by the installer."""

    OPEN = "open"
    FILLED = "filled"
    CLOSED = "closed"


class SheetOutcome(StrEnum):
    """What the installer's visit achieved."""

    CONVERTED = "converted"
    NOT_CONVERTED = "not_converted"
    NO_VISIT = "no_visit"


class SheetFill(SQLModel):
    """What the paired store writes for the installer; unknown facts stay null."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "current_plan": "5G 129",
                    "secondary_cards": 1,
                    "set_top_box": "none",
                    "broadband": "100M copper",
                    "spend_3m": [128.0, 131.5, 129.0],
                    "suggestion": "Offer the 1000M fibre bundle with a second STB",
                }
            ]
        }
    )
    current_plan: str | None = Field(None, max_length=120)
    secondary_cards: int | None = Field(None, ge=0, le=20)
    set_top_box: str | None = Field(None, max_length=120)
    broadband: str | None = Field(None, max_length=120)
    spend_3m: list[float] | None = Field(None, sa_column=Column(JSON))
    suggestion: str | None = Field(None, max_length=500)


class OaoSheet(SheetFill, table=True):
    """The communication sheet of one installation order, between store and installer."""

    __tablename__ = "oao_sheet"
    id: str = Field(primary_key=True, max_length=40)
    order_id: str = Field(foreign_key="oao_order.id", unique=True, ondelete="CASCADE")
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    installer_key_id: str | None = Field(None, index=True, max_length=40)
    status: str = Field(SheetStatus.OPEN.value, max_length=12)
    due_at: datetime = Field(sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime)
    filled_at: datetime | None = Field(None, sa_type=UtcDateTime)
    read_at: datetime | None = Field(None, sa_type=UtcDateTime)
    outcome: str | None = Field(None, max_length=16)
    outcome_note: str | None = Field(None, max_length=500)
    closed_at: datetime | None = Field(None, sa_type=UtcDateTime)


class SheetOutcomeIn(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"outcome": "converted", "note": "took fibre bundle"}]}
    )
    outcome: SheetOutcome
    note: str = Field("", max_length=500)


class SheetPublic(SheetFill):
    id: str
    order_id: str
    store_id: str
    installer_key_id: str | None
    status: SheetStatus
    due_at: datetime
    created_at: datetime
    filled_at: datetime | None
    read_at: datetime | None
    outcome: SheetOutcome | None
    outcome_note: str | None
    closed_at: datetime | None


# ---------------------------------------------------------------- cross-sell


class CrossSellOffer(SQLModel):
    code: str
    name: str
    score: float
    reason: str


class CrossSellPublic(SQLModel):
    """What the call-centre agent or the kiosk shows: one main push, then secondary ones."""

    customer_id: str
    main_push: CrossSellOffer | None
    secondary_push: list[CrossSellOffer]
