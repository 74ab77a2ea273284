"""All API routers, mounted under their paths."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.routes import analytics as analytics_routes
from hub.api.routes import api_keys, customers, fleet, ops, phone, registry
from hub.api.routes import campaigns as campaign_routes
from hub.api.routes import coupons as coupon_routes
from hub.api.routes import crosssell as oao_crosssell
from hub.api.routes import journeys as journey_routes
from hub.api.routes import kiosk as kiosk_routes
from hub.api.routes import oao_reports as oao_report_routes
from hub.api.routes import orders as oao_orders
from hub.api.routes import outbox as outbox_routes
from hub.api.routes import points as points_routes
from hub.api.routes import sheets as oao_sheets
from hub.api.routes import trials as trial_routes

api_router = APIRouter()
# The phone app's routes first: Starlette matches routes in order, and POST /v1/checkins
# is the hot path (matching it behind ~150 routes cost ~0.35 ms a request).
for module in (phone, ops, registry, fleet, api_keys, customers):
    api_router.include_router(module.router)
# OAO: orders, installer sheets, cross-sell, reports.
for module in (oao_orders, oao_sheets, oao_crosssell, oao_report_routes):
    api_router.include_router(module.router)
for module in (campaign_routes, coupon_routes, points_routes, analytics_routes):
    api_router.include_router(module.router)
# ARC: journeys and staff tasks, trials and the funnel, outbox replies.
for module in (journey_routes, trial_routes, outbox_routes):
    api_router.include_router(module.router)
# Kiosk: queue tickets and visit ratings.
api_router.include_router(kiosk_routes.router)
