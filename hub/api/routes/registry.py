"""Regions, stores and zones."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, status

from hub.api.deps import (
    AdminOnly,
    AnyStaff,
    FleetManagers,
    Operators,
    PageOffset,
    SessionDep,
    StoreStaff,
)
from hub.api.transactional import TransactionalRoute
from hub.models.registry import (
    Region,
    RegionCreate,
    RegionPublic,
    Store,
    StoreCreate,
    StorePublic,
    StoreUpdate,
    Zone,
    ZoneCreate,
    ZonePublic,
)
from hub.services import registry
from hub.services.auth import scoped_store

router = APIRouter(prefix="/v1", tags=["registry"], route_class=TransactionalRoute)
_404 = {404: {"description": "Not found, or outside the caller's scope"}}


@router.get("/regions", response_model=list[RegionPublic])
def list_regions(session: SessionDep, principal: FleetManagers) -> Sequence[Region]:
    """Regions in the caller's scope."""
    return registry.list_regions(session, principal)


@router.post("/regions", response_model=RegionPublic, status_code=status.HTTP_201_CREATED)
def create_region(session: SessionDep, _: AdminOnly, body: RegionCreate) -> Region:
    """Create a region."""
    return registry.create_region(session, body)


@router.get("/regions/{region_id}", response_model=RegionPublic, responses=_404)
def get_region(session: SessionDep, principal: FleetManagers, region_id: str) -> Region:
    """One region."""
    return registry.get_region(session, principal, region_id)


@router.get("/stores", response_model=list[StorePublic])
def list_stores(
    session: SessionDep,
    principal: AnyStaff,
    region_id: str | None = None,
    offset: PageOffset = 0,
) -> Sequence[Store]:
    """Stores in the caller's scope."""
    return registry.list_stores(session, principal, region_id, offset)


@router.post("/stores", response_model=StorePublic, status_code=status.HTTP_201_CREATED)
def create_store(session: SessionDep, principal: Operators, body: StoreCreate) -> Store:
    """Create a store in a region the caller manages."""
    return registry.create_store(session, principal, body)


@router.get("/stores/{store_id}", response_model=StorePublic, responses=_404)
def get_store(session: SessionDep, principal: AnyStaff, store_id: str) -> Store:
    """One store."""
    return scoped_store(session, principal, store_id)


@router.patch("/stores/{store_id}", response_model=StorePublic, responses=_404)
def update_store(
    session: SessionDep, principal: StoreStaff, store_id: str, body: StoreUpdate
) -> Store:
    """Change a store's profile: name, address, position, hours, capacity, tier."""
    return registry.update_store(session, principal, store_id, body)


@router.get("/stores/{store_id}/zones", response_model=list[ZonePublic], responses=_404)
def list_zones(session: SessionDep, principal: AnyStaff, store_id: str) -> Sequence[Zone]:
    """The zones of a store."""
    return registry.list_zones(session, principal, store_id)


@router.post(
    "/stores/{store_id}/zones",
    response_model=ZonePublic,
    status_code=status.HTTP_201_CREATED,
    responses=_404,
)
def create_zone(
    session: SessionDep, principal: FleetManagers, store_id: str, body: ZoneCreate
) -> Zone:
    """Add a zone to a store."""
    return registry.create_zone(session, principal, store_id, body)
