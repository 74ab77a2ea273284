"""OAO test helpers: order bodies near the seeded Fuzhou stores, keys, profiles, the sweep."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.services.timers import run_due
from tests.hub.factories import api_key, auth, seed

# A flat in Gulou district: fz-gulou is nearest, then fz-taijiang, then fz-cangshan.
NEAR_GULOU = (26.0870, 119.2990)
_keys = itertools.count(1)


def order_body(clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    """A valid order body for region fz placed now (fresh client key unless overridden)."""
    start = clock.now() + timedelta(hours=3)
    body: dict[str, Any] = {
        "client_order_key": f"wx-{next(_keys):06d}",
        "channel": "official_account",
        "product": "sim_card",
        "region_id": "fz",
        "address": "12 Dongjie Rd, Gulou, Fuzhou",
        "latitude": NEAR_GULOU[0],
        "longitude": NEAR_GULOU[1],
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=4)).isoformat(),
    }
    body.update(overrides)
    return body


class Keys:
    """API keys of one seeded world, as request headers."""

    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        """Seed the registry and mint the keys the OAO tests use."""
        seed(engine, clock)
        self.admin = auth(api_key(engine, clock, Role.ADMIN))
        self.ops_fz = auth(api_key(engine, clock, Role.REGIONAL_OPS, region_id="fz"))
        self.ops_xm = auth(api_key(engine, clock, Role.REGIONAL_OPS, region_id="xm"))
        self.staff = {
            store: auth(api_key(engine, clock, Role.STORE_STAFF, store_id=store))
            for store in ("fz-gulou", "fz-taijiang", "fz-cangshan", "xm-siming")
        }


def create(client: TestClient, keys: Keys, clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    """POST an order as fz ops; assert it was created; return it."""
    resp = client.post("/v1/orders", json=order_body(clock, **overrides), headers=keys.ops_fz)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def sweep(engine: Engine, clock: ManualClock, after: timedelta) -> int:
    """Move the clock on and run every due timer; return how many ran."""
    clock.advance(after)
    return run_due(engine, clock)
