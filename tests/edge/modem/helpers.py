"""Shared helpers for the modem tests: build a capture and decode it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.modem.detector import Detection, StreamingDetector

LEVEL_DBFS = -6.0


def pad(
    x: npt.NDArray[np.float32], rate: int, lead_s: float = 0.2, tail_s: float = 0.3
) -> np.ndarray:
    """Silence before and after ``x``."""
    return np.concatenate(
        [np.zeros(int(lead_s * rate), np.float32), x, np.zeros(int(tail_s * rate), np.float32)]
    ).astype(np.float32)


def decode_all(x: npt.ArrayLike, rate: int, block: int | None = None) -> list[Detection]:
    """Feed ``x`` to a fresh detector (one block, or blocks of ``block``) and flush."""
    det = StreamingDetector(rate)
    arr = np.asarray(x)
    found: list[Detection] = []
    step = block or max(arr.shape[0], 1)
    for lo in range(0, arr.shape[0], step):
        found.extend(det.feed(arr[lo : lo + step]))
    return found + det.flush()
