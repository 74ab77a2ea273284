"""Edge node benchmark: detection-to-publish latency, outbox drain after reconnect, CPU at 48 kHz.

Run with ``storewave bench edge`` (or ``python -m edge.agent.bench``). Each figure comes
with a baseline measured in the same run on the same broker, and the ratio:

* latency: detection -> arrival at a subscriber, vs a bare paho QoS 1 publish -> arrival;
* drain: 10,000 events queued during an outage, connect -> all acked, at the configured
  rate limit and unthrottled, vs a bare paho client publishing 10,000 QoS 1 messages;
* CPU: the whole node listening to a simulated 48 kHz sound card, vs the sound card alone.

Writes ``tests/bench/results/edge.json``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent.agent import Agent
from edge.agent.nodeconfig import ConfigStore
from edge.agent.outbox import EventKind, Outbox
from edge.agent.settings import AgentOptions
from edge.audio.blockqueue import BlockQueue
from edge.audio.emitter import Emitter
from edge.audio.sim import SimAudio
from edge.audio.sources import ArraySource
from edge.modem.codes import KIND_BIT, to_hex
from edge.modem.detector import StreamingDetector
from edge.modem.synth import synthesize_frame
from storewave.wire import (
    Ack,
    BeaconKey,
    CodeKind,
    DetectionBody,
    DetectionEvent,
    EmitSchedule,
    NodeConfig,
    parse_event,
    utc_now,
)

RESULTS = Path(__file__).resolve().parents[2] / "tests" / "bench" / "results"
NODE, NODE_PW, HUB, HUB_PW = "bench-node-1", "bench-node-pw-1", "bench-hub", "bench-hub-pw-1"
RATE = 48000
# Frames for the latency run: one every 0.6 s (a frame is 0.47 s of air, so they never
# overlap), at a comfortable -18 dBFS over -60 dBFS noise.
LATENCY_FRAMES = 40
LATENCY_SPACING_S = 0.6
DRAIN_EVENTS = 10_000
CPU_SECONDS = 15.0
# The bench hub acks like the real one: the highest contiguous seq, coalesced.
ACK_EVERY_S = 0.05
# Bound on any wait in the bench, so a broken run ends instead of hanging.
WAIT_S = 120.0
TARGETS = {"latency_p50_ms": 100.0, "latency_p99_ms": 250.0, "drain_s": 10.0, "cpu_pct": 10.0}


def _free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (bounded by WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench timed out waiting for {what}")
        time.sleep(0.005)


@contextmanager
def mosquitto() -> Iterator[int]:
    """A private Mosquitto with password + ACL files on a free port; yields the port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory(prefix="sw-edge-bench-") as tmp:
        d = Path(tmp)
        (d / "passwd").write_text("")
        for user, pw in ((NODE, NODE_PW), (HUB, HUB_PW)):
            subprocess.run(["mosquitto_passwd", "-b", str(d / "passwd"), user, pw], check=True)
        (d / "acl").write_text(
            f"user {HUB}\ntopic readwrite sw/v1/#\n\n"
            "pattern write sw/v1/nodes/%u/#\npattern read sw/v1/nodes/%u/#\n"
        )
        port = _free_port()
        (d / "m.conf").write_text(
            ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {d / 'passwd'}\nacl_file {d / 'acl'}\n"
            "max_queued_messages 100000\nmax_inflight_messages 1000\n"
        )
        proc = subprocess.Popen([binary, "-c", str(d / "m.conf")], stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "mosquitto")
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class BenchHub:
    """Subscriber that timestamps arrivals and acks the highest contiguous seq per boot."""

    def __init__(self, port: int, ack: bool = True) -> None:
        """Connect and subscribe to every node's events (and a raw baseline topic)."""
        self.arrivals: dict[str, float] = {}
        self.raw_arrivals: dict[bytes, float] = {}
        self._seqs: dict[int, set[int]] = {}
        self._contiguous: dict[int, int] = {}
        self._lock = threading.Lock()
        self._ack = ack
        self._stop = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=HUB)
        self.client.username_pw_set(HUB, HUB_PW)
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("sw/v1/nodes/+/events", 1), ("sw/v1/bench/raw", 1)])
        self.client.loop_start()
        self._acker = threading.Thread(target=self._ack_loop, daemon=True)
        self._acker.start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        """Timestamp; remember the seq for the acker."""
        now = time.perf_counter()
        if msg.topic == "sw/v1/bench/raw":
            self.raw_arrivals[bytes(msg.payload)] = now
            return
        event = parse_event(msg.payload)
        with self._lock:
            if isinstance(event, DetectionEvent):
                self.arrivals.setdefault(event.body.code, now)
            self._seqs.setdefault(event.boot, set()).add(event.seq)

    def _ack_loop(self) -> None:
        """Every ACK_EVERY_S, ack each boot's highest contiguous seq (as the hub does)."""
        while not self._stop.wait(ACK_EVERY_S):
            if not self._ack:
                continue
            with self._lock:
                updates = []
                for boot, seqs in self._seqs.items():
                    cur = self._contiguous.get(boot, -1)
                    start = cur
                    while cur + 1 in seqs:
                        cur += 1
                        seqs.discard(cur)
                    if cur != start:
                        self._contiguous[boot] = cur
                        updates.append(Ack(boot=boot, seq=cur))
            for ack in updates:
                self.client.publish(f"sw/v1/nodes/{NODE}/ack", ack.to_bytes(), qos=1)

    def close(self) -> None:
        """Stop acking and disconnect."""
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()


