"""Drains the outbox to MQTT in order: resend after an ack timeout, a window, a bounded rate."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from edge.agent.outbox import Outbox, OutboxRow
from storewave.wire import NodeLeaf

log = logging.getLogger(__name__)

# Token-bucket depth as seconds of the drain rate: a short burst (a flurry of hearings)
# goes out at once, a backlog is spread at the configured rate.
_BURST_S = 0.1
# Events on the events topic are QoS 1; telemetry is QoS 0 (DESIGN.md) and rides on the
# same resend-until-acked rule, so a lost heartbeat is sent again like anything else.
_QOS = {NodeLeaf.EVENTS.value: 1, NodeLeaf.TELEMETRY.value: 0}


class Link(Protocol):
    """What the publisher needs from the MQTT link."""

    @property
    def connected(self) -> bool:
        """Whether a publish can go out now."""

    def publish(self, leaf: NodeLeaf, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Queue one message; False when not connected."""


@dataclass(slots=True)
class _Flight:
    """An event in the window: its row and when it was last sent."""

    row: OutboxRow
    sent_at: float | None  # monotonic time of the last send; None = due now


class Publisher:
    """Owns the in-flight window; called from the agent thread only."""

    def __init__(
        self,
        outbox: Outbox,
        link: Link,
        rate_per_s: float,
        window: int,
        ack_timeout_s: float,
    ) -> None:
        """Resume whatever a previous run left sequenced but unacknowledged."""
        self._outbox = outbox
        self._link = link
        self._rate = rate_per_s
        self._burst = max(1.0, rate_per_s * _BURST_S)
        self._window = window
        self._ack_timeout_s = ack_timeout_s
        self._tokens = self._burst
        self._last_refill: float | None = None
        self._flights: OrderedDict[tuple[int, int], _Flight] = OrderedDict(
            ((r.boot, r.seq), _Flight(r, None)) for r in outbox.in_flight()
        )
        self._has_unsent = outbox.unsent() > 0
        self.published = 0
        self.resent = 0

    @property
    def in_flight(self) -> int:
        """Events sent (at least once) and not yet acknowledged."""
        return len(self._flights)

    def notify_added(self) -> None:
        """The agent stored a new event."""
        self._has_unsent = True

    def on_connected(self) -> None:
        """A new connection: resend every unacked event, in (boot, seq) order, right away."""
        for key in sorted(self._flights):
            self._flights[key].sent_at = None
            self._flights.move_to_end(key)

    def on_ack(self, boot: int, seq: int) -> int:
        """The hub committed ``boot`` up to ``seq``: free those rows; return how many."""
        freed = self._outbox.ack(boot, seq)
        for key in [k for k in self._flights if k[0] == boot and k[1] <= seq]:
            del self._flights[key]
        return freed

    def flush(self) -> None:
        """Send everything now: fill the bucket and treat every unacked event as due."""
        self._tokens = max(self._tokens, float(self._window))
        self.on_connected()

    def _refill(self, now: float) -> None:
        """Add tokens for the time elapsed since the last step."""
        if self._last_refill is not None:
            self._tokens = min(
                max(self._burst, self._tokens),
                self._tokens + (now - self._last_refill) * self._rate,
            )
        self._last_refill = now

    def _send(self, flight: _Flight, now: float) -> bool:
        """Publish one event; False when the link refused (disconnected)."""
        row = flight.row
        if not self._link.publish(NodeLeaf(row.leaf), row.payload, _QOS[row.leaf]):
            return False
        flight.sent_at = now
        self._flights.move_to_end((row.boot, row.seq))
        self._tokens -= 1
        return True

    def step(self, now: float) -> float | None:
        """Publish what is due and allowed; return seconds until there is more to do (or None)."""
        if not self._link.connected:
            return None
        self._refill(now)
        # Resends first: flights are ordered by last send, so only the head can be due.
        while self._flights and self._tokens >= 1:
            flight = next(iter(self._flights.values()))
            if flight.sent_at is not None and now - flight.sent_at < self._ack_timeout_s:
                break
            if flight.sent_at is not None:
                self.resent += 1
            if not self._send(flight, now):
                return None
        room = self._window - len(self._flights)
        if self._has_unsent and room > 0 and self._tokens >= 1:
            want = min(room, int(self._tokens))
            rows = self._outbox.sequence(want)
            if len(rows) < want:
                self._has_unsent = False
            # Every sequenced row joins the window first: if the link drops half-way,
            # the rest are resent with their seq on reconnect (no gap for the hub).
            fresh = [_Flight(row, None) for row in rows]
            for flight in fresh:
                self._flights[(flight.row.boot, flight.row.seq)] = flight
            for flight in fresh:
                if not self._send(flight, now):
                    return None
                self.published += 1
        return self._next_wake(now)

    def _next_wake(self, now: float) -> float | None:
        """How long the agent may sleep before the publisher has work again."""
        waits: list[float] = []
        if self._has_unsent and len(self._flights) < self._window:
            waits.append(max(0.0, (1 - self._tokens) / self._rate))
        if self._flights:
            head = next(iter(self._flights.values()))
            due = 0.0 if head.sent_at is None else head.sent_at + self._ack_timeout_s - now
            waits.append(max(due, (1 - self._tokens) / self._rate, 0.0))
        return min(waits) if waits else None
