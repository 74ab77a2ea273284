"""What the agent needs from the modem's detector (edge.modem.detector), as protocols."""

from __future__ import annotations

from typing import Any, Protocol


class Detection(Protocol):
    """What the agent reads from a decoded frame (edge.modem.detector.Detection)."""

    payload: int
    snr_db: float
    confidence: float


class Detector(Protocol):
    """The streaming detector interface (edge.modem.detector.StreamingDetector)."""

    @property
    def noise_floor_dbfs(self) -> float | None:
        """In-band noise estimate."""

    def feed(self, block: Any) -> list[Any]:
        """Detections completed by this block."""

    def flush(self) -> list[Any]:
        """Detections still buffered at the end of a stream."""
