"""The node's MQTT connection: credentials, TLS, Last Will, birth, resubscribe, jittered reconnect.

paho-mqtt does the protocol. Its own reconnect loop backs off without jitter, so a store
full of nodes would reconnect in lock-step after a broker restart; this module runs
paho's ``loop()`` on its own thread and waits a capped, jittered exponential delay
between attempts instead. All socket writes happen on that thread (publishes from the
agent thread only queue a packet and wake it), so packets never interleave.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from storewave.wire import NodeLeaf, NodeState, NodeStatus, node_topic

log = logging.getLogger(__name__)

# First retry after about a second, doubling to at most a minute: fast recovery from
# a blip, and a restarted broker is not stormed by every node at once.
RECONNECT_BASE_S = 1.0
RECONNECT_CAP_S = 60.0
# Keepalive: the broker declares the node lost (and sends the Last Will) after 1.5x this.
KEEPALIVE_S = 15
# How long one pass of the network loop waits for traffic; publishes wake it early.
_LOOP_TIMEOUT_S = 0.5
# How long a clean shutdown waits for the retained "offline" status to be acknowledged
# (a loaded broker, or amqtt, can take seconds; a stuck one must not block shutdown).
_OFFLINE_TIMEOUT_S = 5.0
# Enough QoS 1 messages in flight to fill the pipe when draining a backlog; paho's
# default of 20 caps a drain at 20 round trips' worth.
_MAX_INFLIGHT = 200
# What a node subscribes to (its own subtree only; the broker ACL allows nothing else).
_INBOUND_LEAVES = (NodeLeaf.ACK, NodeLeaf.CONFIG, NodeLeaf.CMD)
_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is and whether to speak TLS."""

    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host:port`` or ``mqtts://host:port`` -> BrokerAddress, with a clear error."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"broker_url must be mqtt://host:port or mqtts://host:port: {url!r}")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme in ("mqtts", "ssl"),
    )


class Backoff:
    """Capped exponential delay with 'equal jitter': half fixed, half random."""

    def __init__(
        self,
        base_s: float = RECONNECT_BASE_S,
        cap_s: float = RECONNECT_CAP_S,
        rng: random.Random | None = None,
    ) -> None:
        """Delays grow from ``base_s`` and never exceed ``cap_s``."""
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """Back to the shortest delay (after a successful connection)."""
        self.attempt = 0


