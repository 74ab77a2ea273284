"""Reward points: an append-only ledger and a per-customer balance that never goes negative."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict
from sqlalchemy import CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from hub.models.coupons import CLIENT_KEY_PATTERN
from hub.models.types import UtcDateTime

# One ledger entry moves at most this many points: a typo guard on manual adjustments.
MAX_POINTS_PER_ENTRY = 10_000_000


class PointsKind(StrEnum):
    EARN = "earn"
    SPEND = "spend"
    EXPIRE = "expire"
    ADJUST = "adjust"


class PointsAccount(SQLModel, table=True):
    """The running balance; the CHECK is the last line of defence under concurrency."""

    __tablename__ = "points_account"
    __table_args__ = (CheckConstraint("balance >= 0", name="ck_points_balance"),)
    customer_id: str = Field(
        primary_key=True, foreign_key="customer.id", ondelete="CASCADE", max_length=40
    )
    balance: int = 0
    updated_at: datetime = Field(sa_type=UtcDateTime)


class PointsEntry(SQLModel, table=True):
    """One ledger line; never updated or deleted (except with the customer on erasure)."""

    __tablename__ = "points_entry"
    # The daily expiry sweep finds the lots expiring on its day by this (partial: only
    # credits carry a date); nothing looks lines up by ``at`` across customers.
    __table_args__ = (
        Index(
            "ix_points_entry_expires_at", "expires_at",
            sqlite_where=text("expires_at IS NOT NULL"),
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )
    id: int | None = Field(None, primary_key=True)
    customer_id: str = Field(
        foreign_key="customer.id", index=True, ondelete="CASCADE", max_length=40
    )
    kind: str = Field(max_length=16)
    delta: int
    balance_after: int
    idempotency_key: str = Field(unique=True, max_length=80)
    reason: str = Field("", max_length=200)
    campaign_id: str | None = Field(None, max_length=40)
    expires_at: datetime | None = Field(None, sa_type=UtcDateTime)
    actor: str = Field("", max_length=64)
    at: datetime = Field(sa_type=UtcDateTime)


class PointsMove(SQLModel):
    """Spend (staff, kiosk) or adjust (admin) a customer's points."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [{"points": 200, "client_key": "till-3:20261130:000173", "reason": "mug"}]
        }
    )
    points: int = Field(ge=-MAX_POINTS_PER_ENTRY, le=MAX_POINTS_PER_ENTRY)
    client_key: str = Field(schema_extra={"pattern": CLIENT_KEY_PATTERN})
    reason: str = Field("", max_length=200)


class PointsEntryPublic(SQLModel):
    id: int
    kind: str
    delta: int
    balance_after: int
    reason: str
    campaign_id: str | None
    expires_at: datetime | None
    at: datetime


class PointsBalance(SQLModel):
    customer_id: str
    balance: int
    entries: list[PointsEntryPublic] = []


class PointsSpend(PointsMove):
    """Spend points at a store's till or kiosk."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "points": 200,
                    "client_key": "till-3:20261130:000173",
                    "reason": "mug",
                    "store_id": "fz-gulou",
                }
            ]
        }
    )
    points: int = Field(ge=1, le=MAX_POINTS_PER_ENTRY)
    store_id: str


class PointsAdjust(PointsMove):
    """An admin's correction; the reason is mandatory."""

    reason: str = Field(min_length=3, max_length=200)
