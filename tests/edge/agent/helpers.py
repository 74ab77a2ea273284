"""Small factories shared by the agent suites."""

from __future__ import annotations

from dataclasses import dataclass

from edge.modem.codes import KIND_BIT


@dataclass(frozen=True)
class Heard:
    """A decoded frame as the detector reports it (payload, SNR, confidence)."""

    payload: int
    snr_db: float = 20.0
    confidence: float = 0.99


def token(i: int) -> int:
    """The i-th distinct phone-token code (kind bit set), so no two debounce together."""
    return KIND_BIT | (0x5A0000 + i)
