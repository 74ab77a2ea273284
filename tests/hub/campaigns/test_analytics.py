"""Analytics against a hand-computed fixture; region scoping; CSV/PNG/SVG exports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.analytics import StoreRevenue
from hub.models.auth import Role
from hub.models.campaigns import Campaign, CampaignGrant
from hub.models.checkins import Visit, VisitZone
from hub.models.coupons import Coupon, CouponTemplate
from hub.services import analytics, analytics_charts
from hub.services.auth import Principal
from tests.hub.campaigns.helpers import GULOU, SIMING, TAIJIANG, customer, stores
from tests.hub.factories import api_key, auth

ADMIN = Principal(role=Role.ADMIN)
OPS_XM = Principal(role=Role.REGIONAL_OPS, region_id="xm")
DAY = analytics.Period(date(2026, 11, 30), date(2026, 11, 30))
T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai


def _visit(
    session: Session,
    vid: str,
    cid: str | None,
    store: str,
    start: datetime,
    minutes: int,
    zones: list[tuple[str, int]] = (),
) -> None:  # type: ignore[assignment]
    """A visit with its zone steps (zone, minutes after the start)."""
    session.add(
        Visit(
            id=vid,
            customer_id=cid,
            store_id=store,
            started_at=start,
            last_seen_at=start + timedelta(minutes=minutes),
        )
    )
    session.flush()
    for zone, offset in zones:
        session.add(
            VisitZone(
                visit_id=vid,
                zone_id=f"{GULOU}-{zone}",
                entered_at=start + timedelta(minutes=offset),
            )
        )


@pytest.fixture
def world(engine: Engine, clock: ManualClock) -> Engine:
    """Seven visitors of Gulou on 30 Nov (local), one of Siming, two redemptions."""
    stores(engine)
    for i in range(1, 6):
        customer(engine, clock, f"f{i}", gender="female", age_band="25-34", postal_code="350001")
    customer(engine, clock, "m1", gender="male", age_band="35-44", postal_code="361000")
    customer(engine, clock, "m2", gender="male", age_band="18-24", postal_code="350002")
    customer(engine, clock, "m3", gender="male")
    with Session(engine) as s:
        _visit(s, "v-f1", "f1", GULOU, T0, 20, [("door", 0), ("phones", 5), ("counter", 15)])
        _visit(s, "v-f2", "f2", GULOU, T0 + timedelta(minutes=1), 10, [("door", 0), ("phones", 4)])
        for cid in ("f3", "f4", "f5", "m1"):
            _visit(s, f"v-{cid}", cid, GULOU, T0 + timedelta(minutes=30), 10)
        _visit(s, "v-m2", "m2", GULOU, T0 + timedelta(hours=3), 10)  # 14:00 local
        _visit(s, "v-f1b", "f1", GULOU, T0 + timedelta(hours=4), 10)  # 15:00 local
        _visit(s, "v-m1x", "m1", SIMING, T0, 10)
        _visit(s, "v-old", "f1", GULOU, T0 - timedelta(days=2), 10)  # outside the period
        s.add(CouponTemplate(id="tpl", name="t", kind="value", value=1, created_at=T0))
        s.flush()
        for cid in ("f1", "f3", "m3"):
            s.add(
                Coupon(
                    id=f"c-{cid}",
                    code=f"CODE-{cid}",
                    template_id="tpl",
                    customer_id=cid,
                    state="redeemed",
                    redeemed_at=T0 + timedelta(hours=1),
                    redeemed_store_id=GULOU,
                )
            )
        s.commit()
    return engine


def test_visits_by_store_day_hour_and_region_scope(world: Engine) -> None:
    """Counts per local hour; regional ops of Xiamen see Siming only."""
    with Session(world) as s:
        rows = analytics.visits_report(s, ADMIN, DAY, GULOU)
        assert [(r["hour"], r["visits"], r["unique_visitors"]) for r in rows] == [
            (11, 6, 6),
            (14, 1, 1),
            (15, 1, 1),
        ]
        xm = analytics.visits_report(s, OPS_XM, DAY)
        assert [(r["store_id"], r["visits"]) for r in xm] == [(SIMING, 1)]
        assert analytics.visits_report(s, OPS_XM, DAY, GULOU) == []


def test_attributes_hide_small_groups(world: Engine) -> None:
    """7 visitors: 5 women shown (5/7); the 2 men (< 5) never appear, not even folded."""
    with Session(world) as s:
        rows = analytics.attributes_report(s, ADMIN, DAY, GULOU)
    got = {(r["attribute"], r["value"]): (r["visitors"], r["share"]) for r in rows}
    assert got == {
        ("gender", "female"): (5, 0.7143),
        ("age_band", "25-34"): (5, 0.7143),
        ("postal_prefix", "350"): (6, 0.8571),
    }


def test_paths_transitions_and_dwell(world: Engine) -> None:
    """Hand-computed: door->phones twice, phones->counter once; mean dwell per zone."""
    with Session(world) as s:
        report = analytics.paths_report(s, ADMIN, DAY, GULOU)
    z = f"{GULOU}-"
    assert report["transitions"] == [
        {"from": f"{z}door", "to": f"{z}phones", "count": 2},
        {"from": f"{z}phones", "to": f"{z}counter", "count": 1},
    ]
    assert {p["path"] for p in report["top_paths"]} == {
        f"{z}door > {z}phones > {z}counter",
        f"{z}door > {z}phones",
    }
    dwell = {d["zone"]: d["mean_minutes"] for d in report["dwell"]}
    assert dwell == {f"{z}door": 4.5, f"{z}phones": 8.0, f"{z}counter": 5.0}


def test_movement_chart_ranks_transitions_with_counts(world: Engine) -> None:
    """The paths chart: moves ranked busiest first with their counts, dwell per zone."""
    with Session(world) as s:
        report = analytics.paths_report(s, ADMIN, DAY, GULOU)
    svg = analytics_charts.movement_chart(report, "Movement", "svg").decode()
    # Words stay text in the SVG; the shared store prefix is the title, not every label.
    first, second = svg.index("door \u2192 phones"), svg.index("phones \u2192 counter")
    assert first < second  # rank 1 is drawn first (at the top)
    assert f"Movement \u2014 {GULOU}" in svg and f"{GULOU}-door" not in svg
    assert "8.0 min (" in svg and "4.5 min (" in svg
    png = analytics_charts.movement_chart(report, "Movement", "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    empty = analytics_charts.movement_chart({"transitions": [], "dwell": []}, "M", "svg")
    assert "No zone-to-zone moves" in empty.decode()
    with pytest.raises(ValueError):
        analytics_charts.movement_chart(report, "Movement", "gif")


def test_conversion_counts_checked_in_redeemers(world: Engine) -> None:
    """2 of the 7 checked-in visitors redeemed (m3 redeemed without checking in: not counted)."""
    with Session(world) as s:
        rows = analytics.conversion_report(s, ADMIN, DAY)
    by_store = {r["store_id"]: (r["checked_in"], r["redeemed"], r["conversion"]) for r in rows}
    assert by_store == {GULOU: (7, 2, 0.2857), TAIJIANG: (0, 0, 0.0), SIMING: (1, 0, 0.0)}


def test_uplift_interval_by_hand() -> None:
    """30/100 vs 10/50: uplift 0.10, se = sqrt(.0021 + .0032) = .0728, CI +-0.1427."""
    out = analytics.uplift_interval(30, 100, 10, 50)
    assert (out["uplift"], out["ci_low"], out["ci_high"]) == (0.1, -0.0427, 0.2427)
    assert analytics.uplift_interval(3, 10, 0, 0)["uplift"] is None


def test_campaign_uplift_uses_holdout(world: Engine) -> None:
    """f1 (granted) came back within 14 days, f2 (holdout) did not."""
    with Session(world) as s:
        s.add(
            Campaign(
                id="cmp",
                name="c",
                trigger="checkin",
                reward_kind="points",
                points=1,
                created_at=T0,
                updated_at=T0,
            )
        )
        s.flush()
        for cid, outcome in (("f1", "granted"), ("f2", "holdout")):
            s.add(
                CampaignGrant(
                    id=f"g-{cid}",
                    campaign_id="cmp",
                    customer_id=cid,
                    store_id=GULOU,
                    source_event=cid,
                    trigger="checkin",
                    outcome=outcome,
                    reward_kind="points",
                    store_day="2026-11-30",
                    at=T0 + timedelta(minutes=1),
                )
            )
        s.commit()
        out = analytics.uplift_report(s, "cmp")
    assert (out["treated_rate"], out["control_rate"], out["uplift"]) == (1.0, 0.0, 1.0)


def test_tiers_follow_the_seeds_rule(world: Engine, clock: ManualClock) -> None:
    """Gulou: 7 new users -> low; Taijiang: 21 new users and revenue above the mean -> high."""
    for i in range(21):
        customer(world, clock, f"t{i}")
    with Session(world) as s:
        for i in range(21):
            _visit(s, f"v-t{i}", f"t{i}", TAIJIANG, T0 - timedelta(days=10), 5)
        s.add(StoreRevenue(store_id=GULOU, month="2026-11", revenue_cents=100, reported_at=T0))
        s.add(StoreRevenue(store_id=TAIJIANG, month="2026-11", revenue_cents=300, reported_at=T0))
        s.commit()
        rows = {r["store_id"]: r for r in analytics.tiers_report(s, ADMIN, "2026-11")}
    assert (rows[GULOU]["new_users"], rows[GULOU]["tier"]) == (7, "low")
    assert (rows[TAIJIANG]["new_users"], rows[TAIJIANG]["tier"]) == (21, "high")
    assert rows[TAIJIANG]["regional_mean_cents"] == 200
    assert analytics.tier_of(20, 200, 200.0) == "medium"
    assert analytics.tier_of(19, 10**9, 1.0) == "low"
    assert analytics.tier_of(25, None, None) == "medium"


def test_exports_csv_png_svg(world: Engine) -> None:
    """CSV has a header and one line per row; charts are real PNG / SVG documents."""
    with Session(world) as s:
        rows = analytics.visits_report(s, ADMIN, DAY, GULOU)
    text = analytics_charts.to_csv(rows)
    assert text.splitlines()[0] == "store_id,day,hour,visits,unique_visitors"
    assert text.splitlines()[1] == f"{GULOU},2026-11-30,11,6,6" and len(text.splitlines()) == 4
    png = analytics_charts.bar_chart(rows, ["hour"], "visits", "Visits", "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    svg = analytics_charts.bar_chart(rows, ["hour"], "visits", "Visits", "svg")
    assert b"<svg" in svg
    with pytest.raises(ValueError):
        analytics_charts.bar_chart(rows, ["hour"], "visits", "Visits", "gif")


def test_reports_over_http_in_every_format(
    client: TestClient, world: Engine, clock: ManualClock
) -> None:
    """JSON, CSV, PNG and SVG through the API; Xiamen ops get only Xiamen rows; bad input."""
    admin = auth(api_key(world, clock, Role.ADMIN))
    ops_xm = auth(api_key(world, clock, Role.REGIONAL_OPS, region_id="xm"))
    query = "start=2026-11-30&end=2026-11-30"
    rows = client.get(f"/v1/analytics/visits?{query}&store_id={GULOU}", headers=admin).json()
    assert [r["visits"] for r in rows] == [6, 1, 1]
    csv_resp = client.get(f"/v1/analytics/conversion?{query}&format=csv", headers=admin)
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert csv_resp.text.splitlines()[0] == "store_id,checked_in,redeemed,conversion"
    png = client.get(f"/v1/analytics/visits?{query}&format=png", headers=admin)
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    svg = client.get(f"/v1/analytics/paths?{query}&format=svg", headers=admin)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    assert "door \u2192 phones" in svg.content.decode()  # the movement chart, not plain bars
    xm = client.get(f"/v1/analytics/visits?{query}", headers=ops_xm).json()
    assert {r["store_id"] for r in xm} == {SIMING}
    backwards = client.get("/v1/analytics/visits?start=2026-12-01&end=2026-11-30", headers=admin)
    assert backwards.status_code == 422
    assert client.get("/v1/analytics/tiers?month=2026-13", headers=admin).status_code == 422
    put = client.put(
        f"/v1/stores/{GULOU}/revenue",
        json={"month": "2026-11", "revenue_cents": 500},
        headers=admin,
    )
    assert put.status_code == 200
    tiers = client.get("/v1/analytics/tiers?month=2026-11", headers=admin).json()
    assert {r["store_id"]: r["revenue_cents"] for r in tiers}[GULOU] == 500
