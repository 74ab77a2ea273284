"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlmodel import Session

from hub.api.deps import ContextDep, Public
from hub.metrics import REGISTRY

router = APIRouter(tags=["operations"], dependencies=[Public])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable"}})
def readyz(ctx: ContextDep, response: Response) -> dict[str, str]:
    """Readiness: the database answers a query."""
    try:
        with Session(ctx.engine) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as exc:  # any driver error means "not ready"
        response.status_code = 503
        return {"status": "unavailable", "detail": type(exc).__name__}
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus text exposition of the hub's registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
