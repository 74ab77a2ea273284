"""Every route x every role: allowed in scope -> success, wrong role -> 403, other scope -> 404.

The table below is the authorisation contract. The first test checks it covers every route
the app serves and that each route declares the same roles in code (``hub.api.deps``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.api.deps import declared_roles
from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.customers import Customer, CustomerSession, CustomerTag
from hub.models.registry import Alert
from hub.security import new_token
from hub.services.auth import SESSION_PREFIX, SESSION_PURPOSE
from tests.hub.arc import matrix as arc_matrix
from tests.hub.campaigns.matrix import CAMPAIGN_BODY, campaign_world
from tests.hub.campaigns.matrix import uid as matrix_uid
from tests.hub.factories import CRYPTO, api_key, checkin_body, last_sms_code, live_code, seed
from tests.hub.oao import matrix as oao_matrix
from tests.kiosk import matrix as kiosk_matrix

A, OPS, INST, S, K, P = (
    Role.ADMIN,
    Role.REGIONAL_OPS,
    Role.INSTALLER,
    Role.STORE_STAFF,
    Role.KIOSK,
    Role.PHONE,
)
PUBLIC = "public"
_ids = itertools.count(1)
Body = Callable[["World"], Any] | dict[str, Any] | None


@dataclass
class World:
    """What the routes act on: Gulou (region fz) is in scope; Siming (region xm) is not."""

    client: TestClient
    engine: Engine
    clock: ManualClock
    alert_id: int
    spare_key_id: str


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    roles: frozenset[Role] | str
    body: Body = None
    # For list endpoints an out-of-scope caller gets 200 with none of this text in it.
    hidden: str | None = None


def case(method: str, path: str, roles: Any, body: Body = None, hidden: str | None = None) -> Case:
    return Case(method, path, roles if roles == PUBLIC else frozenset(roles), body, hidden)


def _uid(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _session_body(world: World) -> dict[str, Any]:
    phone = f"+8613900{next(_ids):06d}"
    world.client.post("/v1/phone/otp", json={"phone": phone})
    return {"phone": phone, "code": last_sms_code(world.engine, phone)}


CASES = [
    case("GET", "/healthz", PUBLIC),
    case("GET", "/readyz", PUBLIC),
    case("GET", "/metrics", PUBLIC),
    case("POST", "/v1/phone/otp", PUBLIC, lambda w: {"phone": f"+8613700{next(_ids):06d}"}),
    case("POST", "/v1/phone/session", PUBLIC, _session_body),
    case("GET", "/v1/regions", {A, OPS, INST}, hidden="Fuzhou"),
    case("POST", "/v1/regions", {A}, lambda w: {"id": _uid("r"), "name": "New"}),
    case("GET", "/v1/regions/fz", {A, OPS, INST}),
    case("GET", "/v1/stores", {A, OPS, INST, S, K}, hidden="fz-gulou"),
    case(
        "POST",
        "/v1/stores",
        {A, OPS},
        lambda w: {
            "id": _uid("s"),
            "region_id": "fz",
            "name": "N",
            "latitude": 26.1,
            "longitude": 119.3,
        },
    ),
    case("GET", "/v1/stores/fz-gulou", {A, OPS, INST, S, K}),
    case("PATCH", "/v1/stores/fz-gulou", {A, OPS, S}, {"capacity": 81}),
    case("GET", "/v1/stores/fz-gulou/zones", {A, OPS, INST, S, K}),
    case(
        "POST",
        "/v1/stores/fz-gulou/zones",
        {A, OPS, INST},
        lambda w: {"id": _uid("z"), "name": "Z"},
    ),
    case("GET", "/v1/stores/fz-gulou/presence", {A, S, K}),
    case("GET", "/v1/stores/fz-gulou/visits", {A, OPS, S}),
    case("GET", "/v1/nodes", {A, OPS, INST, S}, hidden="fz-gulou"),
    case(
        "POST", "/v1/nodes", {A, OPS, INST}, lambda w: {"id": _uid("node"), "store_id": "fz-gulou"}
    ),
    case("GET", "/v1/nodes/fz-gulou-n1", {A, OPS, INST, S}),
    case("PATCH", "/v1/nodes/fz-gulou-n2", {A, OPS, INST}, {"zone_id": "fz-gulou-phones"}),
    case("POST", "/v1/nodes/fz-gulou-n1/credentials", {A, OPS, INST}),
    case("POST", "/v1/nodes/fz-gulou-n1/commands", {A, OPS, INST}, {"cmd": "self_test"}),
    case("DELETE", "/v1/nodes/fz-gulou-n3", {A, OPS, INST}),
    case("GET", "/v1/beacons", {A, OPS, INST, S}, hidden="fz-gulou"),
    case("POST", "/v1/beacons", {A, OPS, INST}, {"node_id": "fz-gulou-n1", "range_m": 5}),
    case("GET", "/v1/beacons/101", {A, OPS, INST, S}),
    case("PATCH", "/v1/beacons/101", {A, OPS, INST}, {"range_m": 7}),
    case("POST", "/v1/beacons/101/rotate", {A, OPS, INST}),
    case("GET", "/v1/alerts", {A, OPS, INST, S}, hidden="gulou-alert"),
    case("POST", "/v1/alerts/{alert_id}/resolve", {A, OPS, INST, S}),
    case("GET", "/v1/api-keys", {A}),
    case("POST", "/v1/api-keys", {A}, {"name": "k", "role": "admin"}),
    case("DELETE", "/v1/api-keys/{spare_key_id}", {A}),
    case("GET", "/v1/customers/cus_b", {A}),
    case("PUT", "/v1/customers/cus_b/tags", {A}, {"kind": "profile", "name": "family"}),
    case("DELETE", "/v1/customers/cus_b/tags/basic/plan", {A}),
    case("DELETE", "/v1/customers/cus_c", {A}),
    case("GET", "/v1/me", {P}),
    case("PATCH", "/v1/me", {P}, {"gender": "female"}),
    case("GET", "/v1/me/visits", {P}),
    case("POST", "/v1/phone/tokens", {P}),
    case(
        "POST",
        "/v1/checkins",
        {P},
        lambda w: checkin_body(live_code(w.engine, w.clock, 101), w.clock),
    ),
    # Campaigns, coupons, points (rows from tests/hub/campaigns/matrix.py).
    case("GET", "/v1/campaigns", {A, OPS}, hidden="cmp_fz"),
    case("POST", "/v1/campaigns", {A, OPS}, CAMPAIGN_BODY),
    case("GET", "/v1/campaigns/cmp_fz", {A, OPS}),
    case("PUT", "/v1/campaigns/cmp_fz", {A, OPS}, CAMPAIGN_BODY),
    case("POST", "/v1/campaigns/cmp_fz/transitions", {A, OPS}, {"transition": "approve"}),
    case("POST", "/v1/campaigns/cmp_fz/dry-run", {A, OPS}, {"store_id": "fz-gulou"}),
    case("GET", "/v1/campaigns/cmp_fz/grants", {A, OPS}),
    case(
        "POST",
        "/v1/stores/fz-gulou/kiosk-signins",
        {A, K},
        lambda w: {"customer_id": "cus_a", "request_id": matrix_uid("kiosk")},
    ),
    case("GET", "/v1/stores/fz-gulou/customers/cus_a/inbox", {A, K}),
    case("POST", "/v1/stores/fz-gulou/queue-tickets", {A, S, K}, {"customer_id": "cus_a"}),
    case("POST", "/v1/stores/fz-gulou/visit-ratings", {A, K}, {"stars": 5, "comment": "quick"}),
    case("GET", "/v1/me/inbox", {P}),
    case("POST", "/v1/me/inbox/grt_fz/seen", {P}),
    case("GET", "/v1/coupon-templates", {A, OPS}, hidden="tpl_fz"),
    case(
        "POST",
        "/v1/coupon-templates",
        {A, OPS},
        {"name": "t", "kind": "value", "value": 100, "region_id": "fz"},
    ),
    case(
        "POST",
        "/v1/coupon-templates/tpl_fz/pool",
        {A, OPS},
        lambda w: {"codes": [matrix_uid("POOL")]},
    ),
    case("POST", "/v1/coupon-templates/tpl_fz/issue", {A, OPS}, {"customer_id": "cus_a"}),
    case(
        "POST",
        "/v1/coupons/redeem",
        {A, OPS, S, K},
        lambda w: {
            "code": "FZMATRIX0001",
            "store_id": "fz-gulou",
            "client_key": matrix_uid("till"),
        },
    ),
    case(
        "POST",
        "/v1/coupons/cpn_fz/reverse",
        {A, OPS, S},
        lambda w: {"client_key": matrix_uid("rev"), "reason": "till error"},
    ),
    case("POST", "/v1/coupons/cpn_fz2/void", {A, OPS}, {"reason": "mistake"}),
    case("GET", "/v1/coupons/cpn_fz/events", {A, OPS}),
    case("GET", "/v1/me/coupons", {P}),
    case("GET", "/v1/me/points", {P}),
    case("GET", "/v1/customers/cus_b/points", {A}),
    case(
        "POST",
        "/v1/customers/cus_b/points/spend",
        {A, S, K},
        lambda w: {"points": 1, "client_key": matrix_uid("spend"), "store_id": "fz-gulou"},
    ),
    case(
        "POST",
        "/v1/customers/cus_b/points/adjust",
        {A},
        lambda w: {"points": 3, "client_key": matrix_uid("adj"), "reason": "goodwill"},
    ),
    # OAO (tests/hub/oao/matrix.py makes the fixed orders and sheet).
    case("POST", "/v1/orders", {A, OPS}, oao_matrix.order_body),
    case("POST", "/v1/orders/batch", {A, OPS}, lambda w: [oao_matrix.order_body(w)]),
    case("GET", "/v1/orders", {A, OPS, S}, hidden="ord_fz"),
    case("GET", "/v1/orders/ord_fz_a", {A, OPS, S}),
    case("GET", "/v1/orders/ord_fz_a/history", {A, OPS, S}),
    case("POST", "/v1/orders/ord_fz_a/accept", {A, OPS, S}),
    case("POST", "/v1/orders/ord_fz_a/start", {A, OPS, S}),
    case("POST", "/v1/orders/ord_fz_a/complete", {A, OPS, S}),
    case("POST", "/v1/orders/ord_fz_b/reject", {A, OPS, S}, {"reason": "busy"}),
    case("POST", "/v1/orders/ord_fz_c/fail", {A, OPS, S}, {"reason": "no signal"}),
    case(
        "POST",
        "/v1/orders/ord_fz_d/redirect",
        {A, OPS},
        {"store_id": "fz-taijiang", "reason": "called"},
    ),
    case("GET", "/v1/oao/policies/fz", {A, OPS}),
    case("PUT", "/v1/oao/policies/fz", {A, OPS}, {"hop_limit": 3}),
    case("GET", "/v1/oao/stores/fz-gulou/profile", {A, OPS, S}),
    case(
        "PUT",
        "/v1/oao/stores/fz-gulou/profile",
        {A, OPS},
        {"skills": ["sim_card", "device", "plan_change"], "order_capacity": 20},
    ),
    case("GET", "/v1/sheets", {A, OPS, INST, S}, hidden="sht_fz"),
    case("GET", "/v1/sheets/sht_fz", {A, OPS, INST, S}),
    case("PUT", "/v1/sheets/sht_fz", {A, OPS, S}, {"current_plan": "5G 129"}),
    case("POST", "/v1/sheets/sht_fz/outcome", {A, INST}, {"outcome": "converted"}),
    case("GET", "/v1/stores/fz-gulou/customers/cus_b/cross-sell", {A, OPS, S, K}),
    case("GET", "/v1/oao/reports/orders", {A, OPS}, hidden="fz-gulou"),
    case("GET", "/v1/oao/reports/sheets", {A, OPS, INST, S}, hidden="fz-gulou"),
    case("GET", "/v1/analytics/visits", {A, OPS}, hidden="fz-gulou"),
    case("GET", "/v1/analytics/attributes", {A, OPS}, hidden="fz-gulou"),
    case("GET", "/v1/analytics/paths", {A, OPS}, hidden="fz-gulou"),
    case("GET", "/v1/analytics/conversion", {A, OPS}, hidden="fz-gulou"),
    case("GET", "/v1/analytics/campaigns/cmp_fz/uplift", {A, OPS}),
    case("GET", "/v1/analytics/tiers", {A, OPS}, hidden="fz-gulou"),
    case("PUT", "/v1/stores/fz-gulou/revenue", {A, OPS}, {"month": "2026-11", "revenue_cents": 1}),
    # ARC (tests/hub/arc/matrix.py makes the fixed trial, instance and task).
    *(case(*row) for row in arc_matrix.ROWS),
    # Kiosk (tests/kiosk/matrix.py puts cus_a at the Gulou kiosk, with a trial and an order).
    *(case(*row) for row in kiosk_matrix.ROWS),
    case("DELETE", "/v1/phone/session", {P}),
    case("DELETE", "/v1/me", {P}),
]

# name -> (role, in scope of Gulou / region fz?)
PRINCIPALS: dict[str, tuple[Role | None, bool]] = {
    "anonymous": (None, False),
    "admin": (A, True),
    "ops_fz": (OPS, True),
    "ops_xm": (OPS, False),
    "installer_fz": (INST, True),
    "installer_xm": (INST, False),
    "staff_gulou": (S, True),
    "staff_siming": (S, False),
    "kiosk_gulou": (K, True),
    "kiosk_siming": (K, False),
    "phone": (P, True),
}


def _route_table(client: TestClient) -> dict[tuple[str, str], Any]:
    """(method, path) -> roles declared by the route's dependencies, for every served route."""
    table: dict[tuple[str, str], Any] = {}
    for ctx in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = ctx.route
        dependant = getattr(route, "dependant", None)
        if dependant is None or not getattr(route, "include_in_schema", True):
            continue
        declared = {declared_roles(d.call) for d in _walk(dependant)} - {None}
        for method in route.methods - {"HEAD"}:
            table[(method, route.path)] = declared
    return table


