"""All API routers, mounted under their paths."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.routes import api_keys, customers, fleet, ops, phone, registry

api_router = APIRouter()
for module in (ops, registry, fleet, api_keys, phone, customers):
    api_router.include_router(module.router)
