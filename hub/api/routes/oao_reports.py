"""OAO report endpoints: per store/region figures as CSV, PNG or SVG; sheet loop counts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response

from hub.api.deps import ContextDep, FleetReaders, Operators, SessionDep
from hub.services.oao import reports, sheets

router = APIRouter(prefix="/v1/oao/reports", tags=["oao"])
_MEDIA = {"csv": "text/csv", "png": "image/png", "svg": "image/svg+xml"}


@router.get(
    "/orders",
    response_class=Response,
    responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
)
def orders_report(
    session: SessionDep,
    principal: Operators,
    fmt: Literal["csv", "png", "svg"] = "csv",
    group: Literal["store", "region"] = "store",
    since: datetime | None = None,
) -> Response:
    """Dispatch time, acceptance time, re-dispatch and completion rates per store or region."""
    rows = reports.build(session, principal, group, since)
    if fmt == "csv":
        return Response(reports.to_csv(rows), media_type=_MEDIA["csv"])
    body = reports.to_chart(rows, fmt, f"OAO orders per {group}")
    return Response(body, media_type=_MEDIA[fmt])


@router.get("/sheets")
def sheets_report(
    ctx: ContextDep, session: SessionDep, principal: FleetReaders
) -> dict[str, dict[str, int]]:
    """Per store: communication sheets open, late, closed and converted."""
    return sheets.report(session, principal, ctx.clock.now())