def _walk(dependant: Any) -> list[Any]:
    out = [dependant]
    for sub in dependant.dependencies:
        out.extend(_walk(sub))
    return out


def test_table_covers_every_route_and_matches_declarations(client: TestClient) -> None:
    """Every served route is in CASES, declares exactly one role set, and it matches the table."""
    served = _route_table(client)
    table = {
        (c.method, c.path.replace("{alert_id}", "{x}").replace("{spare_key_id}", "{x}")): c
        for c in CASES
    }
    normalised = {}
    for (method, path), declared in served.items():
        concrete = next((c for c in CASES if c.method == method and _matches(path, c.path)), None)
        assert concrete is not None, f"{method} {path} is not in the authorisation table"
        assert len(declared) == 1, f"{method} {path} declares {declared}"
        expected = PUBLIC if concrete.roles == PUBLIC else frozenset(concrete.roles)
        assert declared == {expected}, (
            f"{method} {path}: code says {declared}, table says {expected}"
        )
        normalised[(method, path)] = concrete
    assert len(normalised) == len(CASES) == len(table)


def _matches(template: str, concrete: str) -> bool:
    t, c = template.split("/"), concrete.split("/")
    return len(t) == len(c) and all(a == b or a.startswith("{") for a, b in zip(t, c, strict=True))


