"""``MqttNodeControl``: the registry's NodeControl port on the broker (accounts, config, cmd)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from hub.mqtt.broker import MANAGED_BROKER_DIRS, Broker
from hub.mqtt.credentials import CredentialStore
from storewave.wire import NodeCommand, NodeConfig, NodeLeaf, node_topic

log = logging.getLogger(__name__)

CLIENT_ID = "storewave-hub-control"
# The broker answers a QoS 1 publish in milliseconds; 10 s means it is really gone.
PUBLISH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30


class NodeControlError(RuntimeError):
    """The broker did not take a config or command."""


class MqttNodeControl:
    """Implements ``hub.services.ports.NodeControl`` over the hub's own broker connection."""

    def __init__(self, broker: Broker, client_id: str = CLIENT_ID) -> None:
        """Remember the broker; :meth:`start` connects."""
        self.broker = broker
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if broker.supports_mqtt5 else mqtt.MQTTv311,
        )
        self.client.username_pw_set(*broker.hub_credentials)
        self.client.reconnect_delay_set(0.1, 2.0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self._connected.clear()

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: object,
                    _p: object = None) -> None:
        """Mark the connection usable (or log why the broker refused it)."""
        if getattr(rc, "is_failure", False):
            log.error("node control refused by broker: %s", rc)
            return
        self._connected.set()

    def start(self) -> MqttNodeControl:
        """Connect to the broker (raises TimeoutError if it never answers)."""
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.client.loop_stop()
            raise TimeoutError("node control could not connect to the broker")
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def retained_secrets_safe(self) -> bool:
        """False on amqtt, which shows retained messages to any subscriber."""
        return self.broker.retained_secrets_safe

    def set_credentials(self, node_id: str, password: str) -> None:
        """Create or replace the node's broker account."""
        node_topic(node_id, NodeLeaf.EVENTS)  # refuses ids that are not valid node ids
        self.broker.set_node_password(node_id, password)

    def revoke(self, node_id: str) -> None:
        """Remove the node's account and clear its retained config."""
        self.broker.remove_node(node_id)
        self._publish(node_topic(node_id, NodeLeaf.CONFIG), b"", retain=True)

    def publish_config(self, node_id: str, config: NodeConfig) -> None:
        """Publish ``config`` retained (QoS 1); never a beacon key where retained leaks."""
        if config.beacon is not None and not self.retained_secrets_safe:
            raise NodeControlError(
                "refusing to retain a beacon key on a broker that leaks retained messages"
            )
        self._publish(node_topic(node_id, NodeLeaf.CONFIG), config.to_bytes(), retain=True)
        log.info("config published", extra={"node": node_id, "version": config.version})

    def send_command(self, node_id: str, command: NodeCommand) -> None:
        """Publish ``command`` (QoS 1, not retained) on the node's cmd topic."""
        self._publish(node_topic(node_id, NodeLeaf.CMD), command.to_bytes(), retain=False)
        log.info("command sent", extra={"node": node_id, "cmd": command.cmd.value})

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """QoS 1 publish that returns once the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            raise NodeControlError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise NodeControlError(f"broker did not acknowledge publish to {topic}")


class OfflineNodeControl:
    """NodeControl for commands run while the hub is down (``storewave hub seed``).

    Node accounts go straight into the managed brokers' password files (read when the
    broker next starts); configs and commands cannot be delivered now and are logged:
    the registry republishes a node's config when it changes.
    """

    retained_secrets_safe = False

    def __init__(self, data_dir: Path) -> None:
        """The managed brokers' credential stores under the hub's ``data_dir``."""
        self._stores = [CredentialStore(data_dir / name) for name in MANAGED_BROKER_DIRS]

    def set_credentials(self, node_id: str, password: str) -> None:
        """Write the node's account into every managed broker's password file."""
        node_topic(node_id, NodeLeaf.EVENTS)
        for store in self._stores:
            store.set_password(node_id, password)

    def revoke(self, node_id: str) -> None:
        """Remove the node's account from every managed broker's password file."""
        for store in self._stores:
            store.remove(node_id)

    def publish_config(self, node_id: str, config: NodeConfig) -> None:
        """No broker connection: the config waits in the database."""
        log.info("hub offline: config not published", extra={"node": node_id})

    def send_command(self, node_id: str, command: NodeCommand) -> None:
        """No broker connection: the command is dropped."""
        log.warning("hub offline: command dropped", extra={"node": node_id})
