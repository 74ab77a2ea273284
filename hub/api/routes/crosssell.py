"""Cross-sell endpoint: main and secondary push offers for a customer at a store (agent, kiosk)."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.deps import SessionDep, StoreReaders
from hub.models.oao import CrossSellPublic
from hub.services.auth import scoped_store
from hub.services.oao import crosssell

router = APIRouter(prefix="/v1", tags=["oao"])


@router.get(
    "/stores/{store_id}/customers/{customer_id}/cross-sell",
    response_model=CrossSellPublic,
    responses={404: {"description": "Unknown customer, or a store outside the caller's scope"}},
)
def cross_sell(
    session: SessionDep, principal: StoreReaders, store_id: str, customer_id: str
) -> CrossSellPublic:
    """Ranked offers for the customer in front of this store's agent or kiosk, with reasons."""
    scoped_store(session, principal, store_id)
    return crosssell.for_customer(session, customer_id)