class TimedDetector:
    """The real detector, recording when each detection came out of it (perf_counter)."""

    def __init__(self, inner: StreamingDetector) -> None:
        """Wrap ``inner``."""
        self.inner = inner
        self.detected_at: dict[str, float] = {}

    @property
    def noise_floor_dbfs(self) -> float:
        """The wrapped detector's noise floor."""
        return self.inner.noise_floor_dbfs

    def feed(self, block: Any) -> list[Any]:
        """Feed, then timestamp what was found."""
        found = self.inner.feed(block)
        now = time.perf_counter()
        for det in found:
            self.detected_at.setdefault(to_hex(det.payload), now)
        return found

    def flush(self) -> list[Any]:
        """Flush the wrapped detector."""
        return self.inner.flush()


def _options(port: int, data_dir: Path, **kw: Any) -> AgentOptions:
    """Bench node options."""
    return AgentOptions(
        node_id=NODE, password=NODE_PW, broker_url=f"mqtt://127.0.0.1:{port}",
        data_dir=data_dir, sample_rate=RATE, **kw,
    )  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100)."""
    return float(np.percentile(np.asarray(values), q))


def bench_latency(port: int, tmp: Path) -> dict[str, Any]:
    """Detection -> subscriber latency for real frames, vs a bare paho publish."""
    rng = np.random.default_rng(20131001)
    codes = [KIND_BIT | (0x10000 + i) for i in range(LATENCY_FRAMES)]
    audio = rng.standard_normal(int((LATENCY_FRAMES * LATENCY_SPACING_S + 1) * RATE)) * 1e-3
    audio = audio.astype(np.float32)
    for i, code in enumerate(codes):
        frame = synthesize_frame(code, RATE, -18.0)
        start = int((0.2 + i * LATENCY_SPACING_S) * RATE)
        audio[start : start + frame.size] += frame
    hub = BenchHub(port)
    detector = TimedDetector(StreamingDetector(RATE))
    agent = Agent(
        _options(port, tmp / "latency"), ArraySource(audio, RATE, realtime=True), detector
    )
    agent.start()
    try:
        _wait(lambda: agent.link.connected, "link")
        _wait(lambda: agent.audio_finished, "audio")
        _wait(lambda: len(hub.arrivals) >= len(detector.detected_at), "arrivals")
    finally:
        agent.stop()
    lat = [
        1000 * (hub.arrivals[c] - t) for c, t in detector.detected_at.items() if c in hub.arrivals
    ]
    # Baseline: the same number of QoS 1 messages from a bare paho client, paced alike.
    raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=NODE + "-raw")
    raw.username_pw_set(HUB, HUB_PW)
    raw.connect("127.0.0.1", port)
    raw.loop_start()
    sent: dict[bytes, float] = {}
    for i in range(LATENCY_FRAMES):
        key = f"{i:06d}".encode()
        sent[key] = time.perf_counter()
        raw.publish("sw/v1/bench/raw", key, qos=1)
        time.sleep(0.01)  # pacing the baseline like sparse detections, not waiting
    _wait(lambda: len(hub.raw_arrivals) >= LATENCY_FRAMES, "raw arrivals")
    raw.disconnect()
    raw.loop_stop()
    hub.close()
    base = [1000 * (hub.raw_arrivals[k] - t) for k, t in sent.items()]
    p50, p99, b50 = _pct(lat, 50), _pct(lat, 99), _pct(base, 50)
    return {
        "frames_played": LATENCY_FRAMES,
        "frames_detected": len(detector.detected_at),
        "latency_p50_ms": round(p50, 2),
        "latency_p99_ms": round(p99, 2),
        "latency_max_ms": round(max(lat), 2),
        "baseline_bare_paho_p50_ms": round(b50, 2),
        "baseline_bare_paho_p99_ms": round(_pct(base, 99), 2),
        "ratio_p50_to_baseline": round(p50 / b50, 2) if b50 > 0 else None,
    }


def _fill_outbox(path: Path, count: int) -> None:
    """``count`` detections queued during an outage (what a node has on reconnect)."""
    box = Outbox(path, soft_cap=count * 2, hard_cap=count * 4)
    box._db.execute("BEGIN")
    for i in range(count):
        body = DetectionBody(
            code=to_hex(KIND_BIT | i), kind=CodeKind.TOKEN, count=1, snr_db=20.0, confidence=0.9,
            first_heard=utc_now(),
        )  # fmt: skip
        event = DetectionEvent(node=NODE, boot=0, seq=0, body=body).to_bytes()
        box._db.execute(
            "INSERT INTO outbox (kind, leaf, created, envelope) VALUES (?, ?, ?, ?)",
            (EventKind.DETECTION.value, "events", time.time(), event),
        )
    box._db.execute("COMMIT")
    box.close()


def _drain_once(port: int, data_dir: Path, rate: float) -> float:
    """Seconds from a node's connect to its whole backlog acked."""
    _fill_outbox(data_dir / "outbox.sqlite3", DRAIN_EVENTS)
    hub = BenchHub(port)
    agent = Agent(
        _options(port, data_dir, drain_rate_per_s=rate),
        ArraySource(np.zeros(0, np.float32), RATE),
        StreamingDetector(RATE),
    )
    agent.start()
    try:
        _wait(lambda: agent.link.connected, "link")
        t0 = time.perf_counter()
        _wait(agent.drained, "drain")
        elapsed = time.perf_counter() - t0
    finally:
        agent.stop(flush_timeout_s=0)
        hub.close()
    return elapsed


