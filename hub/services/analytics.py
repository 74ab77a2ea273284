"""Store analytics (Shoplat's back office): visits, attributes, paths, conversion, uplift, tiers.

Every report is scoped to the stores the caller may see (regional ops: their region),
counts days and hours in each store's own time zone, and never shows an attribute group
smaller than ``MIN_GROUP_SIZE`` (it is folded into "suppressed").
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from hub.models.analytics import StoreRevenue
from hub.models.campaigns import CampaignGrant, GrantOutcome
from hub.models.checkins import Visit, VisitZone
from hub.models.coupons import Coupon
from hub.models.customers import Customer
from hub.models.registry import Store
from hub.services.auth import Principal
from hub.services.campaigns.rules import store_local

# k-anonymity floor: a group of fewer visitors than this could single a person out.
MIN_GROUP_SIZE = 5
SUPPRESSED = "suppressed"
# Postal codes are grouped by their first digits (district level in China's 6-digit codes).
POSTAL_PREFIX_LEN = 3
# Two-sided 95% normal quantile for the uplift interval.
Z_95 = 1.959964
# A grant "worked" if the customer came back within this many days.
UPLIFT_WINDOW_DAYS = 14
# SEEDS.md 5: low tier is fewer than 20 new users a month.
TIER_NEW_USERS = 20
TOP_PATHS = 10
# Slack around the requested local days when selecting by UTC (time zones reach +-14 h).
_TZ_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Period:
    """Inclusive range of store-local days."""

    start: date
    end: date

    def contains(self, day: date) -> bool:
        """Whether ``day`` is inside the period."""
        return self.start <= day <= self.end

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """A UTC range surely covering the local days of any store."""
        lo = datetime.combine(self.start, datetime.min.time()).replace(tzinfo=UTC)
        hi = datetime.combine(self.end, datetime.min.time()).replace(tzinfo=UTC)
        return lo - _TZ_SLACK, hi + 2 * _TZ_SLACK


def scoped_stores(session: Session, principal: Principal, store_id: str | None) -> dict[str, Store]:
    """The stores the report covers: the caller's scope, optionally one store of it."""
    query = select(Store)
    if store_id:
        query = query.where(Store.id == store_id)
    return {s.id: s for s in session.exec(query).all() if principal.sees_store(s)}


def _visits(session: Session, stores: dict[str, Store], period: Period) -> list[Visit]:
    """Visits to ``stores`` whose local start day lies in ``period``."""
    if not stores:
        return []
    lo, hi = period.utc_bounds()
    rows = session.exec(
        select(Visit).where(
            col(Visit.store_id).in_(list(stores)), Visit.started_at >= lo, Visit.started_at < hi
        )
    ).all()
    return [
        v for v in rows if period.contains(store_local(stores[v.store_id], v.started_at).date())
    ]


def visits_report(
    session: Session, principal: Principal, period: Period, store_id: str | None = None
) -> list[dict[str, Any]]:
    """Visits and unique visitors per store, local day and local hour."""
    stores = scoped_stores(session, principal, store_id)
    visits: Counter[tuple[str, str, int]] = Counter()
    people: defaultdict[tuple[str, str, int], set[str]] = defaultdict(set)
    for v in _visits(session, stores, period):
        local = store_local(stores[v.store_id], v.started_at)
        key = (v.store_id, local.date().isoformat(), local.hour)
        visits[key] += 1
        people[key].add(v.customer_id or f"anon:{v.id}")
    return [
        {"store_id": s, "day": d, "hour": h, "visits": n, "unique_visitors": len(people[(s, d, h)])}
        for (s, d, h), n in sorted(visits.items())
    ]


