"""Registry rules: regions, stores, zones, nodes, beacons and alerts, always within scope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from hub.models.auth import Role
from hub.models.registry import (
    Alert,
    Beacon,
    Node,
    Region,
    RegionCreate,
    Store,
    StoreCreate,
    StoreUpdate,
    Zone,
    ZoneCreate,
)
from hub.services.auth import REGION_ROLES, STORE_ROLES, Principal, scoped_store
from hub.services.errors import Conflict, Forbidden, Invalid, NotFound

# Listing endpoints return at most this many rows per page (keeps responses bounded).
MAX_PAGE = 500


def _store_filter(principal: Principal) -> Sequence[object]:
    """SQL conditions on Store limiting rows to the caller's scope."""
    if principal.role is Role.ADMIN:
        return ()
    if principal.role in REGION_ROLES:
        return (Store.region_id == principal.region_id,)
    if principal.role in STORE_ROLES:
        return (Store.id == principal.store_id,)
    return (col(Store.id).is_(None),)  # nothing


def list_regions(session: Session, principal: Principal) -> Sequence[Region]:
    """Regions the caller may see."""
    query = select(Region).order_by(Region.id)
    if principal.role is not Role.ADMIN:
        query = query.where(Region.id == principal.region_id)
    return session.exec(query).all()


def get_region(session: Session, principal: Principal, region_id: str) -> Region:
    """One region in scope."""
    region = session.get(Region, region_id)
    if region is None or not principal.sees_region(region_id):
        raise NotFound(f"region {region_id!r} not found")
    return region


def create_region(session: Session, spec: RegionCreate) -> Region:
    """A new region (admin)."""
    if session.get(Region, spec.id) is not None:
        raise Conflict(f"region {spec.id!r} already exists")
    region = Region.model_validate(spec)
    session.add(region)
    return region


def list_stores(
    session: Session, principal: Principal, region_id: str | None = None, offset: int = 0
) -> Sequence[Store]:
    """Stores the caller may see, optionally of one region."""
    query = select(Store).where(*_store_filter(principal)).order_by(Store.id)
    if region_id is not None:
        query = query.where(Store.region_id == region_id)
    return session.exec(query.offset(offset).limit(MAX_PAGE)).all()


def create_store(session: Session, principal: Principal, spec: StoreCreate) -> Store:
    """A new store in a region the caller may manage."""
    if session.get(Region, spec.region_id) is None or not principal.sees_region(spec.region_id):
        raise NotFound(f"region {spec.region_id!r} not found")
    if session.get(Store, spec.id) is not None:
        raise Conflict(f"store {spec.id!r} already exists")
    store = Store.model_validate(spec)
    session.add(store)
    return store


def update_store(session: Session, principal: Principal, store_id: str, spec: StoreUpdate) -> Store:
    """Change a store's profile (name, hours, ...); its region never changes here."""
    store = scoped_store(session, principal, store_id)
    for name, value in spec.model_dump(exclude_unset=True).items():
        if value is None:
            raise Invalid(f"{name} cannot be null")
        setattr(store, name, value)
    session.add(store)
    return store


def list_zones(session: Session, principal: Principal, store_id: str) -> Sequence[Zone]:
    """The zones of a store in scope."""
    scoped_store(session, principal, store_id)
    return session.exec(select(Zone).where(Zone.store_id == store_id).order_by(Zone.id)).all()


def create_zone(session: Session, principal: Principal, store_id: str, spec: ZoneCreate) -> Zone:
    """A new zone in a store in scope."""
    scoped_store(session, principal, store_id)
    if session.get(Zone, spec.id) is not None:
        raise Conflict(f"zone {spec.id!r} already exists")
    zone = Zone(id=spec.id, name=spec.name, store_id=store_id)
    session.add(zone)
    return zone


def _list_in_scope(
    session: Session, principal: Principal, model: type[Node] | type[Beacon],
    order: Any, store_id: str | None,
) -> Sequence[Any]:
    """Rows of ``model`` (which carries ``store_id``) in the caller's stores, optionally one."""
    query = select(model).join(Store, col(model.store_id) == col(Store.id))
    query = query.where(*_store_filter(principal)).order_by(order)
    if store_id is not None:
        query = query.where(model.store_id == store_id)
    return session.exec(query.limit(MAX_PAGE)).all()


def _scoped(
    session: Session, principal: Principal, model: type[Node] | type[Beacon], key: Any,
    label: str,
) -> Any:
    """The ``model`` row ``key`` if its store is in the caller's scope, else NotFound."""
    row = session.get(model, key)
    store = session.get(Store, row.store_id) if row is not None else None
    if store is None or not principal.sees_store(store):
        raise NotFound(f"{label} not found")
    return row


def list_nodes(session: Session, principal: Principal, store_id: str | None) -> Sequence[Node]:
    """Nodes of the stores in scope (optionally one store)."""
    return _list_in_scope(session, principal, Node, Node.id, store_id)


def scoped_node(session: Session, principal: Principal, node_id: str) -> Node:
    """A node whose store is in scope, else NotFound."""
    return _scoped(session, principal, Node, node_id, f"node {node_id!r}")  # type: ignore[no-any-return]


def check_store_in_scope(session: Session, principal: Principal, store_id: str) -> None:
    """Refuse (NotFound) a target store outside the caller's scope."""
    scoped_store(session, principal, store_id)


def list_beacons(session: Session, principal: Principal, store_id: str | None) -> Sequence[Beacon]:
    """Beacons of the stores in scope."""
    return _list_in_scope(session, principal, Beacon, Beacon.short_id, store_id)


def scoped_beacon(session: Session, principal: Principal, short_id: int) -> Beacon:
    """A beacon whose store is in scope, else NotFound."""
    return _scoped(session, principal, Beacon, short_id, f"beacon {short_id}")  # type: ignore[no-any-return]


def list_alerts(session: Session, principal: Principal, open_only: bool) -> Sequence[Alert]:
    """Alerts about stores in scope; alerts about unknown nodes are for admins only."""
    query = select(Alert).order_by(col(Alert.id).desc())
    if open_only:
        query = query.where(col(Alert.resolved_at).is_(None))
    if principal.role is not Role.ADMIN:
        query = query.join(Store, col(Alert.store_id) == col(Store.id)).where(
            *_store_filter(principal)
        )
    return session.exec(query.limit(MAX_PAGE)).all()


def scoped_alert(session: Session, principal: Principal, alert_id: int) -> Alert:
    """An alert the caller may see."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    if principal.role is not Role.ADMIN:
        store = session.get(Store, alert.store_id) if alert.store_id else None
        if store is None or not principal.sees_store(store):
            raise NotFound(f"alert {alert_id} not found")
    return alert


def refuse_unless(condition: bool, message: str) -> None:
    """Raise Forbidden unless ``condition``."""
    if not condition:
        raise Forbidden(message)
