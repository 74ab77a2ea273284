"""Operations endpoints: health, readiness, Prometheus metrics, OpenAPI with examples."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub.app import create_app
from hub.clock import ManualClock
from storewave.settings import HubSettings
from tests.hub.factories import auth, checkin_body, live_code, seed, sign_in


def test_health_ready_and_metrics(client: TestClient, engine: Engine, clock: ManualClock) -> None:
    """Probes answer; a check-in shows up in the check-in counter and the latency histogram."""
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    seed(engine, clock)
    headers = auth(sign_in(client, engine, "+8613800138000"))
    client.post(
        "/v1/checkins", json=checkin_body(live_code(engine, clock, 101), clock), headers=headers
    )
    text = client.get("/metrics").text
    assert 'storewave_checkins_total{outcome="accepted"}' in text
    assert (
        'storewave_api_latency_seconds_bucket{le="0.05",method="POST",route="/v1/checkins"}' in text
    )


def test_openapi_has_examples_and_security(client: TestClient) -> None:
    """The OpenAPI document carries request examples and the bearer scheme."""
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert schemas["StoreCreate"]["examples"][0]["timezone"] == "Asia/Shanghai"
    assert "CheckinRequest" in schemas
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


def test_a_serving_app_keeps_its_startup_heap_out_of_gc_walks(
    settings: HubSettings, engine: Engine, clock: ManualClock
) -> None:
    """Started: the objects alive at startup are frozen; stopped: released again."""
    app = create_app(settings, clock=clock, engine=engine)
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert gc.get_freeze_count() > 10_000
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0
