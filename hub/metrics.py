"""The hub's Prometheus registry: API and check-in metrics; hub.mqtt adds ingest metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# One registry per process, not the global default, so tests that build several apps
# and libraries that register their own collectors never clash.
REGISTRY = CollectorRegistry(auto_describe=True)

# Buckets around the 50 ms p99 target of POST /v1/checkins, out to slow outliers.
LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)

API_REQUESTS = Counter(
    "storewave_api_requests",
    "HTTP requests served, by route template, method and status class",
    ["route", "method", "status"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "storewave_api_latency_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
CHECKINS = Counter(
    "storewave_checkins",
    "Check-in attempts by outcome (accepted, or the rule that refused it)",
    ["outcome"],
    registry=REGISTRY,
)
NODE_ALERTS = Counter(
    "storewave_node_alerts",
    "Alerts raised about nodes, by kind",
    ["kind"],
    registry=REGISTRY,
)
