"""Builds the hub's FastAPI app: context, migrations, error mapping, metrics, routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from hub.api.fastpath import CHECKIN_PATH, CheckinFastPath, ErrorBody
from hub.api.main import api_router
from hub.api.middleware import MetricsMiddleware
from hub.clock import Clock, SystemClock
from hub.context import HubContext
from hub.db import WalCheckpointer, make_engine, migrate
from hub.security import HubCrypto, resolve_secret
from hub.services import checkins
from hub.services.campaigns import caps as campaign_caps
from hub.services.campaigns import index as campaign_index
from hub.services.errors import HubError, RateLimited
from hub.services.ports import NodeControl, NullNodeControl
from storewave import __version__
from storewave.settings import HubSettings


def create_app(
    settings: HubSettings,
    *,
    clock: Clock | None = None,
    node_control: NodeControl | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The hub app on ``settings``' database (migrated here), with an injectable clock/port."""
    # An app that makes its own engine (uvicorn --factory, tests) runs its own SQLite WAL
    # checkpointer while it serves; given one, the runtime that owns the engine does.
    own_engine = engine is None
    engine = engine or make_engine(settings.effective_database_url)
    migrate(engine)
    checkins.prepare_statements(engine.dialect)  # not in the first check-ins' time
    campaign_index.build_at_start(engine)  # likewise
    campaign_caps.configure(str(engine.url), settings.campaigns)
    ctx = HubContext(
        settings=settings,
        engine=engine,
        clock=clock or SystemClock(),
        node_control=node_control or NullNodeControl(),
        crypto=HubCrypto(resolve_secret(settings)),
    )
    app = FastAPI(
        title="StoreWave hub",
        version=__version__,
        description="Registry, customers, check-ins and operations of StoreWave stores.",
        lifespan=_serving(engine if own_engine else None),
    )
    app.state.hub = ctx
    for exc_class in (HubError, IntegrityError, OperationalError):
        app.add_exception_handler(exc_class, _mapped_error)  # type: ignore[arg-type]
    app.include_router(api_router)
    # Outermost last: metrics see every request, the check-in's fast path included.
    app.add_middleware(
        CheckinFastPath, ctx=ctx, route=_route(app, "POST", CHECKIN_PATH), error_body=error_body
    )
    app.add_middleware(MetricsMiddleware)
    return app


def _serving(checkpoint: Engine | None) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: a settled heap, and a WAL checkpointer on ``checkpoint`` if given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        checkpointer = WalCheckpointer(checkpoint).start() if checkpoint is not None else None
        try:
            async with _settled_heap(app):
                yield
        finally:
            if checkpointer is not None:
                checkpointer.stop()

    return lifespan


@asynccontextmanager
async def _settled_heap(_app: FastAPI) -> AsyncIterator[None]:
    """While serving, keep what exists at startup out of the cyclic garbage collector's walks.

    A started hub holds ~300k long-lived objects (modules, routes, models, SQLAlchemy's
    caches). A full (generation 2) collection walks all of them with the event loop
    stopped: measured at 200 check-ins/s, one 217 ms pause in 15 s, enough to decide the
    p99 alone. Frozen after a collection, they are skipped (refcounting still frees them);
    unfrozen at shutdown so an app that stops (tests build hundreds) leaves nothing behind.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _route(app: FastAPI, method: str, path: str) -> Any:
    """The app's route serving ``method path`` (it must exist)."""
    for context in iter_route_contexts(app.routes):
        route = context.route
        if getattr(route, "path", None) == path and method in getattr(route, "methods", ()):
            return route
    raise LookupError(f"no route for {method} {path}")


# A client retrying sooner than this would only find the database still restarting.
DATABASE_RETRY_AFTER_S = 2


def error_body(exc: Exception) -> ErrorBody | None:
    """What the API answers for a service or database error: (status, JSON, headers).

    - a service error: ``{"detail": message, "code": reason}`` with its status (429 with
      Retry-After);
    - IntegrityError: a constraint the database enforced (two callers creating the same id
      at once), 409 ``conflict``;
    - OperationalError: the database is unreachable or busy (restarting, failing over,
      locked): 503 ``database_unavailable`` with Retry-After instead of a bare 500;
      nothing was committed.

    None for anything else (a 500 from the server-error middleware).
    """
    if isinstance(exc, HubError):
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        return exc.status_code, {"detail": exc.message, "code": exc.code}, headers
    if isinstance(exc, IntegrityError):
        return 409, {"detail": "the request conflicts with existing data", "code": "conflict"}, None
    if isinstance(exc, OperationalError):
        return (
            503,
            {
                "detail": "the database is unavailable; retry shortly",
                "code": "database_unavailable",
            },
            {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    return None


async def _mapped_error(_request: Request, exc: Exception) -> JSONResponse:
    """The FastAPI exception handler for everything :func:`error_body` maps."""
    mapped = error_body(exc)
    if mapped is None:  # not registered for other exceptions
        raise exc
    status, content, headers = mapped
    return JSONResponse(content, status_code=status, headers=headers)
