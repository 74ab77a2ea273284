"""ASGI middleware recording request counts and latency per route template."""

from __future__ import annotations

import time
from typing import Any

from hub.metrics import API_LATENCY, API_REQUESTS

# Unmatched paths (404 scans) all count under one label so they cannot blow up cardinality.
UNMATCHED_ROUTE = "<unmatched>"


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so it adds microseconds, not a thread hop."""

    def __init__(self, app: Any) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Time the request and record it under its route template."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED_ROUTE)
            method = scope.get("method", "")
            API_LATENCY.labels(template, method).observe(time.perf_counter() - start)
            API_REQUESTS.labels(template, method, f"{status['code'] // 100}xx").inc()
