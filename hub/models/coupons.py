"""Coupon tables and API models: templates, coupons (issued codes and imported pools), audit."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, field_validator, model_validator
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime

# A coupon valid for more than two years is a liability nobody tracks.
MAX_VALID_DAYS = 730
# One pool upload; bigger pools go in several uploads.
MAX_POOL_IMPORT = 50_000
# Imported codes come from printers and partner systems: printable, no spaces.
POOL_CODE_PATTERN = r"^[A-Za-z0-9-]{6,40}$"
# Idempotency keys come from tills: any printable token of sane length.
CLIENT_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,64}$"


class CouponKind(StrEnum):
    VALUE = "value"  # money off, in cents
    PERCENT = "percent"  # percentage off
    FREE_ITEM = "free_item"  # a named item for free


class CouponState(StrEnum):
    """pool -> issued -> redeemed | expired | voided (a reversal returns redeemed -> issued)."""

    POOL = "pool"  # an imported code not yet given to anyone
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    VOIDED = "voided"


class CouponAction(StrEnum):
    IMPORTED = "imported"
    ISSUED = "issued"
    REDEEMED = "redeemed"
    REVERSED = "reversed"
    VOIDED = "voided"
    EXPIRED = "expired"


class CouponTemplateBase(SQLModel):
    name: str = Field(min_length=1, max_length=120)
    kind: CouponKind
    value: int = Field(0, ge=0, le=10_000_000, description="cents off, or percent off (1-100)")
    item: str = Field("", max_length=120, description="the free item, for kind free_item")
    min_spend_cents: int = Field(0, ge=0)
    valid_days: int = Field(30, ge=1, le=MAX_VALID_DAYS)


class CouponTemplate(CouponTemplateBase, table=True):
    __tablename__ = "coupon_template"
    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=16)  # type: ignore[assignment]  # plain text, not a DB enum
    region_id: str | None = Field(None, foreign_key="region.id", max_length=64)
    stores: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(sa_type=UtcDateTime)


class CouponTemplateCreate(CouponTemplateBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "name": "10% off accessories",
                    "kind": "percent",
                    "value": 10,
                    "min_spend_cents": 5000,
                    "valid_days": 14,
                    "stores": ["fz-gulou"],
                    "region_id": "fz",
                }
            ]
        }
    )
    region_id: str | None = None
    stores: list[str] = Field([], description="stores where it may be redeemed; empty = region")

    @model_validator(mode="after")
    def _kind_value(self) -> CouponTemplateCreate:
        """The value fits the kind (percent 1..100, cents >= 1, a named free item)."""
        if self.kind is CouponKind.PERCENT and not 1 <= self.value <= 100:
            raise ValueError("a percent coupon needs value 1..100")
        if self.kind is CouponKind.VALUE and self.value < 1:
            raise ValueError("a value coupon needs value >= 1 (cents)")
        if self.kind is CouponKind.FREE_ITEM and not self.item:
            raise ValueError("a free_item coupon needs item")
        return self


class CouponTemplatePublic(CouponTemplateBase):
    id: str
    region_id: str | None
    stores: list[str]
    created_at: datetime


class Coupon(SQLModel, table=True):
    __table_args__ = (Index("ix_coupon_template_state", "template_id", "state"),)
    id: str = Field(primary_key=True, max_length=40)
    code: str = Field(unique=True, max_length=40)
    template_id: str = Field(foreign_key="coupon_template.id", max_length=40)
    customer_id: str | None = Field(
        None, foreign_key="customer.id", index=True, ondelete="SET NULL", max_length=40
    )
    campaign_id: str | None = Field(None, max_length=40, index=True)
    state: str = Field(CouponState.ISSUED.value, max_length=16)
    issued_at: datetime | None = Field(None, sa_type=UtcDateTime)
    expires_at: datetime | None = Field(None, sa_type=UtcDateTime)
    redeemed_at: datetime | None = Field(None, sa_type=UtcDateTime)
    redeemed_store_id: str | None = Field(None, max_length=64)
    spend_cents: int | None = None
    # Bumped by every state change: a reader can tell whether what it saw is still current.
    version: int = 1


class CouponEvent(SQLModel, table=True):
    """Append-only audit of every coupon state change; ``client_key`` makes redeem idempotent."""

    __tablename__ = "coupon_event"
    __table_args__ = (UniqueConstraint("action", "client_key", name="uq_coupon_event_key"),)
    id: int | None = Field(None, primary_key=True)
    coupon_id: str = Field(foreign_key="coupon.id", index=True, max_length=40)
    action: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    store_id: str | None = Field(None, max_length=64)
    client_key: str | None = Field(None, max_length=64)
    reason: str = Field("", max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    at: datetime = Field(sa_type=UtcDateTime)


class CouponPublic(SQLModel):
    id: str
    code: str
    template_id: str
    customer_id: str | None
    campaign_id: str | None
    state: str
    issued_at: datetime | None
    expires_at: datetime | None
    redeemed_at: datetime | None
    redeemed_store_id: str | None
    spend_cents: int | None
    version: int


class PoolImport(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"codes": ["GULOU-2026-0001", "GULOU-2026-0002"]}]}
    )
    codes: list[str] = Field(min_length=1, max_length=MAX_POOL_IMPORT)

    @field_validator("codes")
    @classmethod
    def _printable(cls, value: list[str]) -> list[str]:
        """Every imported code is printable and of sane length."""
        for code in value:
            if not re.fullmatch(POOL_CODE_PATTERN, code):
                raise ValueError(f"code {code[:40]!r} must match {POOL_CODE_PATTERN}")
        return value


class PoolImported(SQLModel):
    imported: int
    duplicates: int


class IssueRequest(SQLModel):
    customer_id: str


class RedeemRequest(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "code": "7KQ2-MX9D-4TZC-88PA",
                    "store_id": "fz-gulou",
                    "client_key": "till-3:20261130:000172",
                    "spend_cents": 12900,
                }
            ]
        }
    )
    code: str = Field(min_length=4, max_length=40)
    store_id: str
    client_key: str = Field(schema_extra={"pattern": CLIENT_KEY_PATTERN})
    spend_cents: int | None = Field(None, ge=0)


class ReverseRequest(SQLModel):
    client_key: str = Field(schema_extra={"pattern": CLIENT_KEY_PATTERN})
    reason: str = Field(min_length=3, max_length=200)


class VoidRequest(SQLModel):
    reason: str = Field(min_length=3, max_length=200)


class CouponEventPublic(SQLModel):
    action: str
    actor: str
    store_id: str | None
    reason: str
    at: datetime
