"""MqttNodeControl: accounts, retained config, commands, revocation, on a real Mosquitto."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.mqtt.amqtt_broker import AmqttBroker
from hub.mqtt.control import MqttNodeControl, NodeControlError
from hub.mqtt.mosquitto import MosquittoBroker
from hub.services.ports import NodeControl
from storewave.wire import BeaconKey, CommandName, NodeCommand, NodeConfig, utc_now
from tests.hub.mqtt.helpers import connect_node, refused, try_connect, wait_for

CONFIG = NodeConfig(version=3, beacon=BeaconKey(short_id=7, key_hex="ab" * 16))


def test_config_command_and_revoke(mosquitto: MosquittoBroker) -> None:
    control = MqttNodeControl(mosquitto).start()
    try:
        assert isinstance(control, NodeControl) and control.retained_secrets_safe
        control.set_credentials("node-a", "pw-a")
        control.publish_config("node-a", CONFIG)
        node = connect_node(mosquitto, "node-a", "pw-a")
        got: list[tuple[str, bytes, bool]] = []
        node.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload), m.retain))
        node.subscribe([("sw/v1/nodes/node-a/config", 1), ("sw/v1/nodes/node-a/cmd", 1)])
        assert wait_for(lambda: len(got) == 1)
        assert got[0] == ("sw/v1/nodes/node-a/config", CONFIG.to_bytes(), True)
        command = NodeCommand(
            cmd=CommandName.SELF_TEST, expires_at=utc_now() + timedelta(minutes=1)
        )
        control.send_command("node-a", command)
        assert wait_for(lambda: len(got) == 2)
        assert got[1] == ("sw/v1/nodes/node-a/cmd", command.to_bytes(), False)
        node.loop_stop()
        node.disconnect()
        control.revoke("node-a")
        assert wait_for(lambda: refused(_connect_rc(mosquitto)), 10)
    finally:
        control.stop()


def _connect_rc(broker: MosquittoBroker) -> object:
    client, rc = try_connect(broker, "node-a", "pw-a", "node-a")
    client.loop_stop()
    client.disconnect()
    return rc


def test_invalid_node_id_refused(mosquitto: MosquittoBroker) -> None:
    control = MqttNodeControl(mosquitto).start()
    try:
        with pytest.raises(ValueError, match="invalid node id"):
            control.set_credentials("bad/#", "pw")
    finally:
        control.stop()


def test_amqtt_never_retains_a_beacon_key(amqtt_broker: AmqttBroker) -> None:
    control = MqttNodeControl(amqtt_broker).start()
    try:
        assert not control.retained_secrets_safe
        with pytest.raises(NodeControlError, match="leaks retained"):
            control.publish_config("node-a", CONFIG)
        control.publish_config("node-a", NodeConfig(version=4))  # no secret: fine
    finally:
        control.stop()
