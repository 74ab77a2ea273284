"""Rows the authorisation matrix (tests/hub/api/test_authz_matrix.py) needs for ARC routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.customers import Customer
from hub.models.journeys import JourneyInstance, StaffTask
from hub.models.services_catalogue import Trial
from hub.services import arc, journeys
from tests.hub.factories import CRYPTO

A, OPS, S = Role.ADMIN, Role.REGIONAL_OPS, Role.STORE_STAFF
PUBLIC = "public"
# Fixed rows in store fz-gulou: a trial, a journey instance, an open call task.
TRIAL, INSTANCE, TASK = "tri_fz", "jin_fz", 424242
CUSTOMER = "cus_arc"
JOURNEY: dict[str, Any] = {
    "name": "matrix",
    "start": "hi",
    "steps": [
        {"id": "hi", "type": "send", "channel": "sms", "template": "Hi", "next": "w"},
        {"id": "w", "type": "wait", "duration": "P1D", "next": None},
    ],
}
_TRIAL_BODY = {"service_id": "music-pack", "customer_id": CUSTOMER, "store_id": "fz-gulou",
               "channel": "front_desk", "handset": ["4g"]}

ROWS: list[tuple[str, str, Any, Any]] = [
    ("GET", "/v1/services", PUBLIC, None),
    ("POST", "/v1/trials", {A, OPS, S}, _TRIAL_BODY),
    ("GET", f"/v1/trials/{TRIAL}", {A, OPS, S}, None),
    ("POST", f"/v1/trials/{TRIAL}/usage", {A}, {"usage_mb": 10}),
    ("POST", f"/v1/trials/{TRIAL}/feedback", {A, OPS, S}, {"rating": 4}),
    ("POST", f"/v1/trials/{TRIAL}/convert", {A, OPS, S}, {"channel": "agent"}),
    ("POST", "/v1/services/video-pack/lookalikes", {A}, None),
    ("GET", "/v1/arc/funnel", {A}, None),
    ("POST", "/v1/journeys", {A}, JOURNEY),
    ("GET", "/v1/journeys", {A}, None),
    ("POST", "/v1/journeys/matrix/instances", {A}, {"customer_id": "cus_b"}),
    ("GET", f"/v1/journey-instances/{INSTANCE}", {A}, None),
    ("POST", "/v1/customers/cus_b/events", {A}, {"event": "matrix.ping"}),
    ("GET", "/v1/stores/fz-gulou/tasks", {A, OPS, S}, None),
    ("POST", f"/v1/tasks/{TASK}/done", {A, OPS, S}, {"outcome": "called"}),
    ("POST", "/v1/outbox/replies", {A}, {"phone": "+8613000000000", "text": "hello"}),
    ("GET", "/v1/outbox/stats", {A}, None),
]


def arc_world(engine: Engine, clock: ManualClock) -> None:
    """Catalogue, a consenting customer, the fixed trial/instance/task, the matrix journey."""
    now = clock.now()
    journeys.definitions.forget_cache()
    with Session(engine) as session:
        arc.load_service_catalogue(session)
        session.add(Customer(id=CUSTOMER, phone_hash="h-cus_arc",
                             phone_enc=CRYPTO.encrypt("+8613000000001"), created_at=now,
                             consent_marketing_sms=True))
        definition = journeys.publish(session, JOURNEY, now)
        session.add(JourneyInstance(
            id=INSTANCE, definition_id=definition.id or 0, journey="matrix",
            customer_id=CUSTOMER, store_id="fz-gulou", state="completed",
            started_at=now, deadline_at=now + timedelta(days=1)))
        session.add(Trial(id=TRIAL, service_id="video-pack", customer_id=CUSTOMER,
                          store_id="fz-gulou", city="fz", channel="front_desk",
                          started_at=now, ends_at=now + timedelta(days=30)))
        session.flush()
        session.add(StaffTask(id=TASK, instance_id=INSTANCE, step_id="call",
                              customer_id=CUSTOMER, store_id="fz-gulou", kind="call",
                              title="Call", due_at=now, created_at=now))
        session.commit()
