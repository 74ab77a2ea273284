"""The live-campaign index: rule snapshots grouped by store, cached until a campaign changes.

Building 200 ORM rows and testing every campaign's where/when on every check-in costs
more than the rest of the check-in; most campaigns target other stores. The index keeps
detached snapshots of the live campaigns (highest priority first) plus, per store, the
short list that may run there, and the coupon templates' validity (templates are never
edited). It is rebuilt when the set of live campaigns or any of their ``updated_at``
changes: every lifecycle change (launch, pause, end, the end timer) sets ``updated_at``,
so the check is one narrow query per evaluation and other hub processes see a change on
their next evaluation. Budgets are never cached: they are read under lock each time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from hub.models.campaigns import Campaign, CampaignState, RewardKind
from hub.models.coupons import CouponTemplate
from hub.models.registry import Store

# One narrow query decides whether the cached index is current: every live campaign's
# id and updated_at folded into one string by the database, so the check costs one row
# whatever the number of campaigns. Equal strings mean equal sets (the order of the
# fold only matters for hits, never for correctness).
_LIVE = CampaignState.LIVE.value
_VERSION_QUERIES = {
    "postgresql": text(
        "SELECT string_agg(id || '@' || updated_at::text, ',' ORDER BY id) "
        f"FROM campaign WHERE state = '{_LIVE}'"
    ),
    "sqlite": text(
        "SELECT group_concat(id || '@' || updated_at, ',') FROM "
        f"(SELECT id, updated_at FROM campaign WHERE state = '{_LIVE}' ORDER BY id)"
    ),
}


@dataclass(frozen=True, slots=True)
class CampaignSnapshot:
    """A live campaign's rules as plain data (an ORM object's attribute access costs
    microseconds each, and evaluation reads ~20 attributes of each candidate)."""

    id: str
    name: str
    region_id: str | None
    trigger: str
    trigger_param: int | None
    audience: dict[str, Any]
    where: dict[str, Any]
    when: dict[str, Any]
    reward_kind: str
    coupon_template_id: str | None
    points: int | None
    title: str
    cap_per_customer_day: int | None
    cap_per_customer_total: int | None
    budget_total: int | None
    priority: int
    exclusive: bool
    holdout_share: float

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignSnapshot:
        """The snapshot of a loaded campaign row."""
        return cls(**{name: getattr(campaign, name) for name in cls.__slots__})


@dataclass
class CampaignIndex:
    """Live campaigns of one database at one version; read-only once built."""

    version: str | None
    campaigns: list[CampaignSnapshot]  # highest priority first (ties by id)
    template_valid_days: dict[str, int]
    _by_store: dict[tuple[str, str], list[CampaignSnapshot]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_store(self, store: Store) -> list[CampaignSnapshot]:
        """The live campaigns that may run at ``store`` (its stores, regions, region)."""
        key = (store.id, store.region_id)
        found = self._by_store.get(key)
        if found is None:
            found = [c for c in self.campaigns if may_run_at(c, store)]
            with self._lock:
                self._by_store[key] = found
        return found


def may_run_at(campaign: CampaignSnapshot, store: Store) -> bool:
    """Whether the campaign's stores/regions/region include ``store`` (zones checked later)."""
    where = campaign.where or {}
    stores = where.get("stores")
    if stores and store.id not in stores:
        return False
    regions = where.get("regions")
    if regions and store.region_id not in regions:
        return False
    return not campaign.region_id or campaign.region_id == store.region_id


# Per database URL: the current index. Request threads share it.
_INDEXES: dict[str, CampaignIndex] = {}
_INDEXES_LOCK = threading.Lock()


def current(session: Session) -> CampaignIndex:
    """The index for the session's database, rebuilt if a live campaign changed."""
    bind = session.get_bind()
    version = session.connection().execute(_VERSION_QUERIES[bind.dialect.name]).scalar()
    key = str(bind.url)
    with _INDEXES_LOCK:
        cached = _INDEXES.get(key)
    if cached is not None and cached.version == version:
        return cached
    index = _build(session, version)
    with _INDEXES_LOCK:
        _INDEXES[key] = index
    return index


def _build(session: Session, version: str | None) -> CampaignIndex:
    """Snapshots of the live campaigns and the validity of their coupon templates."""
    rows = session.exec(
        select(Campaign)
        .where(Campaign.state == CampaignState.LIVE.value)
        .order_by(col(Campaign.priority).desc(), col(Campaign.id))
    ).all()
    campaigns = [CampaignSnapshot.of(row) for row in rows]
    template_ids = {
        c.coupon_template_id
        for c in campaigns
        if c.reward_kind == RewardKind.COUPON.value and c.coupon_template_id
    }
    valid_days: dict[str, int] = {}
    if template_ids:
        valid_days = dict(
            session.exec(
                select(CouponTemplate.id, CouponTemplate.valid_days).where(
                    col(CouponTemplate.id).in_(template_ids)
                )
            ).all()
        )
    return CampaignIndex(version=version, campaigns=campaigns, template_valid_days=valid_days)


def forget() -> None:
    """Drop every cached index (tests that rewrite campaigns behind the services' back)."""
    with _INDEXES_LOCK:
        _INDEXES.clear()
