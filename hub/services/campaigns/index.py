"""The live-campaign index: rule snapshots grouped by store, cached until a campaign changes.

Building 200 ORM rows and testing every campaign's where/when on every check-in costs
more than the rest of the check-in; most campaigns target other stores. The index keeps
detached snapshots of the live campaigns (highest priority first) plus, per store, the
short list that may run there, and the coupon templates' validity (templates are never
edited). It is rebuilt when any campaign row is inserted, deleted or has its state or
``updated_at`` written (every lifecycle change - launch, pause, end, the end timer - sets
``updated_at``): database triggers then give the one-row ``campaign_index_version`` a
fresh random version, so the check reads one row by key on each evaluation (a check-in
folds it into its one read of the customer's state: ``version_column``) and other hub
processes see a change on their next evaluation. Budgets are never cached: they are read
under lock each time.

What the rules read of a store (its region and time zone) is cached too, per database,
like the check-in's registry cache: dropped at once when this process writes a store,
and at most ``registry_cache.REGISTRY_CACHE_TTL`` old for another process's change.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, literal_column, text
from sqlalchemy import select as core_select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from hub.db import read_only
from hub.models.campaigns import Campaign, CampaignState, RewardKind
from hub.models.coupons import Coupon, CouponState, CouponTemplate
from hub.models.registry import Store
from hub.services.registry_cache import REGISTRY_CACHE_TTL, drop_with_orm_writes

# One read by key decides whether the cached index is current: database triggers give
# ``campaign_index_version`` a fresh random version whenever a campaign row is inserted,
# deleted, or has its state or updated_at written (migration campaigns_0002).
_VERSION_SQL = "SELECT version FROM campaign_index_version WHERE id = 1"
_VERSION_QUERY = text(_VERSION_SQL)


def version_expression() -> Any:
    """The version as a scalar expression (a sub-select), for use inside other statements."""
    return literal_column(f"({_VERSION_SQL})")


def version_column() -> Any:
    """The version as a column, for a statement that reads other things in the same trip."""
    return version_expression().label("campaigns_version")


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What the rules read of a store."""

    id: str
    region_id: str
    timezone: str


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

    version: int | None
    campaigns: list[CampaignSnapshot]  # highest priority first (ties by id)
    template_valid_days: dict[str, int]
    # The coupon templates that had pool codes left when this index was built (importing
    # pool codes changes the version: migration campaigns_0004): the others' grants get
    # new codes without a look at the pool.
    pooled_templates: frozenset[str] = frozenset()
    _by_store: dict[tuple[str, str], list[CampaignSnapshot]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_store(self, store: Store | StoreFacts) -> list[CampaignSnapshot]:
        """The live campaigns that may run at ``store`` (its stores, regions, region)."""
        key = (store.id, store.region_id)
        found = self._by_store.get(key)
        if found is None:
            found = [c for c in self.campaigns if may_run_at(c, store)]
            with self._lock:
                self._by_store[key] = found
        return found


def may_run_at(campaign: CampaignSnapshot, store: Store | StoreFacts) -> bool:
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
# Per engine: its database's key in the per-database caches (the index, the campaign
# settings), ``str(engine.url)`` rendered once: rendering it costs 1-2 us, and every
# check-in asks two or three times.
_DATABASE_KEYS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def database_key(bind: Any) -> str:
    """The key of ``bind``'s (an Engine's) database in this process's per-database caches:
    its URL as ``str`` gives it (password hidden)."""
    key = _DATABASE_KEYS.get(bind)
    if key is None:
        key = _DATABASE_KEYS[bind] = str(bind.url)
    return key


def cached(session: Session) -> CampaignIndex | None:
    """The index last built for the session's database, unchecked (the caller checks its
    ``version`` against ``version_column`` read in its own statement)."""
    return _INDEXES.get(database_key(session.get_bind()))


def cached_for_tests(engine: Engine) -> CampaignIndex | None:
    """The index cached for ``engine``'s database, if any (tests)."""
    return _INDEXES.get(database_key(engine))


def current(session: Session, version: int | None = None, known: bool = False) -> CampaignIndex:
    """The index for the session's database, rebuilt if a live campaign changed.

    ``known``: ``version`` was just read in this transaction (no second query).
    """
    if not known:
        version = session.connection().execute(_VERSION_QUERY).scalar()
    key = database_key(session.get_bind())
    with _INDEXES_LOCK:
        cached = _INDEXES.get(key)
    if cached is not None and cached.version == version:
        return cached
    index = _build(session, version)
    with _INDEXES_LOCK:
        _INDEXES[key] = index
    return index


def build_at_start(engine: Engine) -> CampaignIndex:
    """Build the index of ``engine``'s database now (the hub, as it starts), not inside the
    first check-in with every other request queued behind it (200 live campaigns: ~14 ms
    CPU). A reader's transaction: on SQLite no write lock is taken."""
    with Session(engine) as session:
        read_only(session)
        return current(session)


def _build(session: Session, version: int | None) -> CampaignIndex:
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
    pooled: frozenset[str] = frozenset()
    if template_ids:
        valid_days = dict(
            session.exec(
                select(CouponTemplate.id, CouponTemplate.valid_days).where(
                    col(CouponTemplate.id).in_(template_ids)
                )
            ).all()
        )
        pooled = frozenset(
            session.exec(
                select(Coupon.template_id)
                .where(
                    col(Coupon.template_id).in_(template_ids),
                    Coupon.state == CouponState.POOL.value,
                )
                .distinct()
            ).all()
        )
    return CampaignIndex(
        version=version,
        campaigns=campaigns,
        template_valid_days=valid_days,
        pooled_templates=pooled,
    )


_COUPON = Coupon.__table__  # type: ignore[attr-defined]
_POOL_LEFT = (
    core_select(_COUPON.c.template_id)
    .where(
        _COUPON.c.template_id.in_(bindparam("templates", expanding=True)),
        _COUPON.c.state == CouponState.POOL.value,
    )
    .distinct()
)
_BUMP = {
    "sqlite": text("UPDATE campaign_index_version SET version = random() WHERE id = 1"),
    "postgresql": text(
        "UPDATE campaign_index_version "
        "SET version = floor(random() * 9007199254740991)::bigint WHERE id = 1"
    ),
}


def pools_ran_dry(session: Session, template_ids: Sequence[str]) -> None:
    """Templates the index counts as pooled had no pool code to take: if one of them has
    none left at all, give the index a new version (when this transaction commits), so every hub
    process rebuilds it and stops looking at those pools. Codes that other transactions
    hold locked (PostgreSQL's ``SKIP LOCKED`` passed them by; they may roll back) still
    read as pool codes here: no new version for them, the next grant looks again. Nothing
    is lost if this transaction rolls back: the index then keeps looking, as it did."""
    conn = session.connection()
    left = set(conn.execute(_POOL_LEFT, {"templates": list(template_ids)}).scalars())
    if not left.issuperset(template_ids):
        conn.execute(_BUMP[session.get_bind().dialect.name])


def forget() -> None:
    """Drop every cached index (tests that rewrite campaigns behind the services' back)."""
    with _INDEXES_LOCK:
        _INDEXES.clear()
    _forget_stores()


_STORE = Store.__table__  # type: ignore[attr-defined]
_STORE_FACTS = core_select(_STORE.c.region_id, _STORE.c.timezone).where(
    _STORE.c.id == bindparam("store_id")
)
# Session.info flag: this transaction wrote a store (drop the cache again on commit).
_STORES_DIRTY = "campaigns_stores_dirty"


class _StoreCache:
    """Stores' rule facts of one database: entries by id with the hub time they were read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[datetime, StoreFacts | None]] = {}
        self.generation = 0


_store_caches: weakref.WeakKeyDictionary[Engine, _StoreCache] = weakref.WeakKeyDictionary()
_store_caches_lock = threading.Lock()


def store_facts(session: Session, store_id: str, now: datetime) -> StoreFacts | None:
    """Store ``store_id``'s region and time zone (None if unknown), cached while fresh."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    cache = _store_caches.get(engine)
    if cache is None:
        with _store_caches_lock:
            cache = _store_caches.setdefault(engine, _StoreCache())
    hit = cache.entries.get(store_id)
    if hit is not None and _fresh(hit[0], now):
        return hit[1]
    generation = cache.generation
    row = session.connection().execute(_STORE_FACTS, {"store_id": store_id}).first()
    found = StoreFacts(store_id, row.region_id, row.timezone) if row is not None else None
    with cache.lock:
        if generation == cache.generation:
            cache.entries[store_id] = (now, found)
    return found


def _fresh(cached_at: datetime, now: datetime) -> bool:
    """Whether an entry read at ``cached_at`` may serve ``now`` (a clock set back: no)."""
    return cached_at <= now < cached_at + REGISTRY_CACHE_TTL


def _forget_stores() -> None:
    """Drop every database's cached store facts."""
    with _store_caches_lock:
        caches = list(_store_caches.values())
    for cache in caches:
        with cache.lock:
            cache.entries.clear()
            cache.generation += 1


def _writes_a_store(session: OrmSession) -> bool:
    """Whether this flush writes a store (its region or time zone may change)."""
    return any(isinstance(o, Store) for o in (*session.new, *session.dirty, *session.deleted))


drop_with_orm_writes(_STORES_DIRTY, _writes_a_store, _forget_stores)
