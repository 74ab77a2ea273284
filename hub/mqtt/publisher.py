"""A node-side test publisher with an outbox: publishes events and resends until the hub acks.

It plays the edge's store-and-forward contract (DESIGN.md) for tests and the ingest
benchmark: an event leaves the outbox only when an :class:`storewave.wire.Ack` for its
boot covers its seq. One client may speak for many nodes when it has the hub's account
(benchmark); with a node's own account it is exactly that node.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from storewave.wire import (
    Ack,
    CodeKind,
    DetectionBody,
    DetectionEvent,
    NodeLeaf,
    WireError,
    node_topic,
    parse_message,
    parse_node_topic,
)

log = logging.getLogger(__name__)

# Fixed detection content: the ingest's cost does not depend on it.
_HEARD = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.02
# paho's default of 20 in-flight QoS 1 messages would throttle a publisher to one
# round trip per 20 messages; nodes with a deep outbox push harder.
MAX_INFLIGHT = 1000


def detection_payload(node: str, boot: int, seq: int) -> bytes:
    """The wire bytes of a detection event for (node, boot, seq)."""
    body = DetectionBody(
        code=f"{seq % (1 << 48):012x}", kind=CodeKind.BEACON, snr_db=12.5,
        confidence=0.9, first_heard=_HEARD,
    )
    return DetectionEvent(node=node, boot=boot, seq=seq, body=body).to_bytes()


class OutboxPublisher:
    """Publishes events for ``nodes`` at QoS 1 and resends whatever is not acked in time."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: tuple[str, str],
        nodes: list[str],
        *,
        boot: int = 1,
        client_id: str | None = None,
        mqtt5: bool = True,
    ) -> None:
        """Configure; :meth:`start` connects."""
        self.host, self.port, self.boot = host, port, boot
        self.nodes = nodes
        self._lock = threading.Lock()
        # (node, seq) -> (payload, monotonic time of the last send)
        self.outbox: dict[tuple[str, int], tuple[bytes, float]] = {}
        self.acked: dict[str, int] = {node: -1 for node in nodes}
        self.acks_received = 0
        self.last_ack_payload: bytes | None = None
        self.resends = 0
        self._connected = threading.Event()
        protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or nodes[0],
            protocol=protocol,
        )
        self.client.username_pw_set(*credentials)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self._connected.clear()
        self.client.on_message = self._on_message
        self._ack_topics = [node_topic(n, NodeLeaf.ACK) for n in nodes]

    def start(self) -> OutboxPublisher:
        """Connect and subscribe to the nodes' ack topics."""
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.stop()
            raise TimeoutError("publisher could not connect")
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: object,
                    _p: object = None) -> None:
        """(Re)subscribe to the ack topics."""
        if getattr(rc, "is_failure", False):
            log.warning("publisher refused: %s", rc)
            return
        client.subscribe([(t, 1) for t in self._ack_topics])
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        """An Ack frees every outbox entry of that boot up to its seq."""
        try:
            node, _leaf = parse_node_topic(msg.topic)
            ack = parse_message(Ack, msg.payload)
        except WireError:
            return
        if ack.boot != self.boot:
            return
        with self._lock:
            self.acks_received += 1
            self.last_ack_payload = bytes(msg.payload)
            if ack.seq > self.acked.get(node, -1):
                for seq in range(self.acked[node] + 1, ack.seq + 1):
                    self.outbox.pop((node, seq), None)
                self.acked[node] = ack.seq

    def publish(self, node: str, seq: int, payload: bytes | None = None) -> None:
        """Put one event in the outbox and publish it (QoS 1)."""
        data = payload if payload is not None else detection_payload(node, self.boot, seq)
        with self._lock:
            self.outbox[(node, seq)] = (data, time.monotonic())
        self.client.publish(node_topic(node, NodeLeaf.EVENTS), data, qos=1)

    def publish_range(self, count_per_node: int, start: int = 0) -> None:
        """Publish seqs ``start..start+count-1`` for every node, interleaved."""
        for seq in range(start, start + count_per_node):
            for node in self.nodes:
                self.publish(node, seq)

    def pending(self) -> int:
        """Events still waiting for the hub's ack."""
        with self._lock:
            return len(self.outbox)

    def resend_unacked(self, older_than_s: float = 0.0) -> int:
        """Publish again every entry unacked ``older_than_s`` after its last send."""
        now = time.monotonic()
        with self._lock:
            items = [(k, d) for k, (d, sent) in self.outbox.items() if now - sent >= older_than_s]
            for key, data in items:
                self.outbox[key] = (data, now)
        for (node, _seq), data in items:
            self.client.publish(node_topic(node, NodeLeaf.EVENTS), data, qos=1)
        self.resends += len(items)
        return len(items)

    def wait_all_acked(self, timeout_s: float, resend_after_s: float = 2.0) -> bool:
        """Until the outbox is empty, resending entries unacked for ``resend_after_s``."""
        deadline = time.monotonic() + timeout_s
        # Scanning the outbox costs CPU the system under test needs: a few times per
        # resend period is precise enough.
        scan_every_s = min(resend_after_s / 4, 1.0)
        next_scan = time.monotonic() + scan_every_s
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            if time.monotonic() >= next_scan and self._connected.is_set():
                self.resend_unacked(resend_after_s)
                next_scan = time.monotonic() + scan_every_s
            time.sleep(POLL_S)
        return self.pending() == 0
