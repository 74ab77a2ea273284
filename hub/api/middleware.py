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
        # (route template, method, status) -> its histogram and counter children:
        # ``labels()`` checks and locks on every call. Bounded by the route table.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            key = (getattr(route, "path", UNMATCHED_ROUTE), scope.get("method", ""), status["code"])
            children = self._children.get(key)
            if children is None:
                template, method, code = key
                children = (
                    API_LATENCY.labels(template, method),
                    API_REQUESTS.labels(template, method, f"{code // 100}xx"),
                )
                self._children[key] = children
            children[0].observe(elapsed)
            children[1].inc()