def _phone_token(engine: Engine, clock: ManualClock, customer_id: str) -> str:
    token, _ = new_token(SESSION_PREFIX)
    with Session(engine) as session:
        session.add(
            CustomerSession(
                token_hash=CRYPTO.keyed_hash(SESSION_PURPOSE, token),
                customer_id=customer_id,
                created_at=clock.now(),
                expires_at=clock.now() + timedelta(days=1),
            )
        )
        session.commit()
    return token


def _world(
    client: TestClient, engine: Engine, clock: ManualClock
) -> tuple[World, dict[str, str | None]]:
    seed(engine, clock)
    with Session(engine) as session:
        for cid in ("cus_a", "cus_b", "cus_c"):
            session.add(
                Customer(
                    id=cid,
                    phone_hash=f"h-{cid}",
                    phone_enc=CRYPTO.encrypt("+8613000000000"),
                    created_at=clock.now(),
                    # Check-ins need the microphone disclosure accepted.
                    microphone_disclosure_version="2026-01",
                    microphone_accepted_at=clock.now(),
                )
            )
        session.flush()
        session.add(
            CustomerTag(customer_id="cus_b", kind="basic", name="plan", created_at=clock.now())
        )
        alert = Alert(
            kind="test",
            store_id="fz-gulou",
            node_id="fz-gulou-n1",
            detail="gulou-alert",
            created_at=clock.now(),
        )
        session.add(alert)
        session.commit()
        alert_id = int(alert.id or 0)
    campaign_world(engine, clock)
    keys: dict[str, str | None] = {
        "anonymous": None,
        "admin": api_key(engine, clock, A),
        "ops_fz": api_key(engine, clock, OPS, region_id="fz"),
        "ops_xm": api_key(engine, clock, OPS, region_id="xm"),
        "installer_fz": api_key(engine, clock, INST, region_id="fz"),
        "installer_xm": api_key(engine, clock, INST, region_id="xm"),
        "staff_gulou": api_key(engine, clock, S, store_id="fz-gulou"),
        "staff_siming": api_key(engine, clock, S, store_id="xm-siming"),
        "kiosk_gulou": api_key(engine, clock, K, store_id="fz-gulou"),
        "kiosk_siming": api_key(engine, clock, K, store_id="xm-siming"),
        "phone": _phone_token(engine, clock, "cus_a"),
    }
    oao_matrix.oao_world(engine, clock)
    spare = client.post(
        "/v1/api-keys",
        json={"name": "spare", "role": "admin"},
        headers={"Authorization": f"Bearer {keys['admin']}"},
    ).json()["api_key"]["id"]
    arc_matrix.arc_world(engine, clock)
    kiosk_matrix.kiosk_world(engine, clock)
    return World(client, engine, clock, alert_id, spare), keys


