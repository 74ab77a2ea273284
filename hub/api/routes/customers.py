"""Staff-side customer endpoints: profiles and tags (admin), presence and visits per store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter, Response, status
from sqlmodel import col, select

from hub.api.deps import AdminOnly, ContextDep, PresenceReaders, SessionDep, StoreStaff
from hub.api.transactional import TransactionalRoute
from hub.models.checkins import Presence, PresencePublic, Visit, VisitPublic
from hub.models.customers import CustomerPublic, TagCreate, TagKind
from hub.services import checkins, customers
from hub.services.auth import scoped_store

router = APIRouter(prefix="/v1", tags=["customers"], route_class=TransactionalRoute)
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
# A token heard longer ago than this no longer means the customer is at the counter.
PRESENCE_WINDOW = timedelta(minutes=10)
STORE_VISITS_LIMIT = 200


@router.get("/customers/{customer_id}", response_model=CustomerPublic, responses=_404)
def get_customer(session: SessionDep, _: AdminOnly, customer_id: str) -> CustomerPublic:
    """A customer's profile, consents and tags (never the phone number)."""
    return customers.to_public(session, customers.get_customer(session, customer_id))


@router.put("/customers/{customer_id}/tags", response_model=CustomerPublic, responses=_404)
def set_tag(
    ctx: ContextDep, session: SessionDep, _: AdminOnly, customer_id: str, body: TagCreate
) -> CustomerPublic:
    """Set a basic / application / profile tag on a customer."""
    customer = customers.get_customer(session, customer_id)
    customers.add_tag(session, customer, body, ctx.clock.now())
    session.flush()
    return customers.to_public(session, customer)


@router.delete(
    "/customers/{customer_id}/tags/{kind}/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_404,
)
def remove_tag(
    session: SessionDep, _: AdminOnly, customer_id: str, kind: TagKind, name: str
) -> Response:
    """Remove a tag."""
    customers.remove_tag(session, customers.get_customer(session, customer_id), kind.value, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/customers/{customer_id}", responses=_404)
def erase_customer(session: SessionDep, _: AdminOnly, customer_id: str) -> dict[str, int]:
    """Erase a customer's data on their request at a counter (same rule as DELETE /v1/me)."""
    customer = customers.get_customer(session, customer_id)
    return {"visits_kept_anonymous": customers.erase_customer(session, customer)}


@router.get("/stores/{store_id}/presence", response_model=list[PresencePublic], responses=_404)
def store_presence(
    ctx: ContextDep, session: SessionDep, principal: PresenceReaders, store_id: str
) -> Sequence[Presence]:
    """Customers whose phone token a node of this store heard in the last minutes (kiosk)."""
    scoped_store(session, principal, store_id)
    since = ctx.clock.now() - PRESENCE_WINDOW
    return session.exec(
        select(Presence)
        .where(Presence.store_id == store_id, Presence.seen_at > since)
        .order_by(col(Presence.seen_at).desc())
    ).all()


@router.get("/stores/{store_id}/visits", response_model=list[VisitPublic], responses=_404)
def store_visits(
    session: SessionDep, principal: StoreStaff, store_id: str
) -> Sequence[VisitPublic]:
    """Recent visits to a store with their zone paths (movement-path analysis input)."""
    scoped_store(session, principal, store_id)
    visits = session.exec(
        select(Visit)
        .where(Visit.store_id == store_id)
        .order_by(col(Visit.started_at).desc())
        .limit(STORE_VISITS_LIMIT)
    ).all()
    return [
        VisitPublic.model_validate(
            {**v.model_dump(), "zone_path": checkins.zone_path(session, v.id)}
        )
        for v in visits
    ]