def attributes_report(
    session: Session, principal: Principal, period: Period, store_id: str | None = None
) -> list[dict[str, Any]]:
    """Unique visitors by gender, age band and postal prefix; small groups suppressed."""
    stores = scoped_stores(session, principal, store_id)
    ids = {v.customer_id for v in _visits(session, stores, period) if v.customer_id}
    customers = session.exec(select(Customer).where(col(Customer.id).in_(ids))).all() if ids else []
    rows = []
    for attribute in ("gender", "age_band", "postal_prefix"):
        counts: Counter[str] = Counter()
        for c in customers:
            value = (
                (c.postal_code or "")[:POSTAL_PREFIX_LEN] or None
                if attribute == "postal_prefix"
                else getattr(c, attribute)
            )
            counts[value or "unknown"] += 1
        total = sum(counts.values())
        folded: Counter[str] = Counter()
        for value, n in counts.items():
            folded[value if n >= MIN_GROUP_SIZE else SUPPRESSED] += n
        for value, n in sorted(folded.items()):
            if value == SUPPRESSED and n < MIN_GROUP_SIZE:
                continue  # even the folded remainder is too small to show
            rows.append(
                {
                    "attribute": attribute,
                    "value": value,
                    "visitors": n,
                    "share": round(n / total, 4),
                }
            )
    return rows


