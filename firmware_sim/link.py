"""A simulated node's MQTT connection (paho-mqtt 2.x): will, birth, subscriptions, inbox.

The edge agent has its own link; the simulator keeps this small one so it does not
depend on the agent's threading and outbox design, and so the fleet can run many nodes.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from storewave.wire import NodeLeaf, NodeState, NodeStatus, node_topic

log = logging.getLogger(__name__)

DEFAULT_MQTT_PORT = 1883
# Keepalive: the broker declares a silent node lost (and sends its Last Will) after 1.5x.
KEEPALIVE_S = 15
# paho's reconnect back-off: fast first retry (broker restarts), capped so a long
# outage costs one attempt every few seconds per node.
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 4.0
# QoS 1 messages in flight per node: enough to drain a backlog quickly after an outage.
MAX_INFLIGHT = 100
# Topics a node listens on (hub -> node), all QoS 1.
INBOUND_LEAVES = (NodeLeaf.CONFIG, NodeLeaf.CMD, NodeLeaf.ACK)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host and port of the broker."""

    host: str
    port: int


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host:port`` -> BrokerAddress, with a clear error for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:port, got {url!r}")
    return BrokerAddress(parts.hostname, parts.port or DEFAULT_MQTT_PORT)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from the hub, or a change of connection state (``leaf`` None)."""

    leaf: NodeLeaf | None
    payload: bytes = b""
    connected: bool = False


class NodeLink:
    """One node's connection; inbound messages and connection changes go to ``inbox``."""

    def __init__(self, node_id: str, password: str, broker: BrokerAddress, boot: int) -> None:
        """Prepare the client with its Last Will; ``start`` connects."""
        self.node_id = node_id
        self.boot = boot
        self.broker = broker
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._connected = False
        # Why the broker last refused us (bad credentials, not authorised), if it did.
        self.last_refusal: str | None = None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=node_id, clean_session=True)
        client.username_pw_set(node_id, password)
        will = NodeStatus(state=NodeState.LOST, boot=boot).to_bytes()
        client.will_set(node_topic(node_id, NodeLeaf.STATUS), will, qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        return self._connected

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self.client.connect_async(self.broker.host, self.broker.port, KEEPALIVE_S)
        self.client.loop_start()

    def stop(self, clean: bool = True) -> None:
        """Disconnect; ``clean=False`` drops the socket so the broker sends the Last Will."""
        if clean and self._connected:
            offline = NodeStatus(state=NodeState.OFFLINE, boot=self.boot).to_bytes()
            info = self.client.publish(self._topic(NodeLeaf.STATUS), offline, qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
            self.client.disconnect()
        elif not clean:
            sock = self.client.socket()
            if sock is not None:
                sock.close()  # a crash: no DISCONNECT packet, so the broker fires the will
        self.client.loop_stop()
        self._connected = False

    def publish(self, leaf: NodeLeaf, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Queue a message; False when not connected (the caller keeps it for later)."""
        if not self._connected:
            return False
        info = self.client.publish(self._topic(leaf), payload, qos=qos, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _topic(self, leaf: NodeLeaf) -> str:
        """This node's topic for ``leaf``."""
        return node_topic(self.node_id, leaf)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        """Subscribe (again: clean sessions forget), publish the birth message."""
        if reason.is_failure:
            self.last_refusal = str(reason)
            log.warning("connect refused", extra={"node": self.node_id, "reason": str(reason)})
            return
        client.subscribe([(self._topic(leaf), 1) for leaf in INBOUND_LEAVES])
        birth = NodeStatus(state=NodeState.ONLINE, boot=self.boot).to_bytes()
        client.publish(self._topic(NodeLeaf.STATUS), birth, qos=1, retain=True)
        self._connected = True
        self.inbox.put(Inbound(None, connected=True))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        """Note the loss; paho reconnects by itself."""
        was = self._connected
        self._connected = False
        if was:
            self.inbox.put(Inbound(None, connected=False))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """Hand the message to the device loop (never handled on paho's thread)."""
        leaf = NodeLeaf(message.topic.rsplit("/", 1)[-1])
        self.inbox.put(Inbound(leaf, bytes(message.payload)))
