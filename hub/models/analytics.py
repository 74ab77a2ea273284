"""Analytics inputs and outputs: monthly store revenue (for efficiency tiers) and report rows."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime

# Years 1970-2999: every month in that span has a representable first and last day
# (year 0 or 9999-12 would overflow ``datetime.date`` and answer 500).
MONTH_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"


class StoreRevenue(SQLModel, table=True):
    """A store's reported revenue for one calendar month (the tiers compare it to the mean)."""

    __tablename__ = "store_revenue"
    store_id: str = Field(primary_key=True, foreign_key="store.id", max_length=64)
    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM
    revenue_cents: int = Field(ge=0)
    reported_at: datetime = Field(sa_type=UtcDateTime)


class RevenueReport(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"month": "2026-11", "revenue_cents": 182_000_00}]}
    )
    month: str = Field(schema_extra={"pattern": MONTH_PATTERN})
    revenue_cents: int = Field(ge=0, le=10**13)
