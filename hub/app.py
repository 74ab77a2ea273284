"""Builds the hub's FastAPI app: context, migrations, error mapping, metrics, routes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from hub.api.main import api_router
from hub.api.middleware import MetricsMiddleware
from hub.clock import Clock, SystemClock
from hub.context import HubContext
from hub.db import make_engine, migrate
from hub.security import HubCrypto, resolve_secret
from hub.services.campaigns import caps as campaign_caps
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
    engine = engine or make_engine(settings.effective_database_url)
    migrate(engine)
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
    )
    app.state.hub = ctx
    app.add_middleware(MetricsMiddleware)
    app.add_exception_handler(HubError, _hub_error)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _integrity_error)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_unavailable)  # type: ignore[arg-type]
    app.include_router(api_router)
    return app


async def _hub_error(_request: Request, exc: HubError) -> JSONResponse:
    """A service error as ``{"detail": message, "code": reason}`` with its status."""
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return JSONResponse(
        {"detail": exc.message, "code": exc.code}, status_code=exc.status_code, headers=headers
    )


async def _integrity_error(_request: Request, _exc: IntegrityError) -> JSONResponse:
    """A constraint the database enforced (two callers creating the same id at once)."""
    return JSONResponse(
        {"detail": "the request conflicts with existing data", "code": "conflict"},
        status_code=409,
    )


# A client retrying sooner than this would only find the database still restarting.
DATABASE_RETRY_AFTER_S = 2


async def _database_unavailable(_request: Request, _exc: OperationalError) -> JSONResponse:
    """The database is unreachable or busy (restarting, failing over, locked): say so and
    when to retry, instead of a bare 500; nothing was committed."""
    return JSONResponse(
        {"detail": "the database is unavailable; retry shortly", "code": "database_unavailable"},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )
