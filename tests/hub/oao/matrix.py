"""Rows the authorisation matrix (tests/hub/api/test_authz_matrix.py) needs for OAO routes."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from hub.clock import ManualClock
from hub.models.auth import ApiKey, Role
from hub.models.oao import OaoDispatch, OaoOrder, OaoSheet
from tests.hub.oao.helpers import NEAR_GULOU

_ids = itertools.count(1)
# Fixed orders in region fz: offered to Gulou (accept/start/complete), offered to Gulou
# (reject), accepted by Gulou (fail), escalated (redirect); a sheet for the accepted one.
OFFERED, TO_REJECT, ACCEPTED, ESCALATED = "ord_fz_a", "ord_fz_b", "ord_fz_c", "ord_fz_d"
SHEET = "sht_fz"


def order_body(_world: Any = None) -> dict[str, Any]:
    """A fresh valid order for region fz (the matrix calls this per request)."""
    return {
        "client_order_key": f"matrix-{next(_ids):06d}",
        "channel": "web_hall",
        "product": "sim_card",
        "region_id": "fz",
        "address": "Gulou",
        "latitude": NEAR_GULOU[0],
        "longitude": NEAR_GULOU[1],
        "window_start": "2026-11-30T06:00:00Z",
        "window_end": "2026-11-30T10:00:00Z",
    }


def oao_world(engine: Engine, clock: ManualClock) -> None:
    """Insert the fixed orders and the sheet (after the matrix's keys exist)."""
    now = clock.now()
    statuses = {
        OFFERED: "dispatched",
        TO_REJECT: "dispatched",
        ACCEPTED: "accepted",
        ESCALATED: "escalated",
    }
    with Session(engine) as session:
        installer = session.exec(
            select(ApiKey).where(ApiKey.role == Role.INSTALLER.value, ApiKey.region_id == "fz")
        ).first()
        for order_id, status in statuses.items():
            session.add(
                OaoOrder(
                    id=order_id,
                    client_order_key=order_id,
                    channel="app",
                    product="sim_card",
                    region_id="fz",
                    address="Gulou",
                    latitude=NEAR_GULOU[0],
                    longitude=NEAR_GULOU[1],
                    window_start=now + timedelta(hours=2),
                    window_end=now + timedelta(hours=6),
                    status=status,
                    store_id=None if status == "escalated" else "fz-gulou",
                    hops=0 if status == "escalated" else 1,
                    created_at=now,
                )
            )
        session.flush()
        for order_id in (OFFERED, TO_REJECT):
            session.add(
                OaoDispatch(
                    order_id=order_id,
                    hop=1,
                    store_id="fz-gulou",
                    policy="nearest",
                    reason="matrix",
                    decided_at=now,
                )
            )
        session.add(
            OaoSheet(
                id=SHEET,
                order_id=ACCEPTED,
                store_id="fz-gulou",
                installer_key_id=installer.id if installer else None,
                due_at=now + timedelta(hours=6),
                created_at=now,
            )
        )
        session.commit()