class MqttLink:
    """One node's connection; calls ``on_message(leaf, payload)`` and ``on_state(connected)``."""

    def __init__(
        self,
        node_id: str,
        password: str,
        broker_url: str,
        boot: int,
        on_message: Callable[[NodeLeaf, bytes], None],
        on_state: Callable[[bool], None],
        tls_ca_file: Path | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Prepare the client (nothing connects until ``start``)."""
        self.node_id = node_id
        self.address = parse_broker_url(broker_url)
        self.boot = boot
        self._on_message_cb = on_message
        self._on_state_cb = on_state
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._unsubscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0
        # The node id is the username and the client id: one ACL pattern covers every node.
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=node_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        client.username_pw_set(node_id, password)
        if self.address.tls or tls_ca_file is not None:
            client.tls_set(
                ca_certs=str(tls_ca_file) if tls_ca_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        status = node_topic(node_id, NodeLeaf.STATUS)
        client.will_set(status, NodeStatus(state=NodeState.LOST, boot=boot).to_bytes(), 1, True)
        client.max_inflight_messages_set(_MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_unsubscribe = lambda *args: self._unsubscribed.set()
        # A (no-op) write callback makes publish() from other threads only queue the
        # packet and wake the loop, so only the link thread writes the socket.
        client.on_socket_register_write = self._noop_register_write
        self._client = client

    @staticmethod
    def _noop_register_write(client: Any, userdata: Any, sock: Any) -> None:
        """The link thread's select() picks the write up; nothing to do here."""

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected or ``timeout_s`` passes."""
        return self._connected.wait(timeout_s)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        """Birth message, resubscribe (every connect: the session is clean), tell the agent."""
        if reason.is_failure:
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        self._backoff.reset()
        self.connects += 1
        node = self.node_id
        birth = NodeStatus(state=NodeState.ONLINE, boot=self.boot).to_bytes()
        client.publish(node_topic(node, NodeLeaf.STATUS), birth, qos=1, retain=True)
        client.subscribe([(node_topic(node, leaf), 1) for leaf in _INBOUND_LEAVES])
        self._connected.set()
        log.info("connected to broker", extra={"host": self.address.host, "boot": self.boot})
        self._on_state_cb(True)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        """Mark the link down and tell the agent."""
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            if self._stop.is_set():
                log.info("disconnected from broker (shutdown)")
            else:
                log.warning("disconnected from broker", extra={"reason": str(reason)})
            self._on_state_cb(False)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """Route ack/config/cmd payloads to the agent by topic leaf."""
        leaf = message.topic.rsplit("/", 1)[-1]
        try:
            self._on_message_cb(NodeLeaf(leaf), bytes(message.payload))
        except ValueError:
            log.warning("message on an unexpected topic", extra={"topic": message.topic[:120]})

    def publish(self, leaf: NodeLeaf, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Queue ``payload`` on the node's ``leaf`` topic; False when not connected."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(node_topic(self.node_id, leaf), payload, qos=qos, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _run(self) -> None:
        """Connect, run the network loop, and reconnect with jittered backoff until stopped."""
        first = True
        while not self._stop.is_set():
            try:
                if first:
                    self._client.connect(self.address.host, self.address.port, KEEPALIVE_S)
                    first = False
                else:
                    self._client.reconnect()
            except (OSError, ssl.SSLError) as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "cannot reach broker; retrying",
                    extra={"error": str(exc)[:200], "retry_in_s": round(delay, 2)},
                )
                self._stop.wait(delay)
                continue
            while not self._stop.is_set():
                if self._client.loop(timeout=_LOOP_TIMEOUT_S) != mqtt.MQTT_ERR_SUCCESS:
                    break
            if self._stop.is_set():
                self._send_disconnect()
                break
            self._on_disconnect(self._client, None, None, "connection lost", None)
            self._stop.wait(self._backoff.next_delay())

    def _send_disconnect(self) -> None:
        """Send DISCONNECT from the link thread (the broker then drops the Last Will)."""
        if not self._connected.is_set():
            return
        self._client.disconnect()
        deadline = time.monotonic() + _OFFLINE_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._client.loop(timeout=_LOOP_TIMEOUT_S) != mqtt.MQTT_ERR_SUCCESS:
                break
        self._connected.clear()

    def start(self) -> None:
        """Start connecting in the background."""
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, clean: bool = True) -> None:
        """Publish the retained ``offline`` status (when ``clean``), disconnect, stop the thread."""
        if clean and self._connected.is_set():
            # Unsubscribe first and wait for the broker to confirm, so nothing is left
            # unread when the socket closes: closing with unread data sends a TCP reset,
            # and amqtt then drops the DISCONNECT (and the offline status) and fires the
            # Last Will (seen in tests/edge/agent/test_amqtt.py).
            self._unsubscribed.clear()
            self._client.unsubscribe([node_topic(self.node_id, leaf) for leaf in _INBOUND_LEAVES])
            self._unsubscribed.wait(_OFFLINE_TIMEOUT_S)
            offline = NodeStatus(state=NodeState.OFFLINE, boot=self.boot).to_bytes()
            info = self._client.publish(
                node_topic(self.node_id, NodeLeaf.STATUS), offline, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=_OFFLINE_TIMEOUT_S)
            except (RuntimeError, ValueError):
                log.warning("could not publish the offline status")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_OFFLINE_TIMEOUT_S + _LOOP_TIMEOUT_S * 4)
        self._connected.clear()
