"""``storewave edge run`` end to end: a WAV file decoded and sent; a simulated room; SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge.modem.codes import KIND_BIT, MAC_BITS, to_hex
from edge.modem.synth import synthesize_frame
from edge.modem.wav import write_wav
from storewave.wire import BeaconKey, EmitSchedule, NodeConfig, NodeLeaf, node_topic
from tests.edge.agent.brokers import AckingHub, Mosquitto, wait_for
from tests.edge.agent.conftest import NODE_ID, NODE_PASSWORD

REPO = Path(__file__).resolve().parents[3]
TOKENS = [KIND_BIT | 0x123456, KIND_BIT | 0x654321, KIND_BIT | 0xABCDEF]


def _node_toml(tmp_path: Path, broker: Mosquitto) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(
        f'[edge]\nnode_id = "{NODE_ID}"\npassword = "{NODE_PASSWORD}"\n'
        f'broker_url = "{broker.url}"\ndata_dir = "{tmp_path / "node"}"\n'
        'ack_timeout_s = 1.0\n\n[log]\nlevel = "WARNING"\n'
    )
    return path


def _edge_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "storewave", "edge", "run", *args]


def test_run_wav_decodes_the_file_sends_every_frame_and_exits(
    tmp_path: Path, broker: Mosquitto, hub: AckingHub, rng: np.random.Generator
) -> None:
    rate = 44100
    audio = (rng.standard_normal(rate * 4) * 10 ** (-60 / 20)).astype(np.float32)
    for i, code in enumerate(TOKENS):
        frame = synthesize_frame(code, rate, -18.0)
        start = int((0.3 + i * 1.2) * rate)
        audio[start : start + frame.size] += frame
    write_wav(tmp_path / "store.wav", audio, rate)
    toml = _node_toml(tmp_path, broker)
    out = subprocess.run(
        _edge_run("--config", str(toml), "--wav", str(tmp_path / "store.wav")),
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [e.body.code for e in hub.of_type("detection")] == [to_hex(c) for c in TOKENS]
    assert hub.statuses[-1] == (NODE_ID, {"state": "offline", "boot": 1})


def test_run_sim_hears_its_own_beacon_and_sigterm_exits_cleanly(
    tmp_path: Path, broker: Mosquitto, hub: AckingHub
) -> None:
    config = NodeConfig(
        version=1,
        emit=EmitSchedule(enabled=True, level_dbfs=-12.0, period_s=0.6),
        beacon=BeaconKey(short_id=321, key_hex="ab" * 16),
    )
    hub.publish(node_topic(NODE_ID, NodeLeaf.CONFIG), config.to_bytes(), retain=True)
    proc = subprocess.Popen(
        _edge_run("--config", str(_node_toml(tmp_path, broker)), "--sim"),
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: hub.of_type("detection"), timeout_s=20, what="the simulated beacon")
        heard = hub.of_type("detection")[0].body
        assert int(heard.code, 16) >> MAC_BITS == 321
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    wait_for(lambda: hub.statuses[-1][1]["state"] == "offline", what="offline after SIGTERM")