def paths_report(
    session: Session, principal: Principal, period: Period, store_id: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Zone-to-zone transitions, the most common whole paths, and mean dwell per zone."""
    stores = scoped_stores(session, principal, store_id)
    visits = {v.id: v for v in _visits(session, stores, period)}
    steps: defaultdict[str, list[VisitZone]] = defaultdict(list)
    if visits:
        for step in session.exec(
            select(VisitZone)
            .where(col(VisitZone.visit_id).in_(list(visits)))
            .order_by(col(VisitZone.id))
        ):
            steps[step.visit_id].append(step)
    transitions: Counter[tuple[str, str]] = Counter()
    paths: Counter[str] = Counter()
    dwell: defaultdict[str, list[float]] = defaultdict(list)
    for vid, path in steps.items():
        names = [s.zone_id or "store" for s in path]
        paths[" > ".join(names)] += 1
        transitions.update(zip(names, names[1:], strict=False))
        ends = [s.entered_at for s in path[1:]] + [visits[vid].last_seen_at]
        for step, name, end in zip(path, names, ends, strict=True):
            dwell[name].append((end - step.entered_at).total_seconds() / 60)
    return {
        "transitions": [
            {"from": a, "to": b, "count": n} for (a, b), n in transitions.most_common()
        ],
        "top_paths": [{"path": p, "visits": n} for p, n in paths.most_common(TOP_PATHS)],
        "dwell": [
            {"zone": z, "mean_minutes": round(sum(d) / len(d), 2), "stays": len(d)}
            for z, d in sorted(dwell.items())
        ],
    }


def conversion_report(
    session: Session, principal: Principal, period: Period, store_id: str | None = None
) -> list[dict[str, Any]]:
    """Per store: checked-in customers, how many redeemed a coupon there in the period, rate."""
    stores = scoped_stores(session, principal, store_id)
    checked: defaultdict[str, set[str]] = defaultdict(set)
    for v in _visits(session, stores, period):
        if v.customer_id:
            checked[v.store_id].add(v.customer_id)
    lo, hi = period.utc_bounds()
    bought: defaultdict[str, set[str]] = defaultdict(set)
    for c in session.exec(
        select(Coupon).where(
            col(Coupon.redeemed_store_id).in_(list(stores) or [""]),
            col(Coupon.redeemed_at) >= lo,
            col(Coupon.redeemed_at) < hi,
        )
    ):
        store = stores[c.redeemed_store_id or ""]
        if (
            c.customer_id
            and c.redeemed_at
            and period.contains(store_local(store, c.redeemed_at).date())
        ):
            bought[store.id].add(c.customer_id)
    rows = []
    for sid in sorted(stores):
        n = len(checked[sid])
        k = len(bought[sid] & checked[sid])
        rows.append(
            {
                "store_id": sid,
                "checked_in": n,
                "redeemed": k,
                "conversion": round(k / n, 4) if n else 0.0,
            }
        )
    return rows


def uplift_report(
    session: Session, campaign_id: str, window_days: int = UPLIFT_WINDOW_DAYS
) -> dict[str, Any]:
    """Return-visit rate of granted vs holdout customers, the difference and its 95% CI."""
    grants = session.exec(
        select(CampaignGrant).where(
            CampaignGrant.campaign_id == campaign_id,
            col(CampaignGrant.outcome).in_(
                (GrantOutcome.GRANTED.value, GrantOutcome.HOLDOUT.value)
            ),
        )
    ).all()
    groups: dict[str, list[bool]] = {GrantOutcome.GRANTED.value: [], GrantOutcome.HOLDOUT.value: []}
    window = timedelta(days=window_days)
    for g in grants:
        if g.customer_id is None:
            continue
        came_back = session.exec(
            select(Visit.id).where(
                Visit.customer_id == g.customer_id,
                Visit.started_at > g.at,
                Visit.started_at <= g.at + window,
            )
        ).first()
        groups[g.outcome].append(came_back is not None)
    treated, control = groups[GrantOutcome.GRANTED.value], groups[GrantOutcome.HOLDOUT.value]
    return {
        "campaign_id": campaign_id,
        "window_days": window_days,
        **uplift_interval(sum(treated), len(treated), sum(control), len(control)),
    }


def uplift_interval(k1: int, n1: int, k0: int, n0: int) -> dict[str, Any]:
    """Difference of two proportions with a Wald 95% interval (None without both groups)."""
    p1 = k1 / n1 if n1 else None
    p0 = k0 / n0 if n0 else None
    out: dict[str, Any] = {
        "treated": n1,
        "treated_returned": k1,
        "control": n0,
        "control_returned": k0,
        "treated_rate": p1,
        "control_rate": p0,
        "uplift": None,
        "ci_low": None,
        "ci_high": None,
    }
    if p1 is None or p0 is None:
        return out
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    diff = p1 - p0
    out.update(
        uplift=round(diff, 4), ci_low=round(diff - Z_95 * se, 4), ci_high=round(diff + Z_95 * se, 4)
    )
    return out


def tiers_report(session: Session, principal: Principal, month: str) -> list[dict[str, Any]]:
    """SEEDS.md 5 tiers per store: new users this month and revenue vs the regional mean."""
    stores = scoped_stores(session, principal, None)
    year, mon = (int(p) for p in month.split("-"))
    period = Period(
        date(year, mon, 1), (date(year + mon // 12, mon % 12 + 1, 1) - timedelta(days=1))
    )
    first_visit: dict[tuple[str, str], datetime] = {}
    for v in session.exec(select(Visit).where(col(Visit.store_id).in_(list(stores) or [""]))):
        if v.customer_id:
            key = (v.store_id, v.customer_id)
            if key not in first_visit or v.started_at < first_visit[key]:
                first_visit[key] = v.started_at
    new_users: Counter[str] = Counter(
        sid
        for (sid, _), at in first_visit.items()
        if period.contains(store_local(stores[sid], at).date())
    )
    # The mean is over every store of the region that reported (not only the caller's view).
    revenue = {
        r.store_id: r.revenue_cents
        for r in session.exec(select(StoreRevenue).where(StoreRevenue.month == month))
    }
    by_region: defaultdict[str, list[int]] = defaultdict(list)
    for store in session.exec(select(Store)):
        if store.id in revenue:
            by_region[store.region_id].append(revenue[store.id])
    rows = []
    for sid, store in sorted(stores.items()):
        values = by_region.get(store.region_id) or []
        mean = sum(values) / len(values) if values else None
        rows.append(
            {
                "store_id": sid,
                "region_id": store.region_id,
                "month": month,
                "new_users": new_users[sid],
                "revenue_cents": revenue.get(sid),
                "regional_mean_cents": round(mean) if mean is not None else None,
                "tier": tier_of(new_users[sid], revenue.get(sid), mean),
            }
        )
    return rows


def tier_of(new_users: int, revenue: int | None, regional_mean: float | None) -> str:
    """low: < 20 new users; medium: >= 20 and revenue <= the mean (or unknown); high: above."""
    if new_users < TIER_NEW_USERS:
        return "low"
    if revenue is None or regional_mean is None or revenue <= regional_mean:
        return "medium"
    return "high"


def report_revenue(
    session: Session, store: Store, month: str, cents: int, now: datetime
) -> StoreRevenue:
    """Record (or correct) a store's revenue for a month."""
    row = session.get(StoreRevenue, (store.id, month))
    if row is None:
        row = StoreRevenue(store_id=store.id, month=month, revenue_cents=cents, reported_at=now)
    row.revenue_cents, row.reported_at = cents, now
    session.add(row)
    return row


def flat(rows: Sequence[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
    """Any report as a flat list of rows (a dict of tables gets a ``table`` column)."""
    if isinstance(rows, dict):
        return [{"table": name, **row} for name, table in rows.items() for row in table]
    return list(rows)
