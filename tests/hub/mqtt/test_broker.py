"""Broker selection and the generated Mosquitto configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.mqtt.broker import BrokerError, ExternalBroker, free_port, start_broker
from hub.mqtt.credentials import HUB_USERNAME
from hub.mqtt.mosquitto import MAX_QUEUED_MESSAGES, MosquittoBroker, render_config


def test_external_url_carries_the_hub_account() -> None:
    broker = ExternalBroker("mqtt://hub%40x:p%3Ass@broker.example:8883")
    assert broker.url == "mqtt://broker.example:8883"
    assert broker.hub_credentials == ("hub@x", "p:ss")
    assert (broker.host, broker.port) == ("broker.example", 8883)


@pytest.mark.parametrize("mode", ["http://x:1", "nonsense"])
def test_bad_modes_are_refused(mode: str, tmp_path: Path) -> None:
    with pytest.raises(BrokerError):
        start_broker(mode, tmp_path)


def test_generated_config_is_locked_down(tmp_path: Path) -> None:
    text = render_config(tmp_path, 18830)
    assert "listener 18830 127.0.0.1" in text
    assert "allow_anonymous false" in text
    assert "persistence true" in text
    assert f"max_queued_messages {MAX_QUEUED_MESSAGES}" in text and MAX_QUEUED_MESSAGES >= 10_000
    assert f"password_file {tmp_path / 'passwords'}" in text
    assert f"acl_file {tmp_path / 'acl'}" in text


@pytest.mark.mosquitto
def test_auto_prefers_mosquitto_and_keeps_its_files(mosquitto_bin: str, tmp_path: Path) -> None:
    broker = start_broker("auto", tmp_path, port=free_port())
    try:
        assert isinstance(broker, MosquittoBroker) and broker.retained_secrets_safe
        assert broker.hub_credentials[0] == HUB_USERNAME
        files = {p.name for p in (tmp_path / "mosquitto").iterdir()}
        assert {"mosquitto.conf", "passwords", "acl", "hub.secret", "data"} <= files
    finally:
        broker.stop()
    assert broker.pid is not None and not Path(f"/proc/{broker.pid}").exists()
