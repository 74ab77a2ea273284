"""Region dispatch policies and store OAO profiles (skills, order capacity, paired installer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, type_coerce
from sqlmodel import Session, col, func, select

from hub.models.auth import ApiKey, Role
from hub.models.oao import (
    OaoOrder,
    OaoRegionPolicy,
    OaoStoreProfile,
    PolicyUpdate,
    Product,
    StoreProfileUpdate,
)
from hub.models.registry import Region, Store
from hub.services.auth import Principal, scoped_store
from hub.services.errors import Invalid, NotFound
from hub.services.fraud import is_open_at, opening_spans
from hub.services.oao.dispatch import PolicyView, StoreSet, StoreState
from hub.services.oao.states import OPEN_AT_STORE

# A store nobody configured for OAO sells SIMs, devices and plan changes over the counter;
# installing broadband needs a crew, so a store does it only once its profile says so.
DEFAULT_SKILLS = frozenset(
    {Product.SIM_CARD.value, Product.DEVICE.value, Product.PLAN_CHANGE.value}
)
# Open orders an unconfigured store may hold: a small counter team's half day.
DEFAULT_ORDER_CAPACITY = 20


def get_policy(session: Session, region_id: str) -> OaoRegionPolicy:
    """The region's policy row, or the defaults (not stored) when it has none."""
    return session.get(OaoRegionPolicy, region_id) or OaoRegionPolicy(region_id=region_id)


def policy_view(policy: OaoRegionPolicy) -> PolicyView:
    """The dispatch half of a policy."""
    return PolicyView(
        mode=policy.mode,
        channel_rules=dict(policy.channel_rules or {}),
        max_distance_km=policy.max_distance_km,
    )


def put_policy(
    session: Session, principal: Principal, region_id: str, spec: PolicyUpdate
) -> OaoRegionPolicy:
    """Replace a region's policy; channel rules may only name stores of that region."""
    if session.get(Region, region_id) is None or not principal.sees_region(region_id):
        raise NotFound(f"region {region_id!r} not found")
    for channel, store_ids in spec.channel_rules.items():
        if not store_ids:
            raise Invalid(f"channel rule for {channel.value} lists no store")
        for store_id in store_ids:
            store = session.get(Store, store_id)
            if store is None or store.region_id != region_id:
                raise Invalid(
                    f"channel rule for {channel.value}: {store_id!r} is not a store "
                    f"of region {region_id}"
                )
    policy = session.get(OaoRegionPolicy, region_id) or OaoRegionPolicy(region_id=region_id)
    policy.mode = spec.mode.value
    policy.channel_rules = {str(c): list(s) for c, s in spec.channel_rules.items()}
    policy.accept_minutes = {
        **policy.accept_minutes,
        **{str(p): m for p, m in spec.accept_minutes.items()},
    }
    policy.grace_minutes = {
        **policy.grace_minutes,
        **{str(p): m for p, m in spec.grace_minutes.items()},
    }
    policy.hop_limit = spec.hop_limit
    policy.max_distance_km = spec.max_distance_km
    session.add(policy)
    return policy


def get_profile(session: Session, store_id: str) -> OaoStoreProfile:
    """The store's OAO profile, or the defaults (not stored)."""
    return session.get(OaoStoreProfile, store_id) or OaoStoreProfile(
        store_id=store_id, skills=sorted(DEFAULT_SKILLS), order_capacity=DEFAULT_ORDER_CAPACITY
    )


def put_profile(
    session: Session, principal: Principal, store_id: str, spec: StoreProfileUpdate
) -> OaoStoreProfile:
    """Set a store's skills, order capacity and paired installer (an installer of its region)."""
    store = scoped_store(session, principal, store_id)
    if spec.installer_key_id is not None:
        key = session.get(ApiKey, spec.installer_key_id)
        if (
            key is None
            or key.role != Role.INSTALLER.value
            or key.revoked_at is not None
            or key.region_id != store.region_id
        ):
            raise Invalid(
                f"{spec.installer_key_id!r} is not an active installer key of "
                f"region {store.region_id}"
            )
    profile = session.get(OaoStoreProfile, store_id) or OaoStoreProfile(store_id=store_id)
    profile.skills = sorted({p.value for p in spec.skills})
    profile.order_capacity = spec.order_capacity
    profile.installer_key_id = spec.installer_key_id
    session.add(profile)
    return profile


def store_loads(session: Session, region_id: str) -> dict[str, int]:
    """Open orders (offered, accepted, in progress) per store of a region."""
    rows = session.exec(
        select(OaoOrder.store_id, func.count())
        .where(OaoOrder.region_id == region_id, col(OaoOrder.status).in_(OPEN_AT_STORE))
        .group_by(OaoOrder.store_id)
    ).all()
    return {store_id: count for store_id, count in rows if store_id is not None}


def build_store_set(session: Session, region_id: str, now: datetime) -> StoreSet:
    """The region's stores as dispatch sees them now: load, capacity; hours and skills lazily.

    Plain column rows (no ORM objects), and the JSON of opening hours and skills is
    decoded only for the stores a decision looks at: this runs once per order over
    every store of the region, and decoding all of it was most of the cost.
    """
    rows = session.execute(
        select(
            Store.id,
            Store.latitude,
            Store.longitude,
            Store.timezone,
            type_coerce(Store.opening_hours, String),
            type_coerce(OaoStoreProfile.skills, String),
            OaoStoreProfile.order_capacity,
        )
        .outerjoin(OaoStoreProfile, col(OaoStoreProfile.store_id) == col(Store.id))
        .where(Store.region_id == region_id)
        .order_by(Store.id)
    ).all()
    loads = store_loads(session, region_id)
    return StoreSet(
        [
            _LazyStore(
                store_id,
                lat,
                lon,
                None,
                DEFAULT_SKILLS if raw_skills is None else None,
                capacity if capacity is not None else DEFAULT_ORDER_CAPACITY,
                loads.get(store_id, 0),
                raw_hours=raw_hours,
                raw_skills=raw_skills,
                timezone=tz,
                now=now,
            )
            for store_id, lat, lon, tz, raw_hours, raw_skills, capacity in rows
        ]
    )


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    """A time zone by name (looked up once)."""
    return ZoneInfo(name)


def _json(raw: Any) -> Any:
    """A JSON column's value: SQLite hands back text, psycopg may hand back the object."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw


@dataclass
class _LazyStore(StoreState):
    """A store whose hours and skills stay undecoded JSON until a decision looks at it."""

    raw_hours: Any = None
    raw_skills: Any = None
    timezone: str = ""
    now: datetime | None = None

    def open_now(self) -> bool:
        """The registry's opening-hours rule (hub.services.fraud), evaluated on first ask."""
        if self.is_open is None:
            hours = _json(self.raw_hours) or {}
            self.is_open = self.now is None or is_open_at(
                opening_spans(hours), _zone(self.timezone), self.now
            )
        return self.is_open

    def skill_set(self) -> frozenset[str]:
        """The profile's skills, decoded on first ask."""
        if self.skills is None:
            self.skills = frozenset(_json(self.raw_skills) or ())
        return self.skills