def bench_drain(port: int, tmp: Path) -> dict[str, Any]:
    """10,000 queued events: connect -> all acked, throttled and not, vs bare paho."""
    default_rate = AgentOptions.__dataclass_fields__["drain_rate_per_s"].default
    throttled = _drain_once(port, tmp / "drain-default", float(default_rate))  # type: ignore[arg-type]
    unthrottled = _drain_once(port, tmp / "drain-fast", 1e9)
    hub = BenchHub(port, ack=False)
    raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=NODE + "-raw")
    raw.username_pw_set(HUB, HUB_PW)
    raw.max_inflight_messages_set(200)
    raw.connect("127.0.0.1", port)
    raw.loop_start()
    t0 = time.perf_counter()
    for i in range(DRAIN_EVENTS):
        raw.publish("sw/v1/bench/raw", f"{i:06d}".encode(), qos=1)
    _wait(lambda: len(hub.raw_arrivals) >= DRAIN_EVENTS, "raw drain")
    bare = time.perf_counter() - t0
    raw.disconnect()
    raw.loop_stop()
    hub.close()
    return {
        "events": DRAIN_EVENTS,
        "drain_rate_limit_per_s": default_rate,
        "drain_s": round(throttled, 2),
        "drain_unthrottled_s": round(unthrottled, 2),
        "baseline_bare_paho_s": round(bare, 2),
        "ratio_unthrottled_to_baseline": round(unthrottled / bare, 2),
    }


def _cpu_pct(seconds: float, work: Callable[[], Callable[[], None]]) -> float:
    """Process CPU (all threads) as % of one core while ``work`` runs for ``seconds``."""
    stop = work()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    time.sleep(seconds)  # the thing measured runs on its own threads meanwhile
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    stop()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return 100.0 * cpu / (t1 - t0)


def bench_cpu(port: int, tmp: Path) -> dict[str, Any]:
    """CPU of a listening node at 48 kHz vs the simulated sound card alone."""

    def card_only() -> Callable[[], None]:
        """Start the simulated card alone; return its stop."""
        room, blocks = SimAudio(RATE), BlockQueue(10_000)
        room.start(blocks)
        return room.stop

    def node() -> Callable[[], None]:
        """Start a whole node on the simulated card; return its stop."""
        # Operating conditions: the node emits its beacon every second into the room
        # and hears it back, so the detector decodes a frame a second, not just noise.
        config = NodeConfig(
            version=1,
            emit=EmitSchedule(enabled=True, period_s=1.0),
            beacon=BeaconKey(short_id=1, key_hex="5a" * 16),
        )
        ConfigStore(tmp / "cpu" / "config.json").save(config)
        room = SimAudio(RATE)
        agent = Agent(
            _options(port, tmp / "cpu"), room, StreamingDetector(RATE), Emitter(room, RATE)
        )
        agent.start()
        stats["agent"] = agent
        return lambda: agent.stop(flush_timeout_s=0)

    stats: dict[str, Agent] = {}

    base = _cpu_pct(CPU_SECONDS, card_only)
    full = _cpu_pct(CPU_SECONDS, node)
    return {
        "seconds": CPU_SECONDS,
        "cpu_pct": round(full, 2),
        "baseline_sound_card_only_pct": round(base, 2),
        "node_minus_card_pct": round(full - base, 2),
        "frames_heard": stats["agent"].frames_heard,
        "overruns": stats["agent"].blocks.overruns,
    }


def run_edge_bench(out_dir: Path = RESULTS) -> dict[str, Any]:
    """Run every edge benchmark, print the figures, write edge.json."""
    with tempfile.TemporaryDirectory(prefix="sw-edge-bench-") as tmp, mosquitto() as port:
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
            "targets": TARGETS,
            "latency": bench_latency(port, Path(tmp)),
            "drain": bench_drain(port, Path(tmp)),
            "cpu": bench_cpu(port, Path(tmp)),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "edge.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


def main() -> None:
    """``python -m edge.agent.bench``."""
    from storewave.logs import setup_logging

    setup_logging("ERROR")
    run_edge_bench()


if __name__ == "__main__":
    main()
