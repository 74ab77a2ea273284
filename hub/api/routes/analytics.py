"""Analytics reports (operators; regional ops see their region) as JSON, CSV, PNG or SVG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from hub.api.deps import ClockDep, Operators, SessionDep
from hub.clock import Clock
from hub.models.analytics import MONTH_PATTERN, RevenueReport
from hub.services import analytics, analytics_charts
from hub.services.auth import scoped_store
from hub.services.campaigns import lifecycle
from hub.services.errors import Invalid

router = APIRouter(prefix="/v1", tags=["analytics"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
# A report over more than a year of days is a data export, not a back-office view.
MAX_PERIOD_DAYS = 366
# Without start/end a report covers the last week (the back office's default view).
DEFAULT_PERIOD_DAYS = 7


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"
    PNG = "png"
    SVG = "svg"


def _period(clock: Clock, start: date | None, end: date | None) -> analytics.Period:
    """Validated inclusive local-day range; by default the last week up to today."""
    end = end or clock.now().date()
    start = start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if end < start or (end - start).days > MAX_PERIOD_DAYS:
        raise Invalid(f"need start <= end within {MAX_PERIOD_DAYS} days")
    return analytics.Period(start, end)


@dataclass(frozen=True)
class ReportQuery:
    """What every period report takes: the local-day range, one store or all, the format."""

    period: analytics.Period
    store_id: str | None
    format: Format


def report_query(
    clock: ClockDep,
    start: date | None = None,
    end: date | None = None,
    store_id: str | None = None,
    format: Format = Format.JSON,  # noqa: A002  (the query parameter's public name)
) -> ReportQuery:
    """Parse and validate the query parameters shared by the period reports."""
    return ReportQuery(_period(clock, start, end), store_id, format)


ReportQueryDep = Annotated[ReportQuery, Depends(report_query)]


def _export(rows: Any, fmt: Format, label: list[str], value: str, title: str) -> Any:
    """The report in the asked format: JSON as is, CSV flattened, charts of ``value``."""
    if fmt is Format.JSON:
        return rows
    flat = analytics.flat(rows)
    if fmt is Format.CSV:
        body: bytes | str = analytics_charts.to_csv(flat)
    else:
        body = analytics_charts.bar_chart(flat, label, value, title, fmt.value)
    return Response(content=body, media_type=analytics_charts.MEDIA_TYPES[fmt.value])


_FORMATS = {
    200: {
        "content": {
            "text/csv": {},
            "image/png": {},
            "image/svg+xml": {},
        },
        "description": "The report as JSON, or as CSV / PNG / SVG with ?format=",
    }
}


@router.get("/analytics/visits", responses=_FORMATS)
def visits(session: SessionDep, principal: Operators, q: ReportQueryDep) -> Any:
    """Visits and unique visitors by store, local day and hour."""
    rows = analytics.visits_report(session, principal, q.period, q.store_id)
    return _export(rows, q.format, ["store_id", "day", "hour"], "visits", "Visits")


@router.get("/analytics/attributes", responses=_FORMATS)
def attributes(session: SessionDep, principal: Operators, q: ReportQueryDep) -> Any:
    """Visitor gender, age band and postal prefix: counts and shares, small groups hidden."""
    rows = analytics.attributes_report(session, principal, q.period, q.store_id)
    return _export(rows, q.format, ["attribute", "value"], "visitors", "Visitors by attribute")


@router.get("/analytics/paths", responses=_FORMATS)
def paths(session: SessionDep, principal: Operators, q: ReportQueryDep) -> Any:
    """Zone transitions, top paths and mean dwell per zone."""
    report = analytics.paths_report(session, principal, q.period, q.store_id)
    if q.format in (Format.PNG, Format.SVG):
        body = analytics_charts.movement_chart(report, "Movement", q.format.value)
        return Response(content=body, media_type=analytics_charts.MEDIA_TYPES[q.format.value])
    return _export(report, q.format, ["table", "zone", "from", "to"], "count", "Movement")


@router.get("/analytics/conversion", responses=_FORMATS)
def conversion(session: SessionDep, principal: Operators, q: ReportQueryDep) -> Any:
    """Check-in -> coupon redemption conversion per store."""
    rows = analytics.conversion_report(session, principal, q.period, q.store_id)
    return _export(rows, q.format, ["store_id"], "conversion", "Check-in to redemption")


@router.get("/analytics/campaigns/{campaign_id}/uplift", responses={**_FORMATS, **_404})
def uplift(
    session: SessionDep,
    principal: Operators,
    campaign_id: str,
    window_days: int = Query(analytics.UPLIFT_WINDOW_DAYS, ge=1, le=90),
) -> dict[str, Any]:
    """Return-visit rate of granted vs holdout customers, with a 95% confidence interval."""
    lifecycle.get(session, principal, campaign_id)
    return analytics.uplift_report(session, campaign_id, window_days)


@router.get("/analytics/tiers", responses=_FORMATS)
def tiers(
    session: SessionDep,
    principal: Operators,
    clock: ClockDep,
    month: str | None = Query(None, pattern=MONTH_PATTERN, description="YYYY-MM; default now"),
    format: Format = Format.JSON,  # noqa: A002
) -> Any:
    """Store efficiency tiers (SEEDS.md 5) for a month."""
    month = month or clock.now().strftime("%Y-%m")
    rows = analytics.tiers_report(session, principal, month)
    return _export(rows, format, ["store_id", "tier"], "new_users", f"New users {month}")


@router.put("/stores/{store_id}/revenue", responses=_404)
def report_revenue(
    session: SessionDep, clock: ClockDep, principal: Operators, store_id: str, body: RevenueReport
) -> dict[str, Any]:
    """Record a store's revenue for a month (input of the efficiency tiers)."""
    store = scoped_store(session, principal, store_id)
    row = analytics.report_revenue(session, store, body.month, body.revenue_cents, clock.now())
    return {"store_id": row.store_id, "month": row.month, "revenue_cents": row.revenue_cents}
