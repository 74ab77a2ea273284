"""``storewave hub serve`` as a process: seeded node ingested end to end, clean SIGTERM shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from hub.db import make_engine, migrate, session_scope
from hub.models.registry import Node
from hub.mqtt.broker import free_port
from hub.mqtt.control import OfflineNodeControl
from hub.mqtt.publisher import OutboxPublisher
from hub.security import HubCrypto
from hub.seed import load_seeds
from storewave.wire import HUB_STATUS_TOPIC, HubState, HubStatus, parse_message
from tests.hub.mqtt.helpers import wait_for

pytestmark = pytest.mark.mosquitto
SECRET = "s" * 40
NODE = "fz-gulou-n1"


def test_serve_ingests_and_shuts_down_cleanly(mosquitto_bin: str, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    migrate(engine)
    with session_scope(engine) as session:  # what `storewave hub seed` does, offline
        summary = load_seeds(session, crypto=HubCrypto(SECRET.encode()),
                             node_control=OfflineNodeControl(tmp_path))
    password = summary.node_passwords[NODE]
    mqtt_port, http_port = free_port(), free_port()
    (tmp_path / "mosquitto").mkdir(exist_ok=True)
    (tmp_path / "mosquitto" / "port").write_text(f"{mqtt_port}\n")
    env = dict(os.environ, STOREWAVE_HUB__DATA_DIR=str(tmp_path), STOREWAVE_HUB__SECRET_KEY=SECRET,
               STOREWAVE_HUB__PORT=str(http_port), STOREWAVE_CONFIG="")
    hub = subprocess.Popen(
        [sys.executable, "-m", "storewave", "hub", "serve", "--broker", "mosquitto"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    statuses: list[bytes] = []
    try:
        assert wait_for(lambda: _healthy(http_port), 30)
        pub = OutboxPublisher("127.0.0.1", mqtt_port, (NODE, password), [NODE]).start()
        pub.client.message_callback_add(
            HUB_STATUS_TOPIC, lambda _c, _u, m: statuses.append(bytes(m.payload))
        )
        pub.client.subscribe(HUB_STATUS_TOPIC, 1)  # a node may read the hub's status
        for seq in range(3):
            pub.publish(NODE, seq)
        assert pub.wait_all_acked(20)
        assert wait_for(lambda: bool(statuses))
        assert parse_message(HubStatus, statuses[-1]).state == HubState.ONLINE
        hub.send_signal(signal.SIGTERM)
        assert wait_for(lambda: parse_message(HubStatus, statuses[-1]).state == HubState.OFFLINE)
        pub.client.loop_stop()
        assert hub.wait(30) == 0
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
    assert hub.stderr is not None
    log = hub.stderr.read()
    assert "ingest stopped" in log and "mosquitto stopped" in log
    with Session(engine) as session:
        node = session.get(Node, NODE)
        assert node is not None and node.last_seen_at is not None


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


