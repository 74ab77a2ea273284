"""Installer communication sheets: the paired store fills, the installer reads and closes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends

from hub.api.deps import ContextDep, FleetReaders, SessionDep, StoreStaff, require
from hub.models.auth import Role
from hub.models.oao import OaoSheet, SheetFill, SheetOutcomeIn, SheetPublic, SheetStatus
from hub.services.auth import Principal
from hub.services.oao import sheets

router = APIRouter(prefix="/v1", tags=["oao"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
# Only the installer (or an admin correcting a record) writes a visit's outcome.
Installers = Annotated[Principal, Depends(require(Role.ADMIN, Role.INSTALLER))]


@router.get("/sheets", response_model=list[SheetPublic])
def list_sheets(
    session: SessionDep, principal: FleetReaders, status: SheetStatus | None = None
) -> Sequence[OaoSheet]:
    """Sheets in scope: an installer sees those paired to them, staff their store's."""
    return sheets.list_sheets(session, principal, status)


@router.get("/sheets/{sheet_id}", response_model=SheetPublic, responses=_404)
def read_sheet(
    ctx: ContextDep, session: SessionDep, principal: FleetReaders, sheet_id: str
) -> OaoSheet:
    """One sheet; the paired installer's first read is recorded."""
    return sheets.read(session, principal, sheet_id, ctx.clock.now())


@router.put("/sheets/{sheet_id}", response_model=SheetPublic, responses=_404)
def fill_sheet(
    ctx: ContextDep, session: SessionDep, principal: StoreStaff, sheet_id: str, body: SheetFill
) -> OaoSheet:
    """The store writes plan, secondary cards, STB, broadband, 3 months' spend, suggestion."""
    return sheets.fill(session, principal, sheet_id, body, ctx.clock.now())


@router.post("/sheets/{sheet_id}/outcome", response_model=SheetPublic, responses=_404)
def close_sheet(
    ctx: ContextDep,
    session: SessionDep,
    principal: Installers,
    sheet_id: str,
    body: SheetOutcomeIn,
) -> OaoSheet:
    """The installer writes the visit's outcome, closing the loop."""
    return sheets.close(session, principal, sheet_id, body, ctx.clock.now())
