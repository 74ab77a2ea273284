"""Debounce: the same code heard again and again within a window is one event with a count.

The first hearing is published at once (count 1): a phone token at a counter must reach
the hub in well under a second. Later hearings of that code within ``window_s`` of the
first are folded in; when the window closes, if any were folded in, one closing event
with the same ``first_heard`` and the total ``count`` (and the best SNR/confidence)
follows, which the hub reads as superseding the opening one for that (code, first_heard).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Hearing:
    """A debounced detection ready to become a DetectionBody."""

    code: int
    snr_db: float
    confidence: float
    first_heard: datetime
    count: int


@dataclass(slots=True)
class _Open:
    """A code's open window: the hearing so far and when the window closes."""

    hearing: Hearing
    closes_at: float


class Debouncer:
    """Folds repeated hearings of a code; times are monotonic seconds supplied by the caller."""

    def __init__(self, window_s: float) -> None:
        """Fold hearings within ``window_s`` of a code's first hearing."""
        self.window_s = window_s
        self._open: dict[int, _Open] = {}

    def hear(
        self, code: int, snr_db: float, confidence: float, now: float, heard_at: datetime
    ) -> Hearing | None:
        """Record one hearing; return the event to publish now, or None when folded in."""
        current = self._open.get(code)
        if current is not None and now < current.closes_at:
            h = current.hearing
            current.hearing = replace(
                h,
                count=h.count + 1,
                snr_db=max(h.snr_db, snr_db),
                confidence=max(h.confidence, confidence),
            )
            return None
        hearing = Hearing(code, snr_db, confidence, heard_at, 1)
        if self.window_s > 0:
            self._open[code] = _Open(hearing, now + self.window_s)
        return hearing

    def expire(self, now: float) -> list[Hearing]:
        """Close windows that ended by ``now``; return closing events (count > 1 only)."""
        closed = [code for code, o in self._open.items() if now >= o.closes_at]
        out: list[Hearing] = []
        for code in closed:
            hearing = self._open.pop(code).hearing
            if hearing.count > 1:
                out.append(hearing)
        return out

    def flush(self) -> list[Hearing]:
        """Close every window now (shutdown): the closing events still owed."""
        return self.expire(float("inf"))

    def next_deadline(self) -> float | None:
        """When the earliest open window closes (monotonic seconds), or None."""
        return min((o.closes_at for o in self._open.values()), default=None)
