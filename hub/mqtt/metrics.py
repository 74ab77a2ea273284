"""Prometheus metrics of the MQTT ingest (registered in the hub's registry when it exists)."""

from __future__ import annotations

from prometheus_client import REGISTRY as _DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _registry() -> CollectorRegistry:
    """``hub.metrics.REGISTRY`` if the hub defines one, else prometheus' default registry."""
    try:
        from hub.metrics import REGISTRY
    except ImportError:
        return _DEFAULT_REGISTRY
    return REGISTRY  # type: ignore[no-any-return]


_REG = _registry()

# Batch sizes are bounded by the broker's in-flight window (2,000); buckets span 1..2,000.
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)
# Lag from the node's timestamp to commit: ms when live, minutes when an outbox drains.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

MESSAGES = Counter(
    "storewave_ingest_messages",
    "Node messages handled by the ingest, by outcome",
    ["outcome"],  # stored | duplicate | status | dead
    registry=_REG,
)
DEAD_LETTERS = Counter(
    "storewave_ingest_dead_letters", "Messages sent to the dead-letter table", registry=_REG
)
SEQ_GAPS = Counter(
    "storewave_ingest_seq_gaps", "Gaps in a node's per-boot seq first seen", registry=_REG
)
BATCH_SIZE = Histogram(
    "storewave_ingest_batch_size", "Messages per committed batch", buckets=_BATCH_BUCKETS,
    registry=_REG,
)
LAG_SECONDS = Histogram(
    "storewave_ingest_lag_seconds", "Event timestamp to commit", buckets=_LAG_BUCKETS,
    registry=_REG,
)
QUEUE_DEPTH = Gauge(
    "storewave_ingest_queue_depth", "Messages received but not yet committed", registry=_REG
)
