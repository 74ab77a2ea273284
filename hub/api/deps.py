"""FastAPI dependencies: the hub context, a DB session per request, and the caller's role.

Dependencies that do no I/O are ``async def`` so FastAPI runs them on the event loop
instead of paying a threadpool hop each; the ones that touch the database stay sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from edge.modem.codes import MAX_SHORT_ID
from hub.clock import Clock
from hub.context import HubContext
from hub.db import read_only
from hub.models.auth import Role
from hub.services.auth import (
    Principal,
    authenticate,
    cached_principal,
    deferred_phone_principal,
)
from hub.services.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(
    auto_error=False, description="An API key (swk_...) or a phone session (sws_...)"
)


async def get_context(request: Request) -> HubContext:
    """The HubContext ``create_app`` stored on the app (async: no threadpool hop)."""
    return request.app.state.hub  # type: ignore[no-any-return]


ContextDep = Annotated[HubContext, Depends(get_context)]

# Integer path parameters within what the database stores: a larger number is a 422 that
# says so, not a driver overflow (SQLite and PostgreSQL keep 64-bit integers).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Row id.")]
BeaconShortId = Annotated[int, Path(ge=0, le=MAX_SHORT_ID, description="Beacon short id.")]
PageOffset = Annotated[int, Query(ge=0, le=2**63 - 1, description="Rows to skip (paging).")]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """One session per request: committed when the route returns, rolled back on error."""
    with Session(ctx.engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session)]


async def get_clock(ctx: ContextDep) -> Clock:
    """The hub's clock (a ManualClock in tests)."""
    return ctx.clock


ClockDep = Annotated[Clock, Depends(get_clock)]


def _authenticate(ctx: HubContext, session: Session, token: str) -> Principal:
    """Resolve ``token`` against the database (threadpool)."""
    # A reader's transaction: on SQLite it neither waits for nor holds the write lock,
    # and it ends in this same threadpool call before the route's own transaction starts.
    read_only(session)
    principal = authenticate(session, ctx.crypto, ctx.clock, token)
    session.commit()
    return principal


async def get_principal(
    ctx: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or 401 (a recently verified phone session: no DB, no thread)."""
    if credentials is None:
        raise Unauthorized("missing bearer token")
    cached = cached_principal(ctx.crypto, ctx.clock, credentials.credentials)
    if cached is not None:
        return cached
    return await run_in_threadpool(_authenticate, ctx, session, credentials.credentials)


def _authenticate_alone(ctx: HubContext, token: str) -> Principal:
    """Resolve ``token`` against the database in a session of its own (threadpool)."""
    with Session(ctx.engine, expire_on_commit=False) as session:
        return _authenticate(ctx, session, token)


async def phone_session_caller(
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """A phone caller whose session the route itself verifies in its own transaction.

    For a phone session token this reads nothing: it hashes the token, and the route
    (the check-in) locks the customer through that session row, refusing an unknown,
    expired or revoked one with 401. Any other token is authenticated here as usual and
    refused with 403, like ``require(Role.PHONE)``. It needs no request session, so a
    route using it can do all its database work in one threadpool call.
    """
    if credentials is None:
        raise Unauthorized("missing bearer token")
    token = credentials.credentials
    principal = deferred_phone_principal(ctx.crypto, ctx.clock, token)
    if principal is None:
        principal = await run_in_threadpool(_authenticate_alone, ctx, token)
    if principal.role is not Role.PHONE:
        raise Forbidden(f"role {principal.role.value} may not call this endpoint")
    return principal


phone_session_caller.allowed_roles = frozenset({Role.PHONE})  # type: ignore[attr-defined]


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency that admits only ``roles`` (403 for the others) and returns the caller.

    The allowed roles are kept on the function so the route table can be audited
    (``tests/hub/test_authz_matrix.py`` checks every route declares them).
    """
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"role {principal.role.value} may not call this endpoint")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    return dependency


async def public() -> None:
    """Marks a route that needs no credentials (health, metrics, phone sign-in)."""


public.allowed_roles = "public"  # type: ignore[attr-defined]

# The aliases routes use: each names who may call.
Public = Depends(public)
AdminOnly = Annotated[Principal, Depends(require(Role.ADMIN))]
Operators = Annotated[Principal, Depends(require(Role.ADMIN, Role.REGIONAL_OPS))]
StoreReaders = Annotated[
    Principal, Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.STORE_STAFF, Role.KIOSK))
]
StoreStaff = Annotated[Principal, Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.STORE_STAFF))]
FleetManagers = Annotated[
    Principal, Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.INSTALLER))
]
FleetReaders = Annotated[
    Principal,
    Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.INSTALLER, Role.STORE_STAFF)),
]
PresenceReaders = Annotated[Principal, Depends(require(Role.ADMIN, Role.STORE_STAFF, Role.KIOSK))]
AnyStaff = Annotated[
    Principal,
    Depends(require(Role.ADMIN, Role.REGIONAL_OPS, Role.INSTALLER, Role.STORE_STAFF, Role.KIOSK)),
]
PhoneCaller = Annotated[Principal, Depends(require(Role.PHONE))]
# The check-in: a phone whose session the route re-checks under its customer lock.
PhoneSessionCaller = Annotated[Principal, Depends(phone_session_caller)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def declared_roles(dependant_call: Any) -> Any:
    """The ``allowed_roles`` a dependency callable declares, or None."""
    return getattr(dependant_call, "allowed_roles", None)
