"""Operations endpoints: health, readiness, Prometheus metrics, OpenAPI with examples."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub.clock import ManualClock
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
