"""Reports: figures per store and region as CSV, charts as PNG and SVG."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub.clock import ManualClock
from tests.hub.oao.helpers import Keys, create


def _rows(text: str) -> dict[str, dict[str, str]]:
    return {row["key"]: row for row in csv.DictReader(io.StringIO(text))}


def test_dispatch_acceptance_redispatch_and_completion_figures(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """Two orders: one accepted after 10 min and completed; one rejected by Gulou, then failed."""
    keys = Keys(engine, clock)
    gulou, taijiang = keys.staff["fz-gulou"], keys.staff["fz-taijiang"]
    done = create(client, keys, clock)
    bounced = create(client, keys, clock)
    clock.advance(timedelta(minutes=10))
    client.post(f"/v1/orders/{done['id']}/accept", headers=gulou)
    client.post(f"/v1/orders/{done['id']}/start", headers=gulou)
    client.post(f"/v1/orders/{done['id']}/complete", headers=gulou)
    client.post(f"/v1/orders/{bounced['id']}/reject", json={"reason": "busy"}, headers=gulou)
    clock.advance(timedelta(minutes=4))
    client.post(f"/v1/orders/{bounced['id']}/accept", headers=taijiang)
    client.post(f"/v1/orders/{bounced['id']}/fail", json={"reason": "no signal"}, headers=taijiang)
    resp = client.get("/v1/oao/reports/orders", headers=keys.ops_fz)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    stores = _rows(resp.text)
    assert set(stores) == {"fz-gulou", "fz-taijiang"}
    assert stores["fz-gulou"] == {
        "key": "fz-gulou",
        "orders": "1",
        "offers": "2",
        "dispatch_s_median": "0.0",
        "acceptance_s_median": "600.0",
        "redispatch_rate": "0.5",
        "completion_rate": "1.0",
        "escalated": "0",
    }
    assert stores["fz-taijiang"]["acceptance_s_median"] == "240.0"
    assert stores["fz-taijiang"]["completion_rate"] == "0.0"
    region = _rows(client.get("/v1/oao/reports/orders?group=region", headers=keys.ops_fz).text)[
        "fz"
    ]
    assert (
        region["orders"],
        region["offers"],
        region["redispatch_rate"],
        region["completion_rate"],
    ) == ("2", "3", "0.3333", "0.5")
    assert client.get("/v1/oao/reports/orders", headers=keys.ops_xm).text.count("\n") == 1
    png = client.get("/v1/oao/reports/orders?fmt=png", headers=keys.ops_fz)
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    svg = client.get("/v1/oao/reports/orders?fmt=svg&group=region", headers=keys.admin)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    bad = client.get("/v1/oao/reports/orders?fmt=gif", headers=keys.admin)
    assert bad.status_code == 422
