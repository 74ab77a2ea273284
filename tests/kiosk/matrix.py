"""Rows the authorisation matrix (tests/hub/api/test_authz_matrix.py) needs for kiosk routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.checkins import Presence
from hub.models.oao import OaoOrder
from hub.models.services_catalogue import Trial

A, OPS, S, K = Role.ADMIN, Role.REGIONAL_OPS, Role.STORE_STAFF, Role.KIOSK
# cus_a (made by the matrix) stands at the Gulou kiosk: a node there heard their phone.
CUSTOMER = "cus_a"
TRIAL = "tri_kiosk"
ORDER = "ord_kiosk"
_AT = f"/v1/stores/fz-gulou/kiosk/customers/{CUSTOMER}"

# (method, path, roles, body, text an out-of-scope caller of a list must not see)
ROWS: list[tuple[str, str, Any, Any, str | None]] = [
    ("GET", f"{_AT}/wallet", {A, K}, None, None),
    ("GET", f"{_AT}/services", {A, K}, None, None),
    ("POST", "/v1/stores/fz-gulou/kiosk/trials", {A, K},
     {"customer_id": CUSTOMER, "service_id": "video-pack", "handset": ["4g"],
      "consent_sms": True}, None),
    ("POST", f"/v1/stores/fz-gulou/kiosk/trials/{TRIAL}/convert", {A, K},
     {"customer_id": CUSTOMER}, None),
    ("POST", "/v1/stores/fz-gulou/kiosk/pickups", {A, K},
     {"customer_id": CUSTOMER, "order_code": ORDER}, None),
    ("POST", "/v1/stores/fz-gulou/queue-tickets/call-next", {A, S}, None, None),
    ("GET", "/v1/analytics/visit-ratings", {A, OPS, S}, None, "fz-gulou"),
]


def kiosk_world(engine: Engine, clock: ManualClock) -> None:
    """cus_a heard at Gulou now, their music-pack trial, their SIM order ready at Gulou.

    Runs after the ARC world (the catalogue) and the OAO world.
    """
    now = clock.now()
    with Session(engine) as session:
        session.add(Presence(customer_id=CUSTOMER, store_id="fz-gulou", node_id="fz-gulou-n1",
                             seen_at=now))
        session.add(Trial(id=TRIAL, service_id="music-pack", customer_id=CUSTOMER,
                          store_id="fz-gulou", city="fz", channel="kiosk",
                          active_key=f"{CUSTOMER}:music-pack", started_at=now,
                          ends_at=now + timedelta(days=30)))
        session.add(OaoOrder(
            id=ORDER, client_order_key=ORDER, channel="app", product="sim_card",
            customer_id=CUSTOMER, region_id="fz", address="Gulou", latitude=26.08,
            longitude=119.30, window_start=now, window_end=now + timedelta(hours=4),
            status="accepted", store_id="fz-gulou", hops=1, created_at=now, accepted_at=now,
        ))
        session.commit()
