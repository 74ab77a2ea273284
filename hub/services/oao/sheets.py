"""Installer communication sheets: the paired store prepares the visit, the installer closes it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from hub.models.auth import Role
from hub.models.customers import CustomerTag
from hub.models.oao import (
    OaoOrder,
    OaoSheet,
    OaoStoreProfile,
    SheetFill,
    SheetOutcome,
    SheetOutcomeIn,
    SheetStatus,
)
from hub.models.registry import Store
from hub.models.types import new_id
from hub.services.auth import STORE_ROLES, Principal
from hub.services.errors import Conflict, NotFound

log = logging.getLogger(__name__)

# Customer "basic" tags the sheet is pre-filled from, where the customer record has them.
_TAG_FIELDS = {
    "plan": "current_plan",
    "secondary_cards": "secondary_cards",
    "set_top_box": "set_top_box",
    "broadband": "broadband",
    "spend_3m": "spend_3m",
}
# The last three months' spend, one figure each (issue 8).
SPEND_MONTHS = 3
MAX_PAGE = 500


def _prefill(session: Session, customer_id: str | None) -> dict[str, object]:
    """What the customer record already says (basic tags); malformed values are skipped."""
    if customer_id is None:
        return {}
    tags = session.exec(
        select(CustomerTag).where(
            CustomerTag.customer_id == customer_id, CustomerTag.kind == "basic"
        )
    ).all()
    known: dict[str, object] = {}
    for tag in tags:
        field = _TAG_FIELDS.get(tag.name)
        if field is None or not tag.value:
            continue
        try:
            if field == "secondary_cards":
                known[field] = int(tag.value)
            elif field == "spend_3m":
                spend = [float(x) for x in tag.value.split(",")]
                if len(spend) == SPEND_MONTHS:
                    known[field] = spend
            else:
                known[field] = tag.value
        except ValueError:
            log.info("customer tag not usable for a sheet", extra={"tag": tag.name})
    return known


def open_for(session: Session, order: OaoOrder, now: datetime) -> OaoSheet:
    """The installation order's sheet for its store and paired installer (created once)."""
    existing = session.exec(select(OaoSheet).where(OaoSheet.order_id == order.id)).first()
    if existing is not None:
        return existing
    assert order.store_id is not None
    profile = session.get(OaoStoreProfile, order.store_id)
    sheet = OaoSheet.model_validate(
        {
            **_prefill(session, order.customer_id),
            "id": new_id("sht"),
            "order_id": order.id,
            "store_id": order.store_id,
            "installer_key_id": profile.installer_key_id if profile else None,
            "due_at": order.window_end,
            "created_at": now,
        }
    )
    session.add(sheet)
    log.info("sheet opened", extra={"sheet_id": sheet.id, "order_id": order.id})
    return sheet


def _sees(session: Session, principal: Principal, sheet: OaoSheet) -> bool:
    """Admins all; ops their region; staff their store; installers the sheets paired to them."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.INSTALLER:
        return sheet.installer_key_id is not None and sheet.installer_key_id == principal.key_id
    if principal.role in STORE_ROLES:
        return sheet.store_id == principal.store_id
    store = session.get(Store, sheet.store_id)
    return store is not None and principal.sees_store(store)


def scoped_sheet(session: Session, principal: Principal, sheet_id: str) -> OaoSheet:
    """A sheet the caller may see, else NotFound."""
    sheet = session.get(OaoSheet, sheet_id)
    if sheet is None or not _sees(session, principal, sheet):
        raise NotFound(f"sheet {sheet_id!r} not found")
    return sheet


def list_sheets(
    session: Session,
    principal: Principal,
    status: SheetStatus | None,
    limit: int | None = MAX_PAGE,
) -> Sequence[OaoSheet]:
    """Sheets in the caller's scope, newest first (at most ``limit``; None: all)."""
    query = select(OaoSheet).order_by(col(OaoSheet.created_at).desc(), col(OaoSheet.id).desc())
    if principal.role is Role.INSTALLER:
        query = query.where(OaoSheet.installer_key_id == principal.key_id)
    elif principal.role in STORE_ROLES:
        query = query.where(OaoSheet.store_id == principal.store_id)
    elif principal.role is Role.REGIONAL_OPS:
        query = query.join(Store, col(OaoSheet.store_id) == col(Store.id)).where(
            Store.region_id == principal.region_id
        )
    if status is not None:
        query = query.where(OaoSheet.status == status.value)
    return session.exec(query.limit(limit)).all()


def fill(
    session: Session, principal: Principal, sheet_id: str, spec: SheetFill, now: datetime
) -> OaoSheet:
    """The paired store writes what the installer should know; may be revised until closed."""
    sheet = scoped_sheet(session, principal, sheet_id)
    if principal.role is Role.INSTALLER:
        raise NotFound(f"sheet {sheet_id!r} not found")
    if sheet.status == SheetStatus.CLOSED.value:
        raise Conflict(f"sheet {sheet_id} is closed", code="sheet_closed")
    for name, value in spec.model_dump(exclude_unset=True).items():
        setattr(sheet, name, value)
    sheet.status = SheetStatus.FILLED.value
    sheet.filled_at = now
    session.add(sheet)
    return sheet


def read(session: Session, principal: Principal, sheet_id: str, now: datetime) -> OaoSheet:
    """A sheet; the paired installer's first read is recorded (prepared before the visit)."""
    sheet = scoped_sheet(session, principal, sheet_id)
    if principal.role is Role.INSTALLER and sheet.read_at is None:
        sheet.read_at = now
        session.add(sheet)
    return sheet


def close(
    session: Session, principal: Principal, sheet_id: str, spec: SheetOutcomeIn, now: datetime
) -> OaoSheet:
    """The installer writes the visit's outcome: the loop is closed (once)."""
    sheet = scoped_sheet(session, principal, sheet_id)
    if principal.role not in (Role.INSTALLER, Role.ADMIN):
        raise NotFound(f"sheet {sheet_id!r} not found")
    if sheet.status == SheetStatus.CLOSED.value:
        raise Conflict(f"sheet {sheet_id} is already closed", code="sheet_closed")
    if sheet.status != SheetStatus.FILLED.value:
        raise Conflict(
            f"sheet {sheet_id} has not been filled by the store yet", code="sheet_not_filled"
        )
    sheet.outcome = spec.outcome.value
    sheet.outcome_note = spec.note
    sheet.status = SheetStatus.CLOSED.value
    sheet.closed_at = now
    session.add(sheet)
    return sheet


def report(session: Session, principal: Principal, now: datetime) -> dict[str, dict[str, int]]:
    """Per store: sheets open (not closed), late (open past the visit window), converted."""
    rows: dict[str, dict[str, int]] = {}
    for sheet in list_sheets(session, principal, None, limit=None):
        row = rows.setdefault(
            sheet.store_id, {"total": 0, "open": 0, "late": 0, "closed": 0, "converted": 0}
        )
        row["total"] += 1
        if sheet.status == SheetStatus.CLOSED.value:
            row["closed"] += 1
            row["converted"] += sheet.outcome == SheetOutcome.CONVERTED.value
        else:
            row["open"] += 1
            row["late"] += now > sheet.due_at
    return rows