def _expected(c: Case, role: Role | None, in_scope: bool) -> str:
    if c.roles == PUBLIC:
        return "ok"
    if role is None:
        return "401"
    if role not in c.roles:
        return "403"
    if in_scope or role in (A, P):
        return "ok"
    return "hidden" if c.hidden else "404"


@pytest.mark.timeout(120)
def test_every_route_for_every_role(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """The matrix: collect every mismatch, then report them all at once."""
    world, keys = _world(client, engine, clock)
    failures: list[str] = []
    # Out-of-scope and wrong-role callers first, so the allowed calls see untouched state.
    order = sorted(PRINCIPALS.items(), key=lambda item: item[1][1])
    for c in CASES:
        path = c.path.format(alert_id=world.alert_id, spare_key_id=world.spare_key_id)
        # A fresh phone session per route: sign-out and erase end the previous one.
        keys["phone"] = _phone_token(engine, clock, "cus_a")
        for name, (role, in_scope) in order:
            body = c.body(world) if callable(c.body) else c.body
            headers = {"Authorization": f"Bearer {keys[name]}"} if keys[name] else {}
            resp = client.request(c.method, path, json=body, headers=headers)
            want = _expected(c, role, in_scope)
            got = resp.status_code
            ok = {
                "ok": 200 <= got < 300 or (got == 409 and c.method == "POST"),
                "401": got == 401,
                "403": got == 403,
                "404": got == 404,
                "hidden": got == 200 and c.hidden is not None and c.hidden not in resp.text,
            }[want]
            if not ok:
                failures.append(
                    f"{c.method} {path} as {name}: want {want}, got {got} {resp.text[:120]}"
                )
    assert failures == [], "\n".join(failures)
