"""All API routers, mounted under their paths."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.routes import ops

api_router = APIRouter()
api_router.include_router(ops.router)
