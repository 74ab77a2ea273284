"""ARC trial endpoints: service catalogue, trial start, usage, feedback, conversion, funnel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter, Response, status
from sqlmodel import Session, select

from hub.api.deps import AdminOnly, ContextDep, Public, SessionDep, StoreStaff
from hub.models.services_catalogue import (
    Conversion,
    DataService,
    DataServicePublic,
    Feedback,
    Trial,
    TrialPublic,
    TrialStart,
    UsageReport,
)
from hub.services import arc, arc_funnel
from hub.services.auth import Principal, scoped_store
from hub.services.errors import Invalid, NotFound

router = APIRouter(prefix="/v1", tags=["trials"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}


@router.get("/services", response_model=list[DataServicePublic], dependencies=[Public])
def list_services(session: SessionDep) -> Sequence[DataService]:
    """The data services on offer, with trial length, price and handset needs."""
    return session.exec(select(DataService).where(DataService.active)).all()


def _scoped_trial(session: Session, principal: Principal, trial_id: str) -> Trial:
    """The trial if the caller may see its store; else NotFound."""
    trial = session.get(Trial, trial_id)
    if trial is None or (trial.store_id is None and principal.role.value != "admin"):
        raise NotFound(f"trial {trial_id!r} not found")
    if trial.store_id is not None:
        scoped_store(session, principal, trial.store_id)
    return trial


@router.post("/trials", response_model=TrialPublic, status_code=status.HTTP_201_CREATED,
             responses=_404)
def start_trial(ctx: ContextDep, session: SessionDep, principal: StoreStaff,
                body: TrialStart) -> Trial:
    """Sign a customer up for a free trial at a channel (eligibility checked; staff recorded)."""
    scoped_store(session, principal, body.store_id)
    return arc.start_trial(session, body, ctx.clock.now())


@router.get("/trials/{trial_id}", response_model=TrialPublic, responses=_404)
def get_trial(session: SessionDep, principal: StoreStaff, trial_id: str) -> Trial:
    """A trial and where it stands."""
    return _scoped_trial(session, principal, trial_id)


@router.post("/trials/{trial_id}/usage", response_model=TrialPublic, responses=_404)
def report_usage(ctx: ContextDep, session: SessionDep, _: AdminOnly, trial_id: str,
                 body: UsageReport) -> Trial:
    """Usage reported by the network for a trial (MB so far); low users get a helper."""
    return arc.report_usage(session, arc.get_trial(session, trial_id), body.usage_mb,
                            ctx.clock.now())


@router.post("/trials/{trial_id}/feedback", response_model=TrialPublic, responses=_404)
def feedback(ctx: ContextDep, session: SessionDep, principal: StoreStaff, trial_id: str,
             body: Feedback) -> Trial:
    """A rating (1-5) and/or non-conversion reason captured by an agent."""
    if body.rating is None and body.reason is None:
        raise Invalid("give a rating, a reason, or both", code="empty_feedback")
    trial = _scoped_trial(session, principal, trial_id)
    now = ctx.clock.now()
    if body.rating is not None:
        arc.rate(session, trial, body.rating, body.feedback, now)
    if body.reason is not None:
        arc.record_reason(session, trial, body.reason, now)
    return trial


@router.post("/trials/{trial_id}/convert", response_model=TrialPublic, responses=_404)
def convert(ctx: ContextDep, session: SessionDep, principal: StoreStaff, trial_id: str,
            body: Conversion) -> Trial:
    """One-step conversion to the paid service (agent, kiosk, app or reply)."""
    trial = _scoped_trial(session, principal, trial_id)
    return arc.convert(session, trial, body.channel, ctx.clock.now())


@router.post("/services/{service_id}/lookalikes", responses=_404)
def lookalikes(ctx: ContextDep, session: SessionDep, _: AdminOnly,
               service_id: str) -> dict[str, int]:
    """Tag customers who look like this service's converters or non-converters."""
    return arc.tag_lookalikes(session, service_id, ctx.clock.now())


@router.get("/arc/funnel", response_model=None)
def funnel(
    session: SessionDep,
    _: AdminOnly,
    by: arc_funnel.Dimension = "total",
    format: Literal["json", "csv", "png", "svg"] = "json",  # noqa: A002 (query name)
) -> Response | dict[str, object]:
    """The ARC funnel by service/channel/store/city/staff, with the Shanxi 6.4% reference."""
    rows = arc_funnel.funnel(session, by)
    if format == "csv":
        return Response(arc_funnel.to_csv(rows), media_type="text/csv")
    if format in ("png", "svg"):
        media = "image/png" if format == "png" else "image/svg+xml"
        return Response(arc_funnel.to_chart(rows, format, f"ARC conversion by {by}"),
                        media_type=media)
    return {"by": by, "reference_rate": arc_funnel.SHANXI_RATE,
            "rows": [r.as_dict() for r in rows]}
