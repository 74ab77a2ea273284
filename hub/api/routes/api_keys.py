"""API keys: create (shown once), list, revoke. Admin only."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Response, status
from sqlmodel import select

from hub.api.deps import AdminOnly, ContextDep, SessionDep
from hub.api.transactional import TransactionalRoute
from hub.models.auth import ApiKey, ApiKeyCreate, ApiKeyIssued, ApiKeyPublic
from hub.services.auth import create_api_key, revoke_api_key

router = APIRouter(prefix="/v1/api-keys", tags=["auth"], route_class=TransactionalRoute)


@router.get("", response_model=list[ApiKeyPublic])
def list_keys(session: SessionDep, _: AdminOnly) -> Sequence[ApiKey]:
    """Every API key (never the key itself)."""
    return session.exec(select(ApiKey).order_by(ApiKey.created_at)).all()


@router.post("", response_model=ApiKeyIssued, status_code=status.HTTP_201_CREATED)
def create_key(
    ctx: ContextDep, session: SessionDep, _: AdminOnly, body: ApiKeyCreate
) -> ApiKeyIssued:
    """Create a key for a role and scope; the key is in this response only."""
    row, key = create_api_key(session, ctx.crypto, ctx.clock, body)
    return ApiKeyIssued(api_key=ApiKeyPublic.model_validate(row, from_attributes=True), key=key)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such key"}},
)
def revoke_key(ctx: ContextDep, session: SessionDep, _: AdminOnly, key_id: str) -> Response:
    """Revoke a key; it stops working immediately."""
    revoke_api_key(session, ctx.clock, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
