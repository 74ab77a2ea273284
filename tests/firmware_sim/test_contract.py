"""The simulator speaks the deployed contract: the hub's own password hashes and ACL file."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim import device as dev
from firmware_sim import fleet
from firmware_sim.link import parse_broker_url
from hub.mqtt.credentials import HUB_USERNAME, hash_password, mosquitto_acl
from storewave import wire

from .conftest import HubSide, Mosquitto, wait_for

pytestmark = pytest.mark.mosquitto
NODES = {"store-0001-n1": "node-one-password", "store-0002-n1": "node-two-password"}
HUB_PASSWORD = "hub-password-for-tests"


@pytest.fixture
def acl_broker(mosquitto_bin: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """Mosquitto with the hub's ACL and a password file: no anonymous access."""
    users = {HUB_USERNAME: HUB_PASSWORD, **NODES}
    (tmp_path / "passwords").write_text(
        "".join(f"{user}:{hash_password(pw)}\n" for user, pw in users.items())
    )
    (tmp_path / "acl").write_text(mosquitto_acl())
    auth = (
        # Run as us: a root-started Mosquitto otherwise drops to 'mosquitto' and cannot
        # read the private files (the hub's managed broker does the same).
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        "allow_anonymous false\n"
        f"password_file {tmp_path / 'passwords'}\n"
        f"acl_file {tmp_path / 'acl'}\n"
    )
    server = Mosquitto(mosquitto_bin, tmp_path, auth_lines=auth)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub(acl_broker: Mosquitto) -> Iterator[HubSide]:
    """The hub side, logged in with the hub account, acking events."""
    side = HubSide(acl_broker.port, auto_ack=True, username=HUB_USERNAME, password=HUB_PASSWORD)
    yield side
    side.close()


def test_node_firmware_runs_within_its_acl(acl_broker: Mosquitto, hub: HubSide) -> None:
    node = "store-0001-n1"
    config = wire.NodeConfig(
        version=2, beacon=wire.BeaconKey(short_id=5, key_hex="cd" * 16), telemetry_period_s=1.0
    )
    hub.publish(f"sw/v1/nodes/{node}/config", config.to_bytes(), retain=True)
    device = dev.Device(
        lambda: dev.Credentials(node, NODES[node]),
        parse_broker_url(acl_broker.url),
        dev.NodeStorage(),
    )

    def running_and_acked() -> bool:
        device.tick()
        return (
            device.state is dev.State.RUNNING
            and bool(hub.of_type("telemetry"))
            and (not device.storage.outbox)
            and bool(device.emitted)  # its first turn comes within one emit period
        )

    wait_for(running_and_acked, 10.0, "node running, emitting, telemetry delivered and acked")
    assert device.emitted and device.config is not None and device.config.version == 2
    device.stop()


def test_wrong_password_is_refused_by_the_broker(acl_broker: Mosquitto) -> None:
    device = dev.Device(
        lambda: dev.Credentials("store-0001-n1", "not-the-password"),
        parse_broker_url(acl_broker.url),
        dev.NodeStorage(),
    )

    def refused() -> bool:
        device.tick()
        return device.link is not None and device.link.last_refusal is not None

    wait_for(refused, 10.0, "the broker to refuse the node")
    assert device.state is dev.State.CONNECT  # never got further
    device.stop()


def test_fleet_with_per_node_passwords_is_fully_acked(acl_broker: Mosquitto, hub: HubSide) -> None:
    opts = fleet.FleetOptions(
        acl_broker.url,
        nodes=2,
        stores=2,
        rate=10.0,
        duration_s=1.0,
        grace_s=5.0,
        credentials=dict(NODES),
        password="wrong",
    )
    counts = fleet.run_fleet(opts)
    assert counts.connected == 2 and counts.failed == 0
    assert counts.sent > 0 and counts.acked == counts.sent
