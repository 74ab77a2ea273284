"""Fleet simulator: many simulated nodes publishing detections/telemetry to a broker, for load.

No audio: each node publishes real wire envelopes (correct node/boot/seq) at a seeded
Poisson rate and counts what came back. One process drives its share of the nodes
with a single selector loop over paho clients (paho's external-loop API), so a
thousand nodes cost one thread; ``procs`` > 1 splits the fleet across processes.

Counts per run: ``sent`` (messages due: every one the schedule produced), ``puback``
(the broker took it), ``acked`` (the hub's ``ack`` topic covered it: the only proof of a
commit), ``failed`` (due while the node was offline, refused by the client, or never
taken by the broker). A node that loses the broker reconnects once a second; it has no
outbox (that is the edge agent's job), so a message due while offline is failed, and
sequence numbers are only used by messages that went out (no gaps).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import random
import resource
import selectors
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.modem import codes
from firmware_sim.link import KEEPALIVE_S, MAX_INFLIGHT, BrokerAddress, parse_broker_url
from storewave import wire
from storewave.wire import NodeLeaf, NodeState, NodeStatus, node_topic

log = logging.getLogger(__name__)

# Hard bounds so a typo cannot melt the machine: nodes per run, messages per run, time.
MAX_NODES = 20_000
MAX_DURATION_S = 3600.0
# After publishing stops, wait this long at most for the last acks.
DEFAULT_GRACE_S = 10.0
# One in this many messages is telemetry (the rest detections) unless told otherwise.
DEFAULT_TELEMETRY_SHARE = 0.1
# Connection set-up: each node needs a CONNACK within this time or counts as failed.
CONNECT_TIMEOUT_S = 30.0
# Selector wake-up granularity; paho's keepalive housekeeping runs once a second.
LOOP_TICK_S = 0.005
MISC_EVERY_S = 1.0
# File descriptors per paho client: TCP socket plus its wake-up socket pair.
FDS_PER_CLIENT = 3


@dataclass(frozen=True)
class FleetOptions:
    """What to run: N nodes over M stores at ``rate`` msgs/s per node for ``duration_s``."""

    broker_url: str
    nodes: int = 10
    stores: int = 2
    rate: float = 1.0
    duration_s: float = 10.0
    max_messages: int | None = None
    telemetry_share: float = DEFAULT_TELEMETRY_SHARE
    grace_s: float = DEFAULT_GRACE_S
    password: str = "sim"
    credentials: dict[str, str] = field(default_factory=dict)
    procs: int = 1
    seed: int = 20131001
    boot: int = 1
    # First seq per node (absent: 0): a later run with the same boot continues where an
    # earlier one stopped (a reconnect, not a reboot), with no gap and no duplicate.
    first_seqs: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse unbounded or impossible runs with a clear message."""
        parse_broker_url(self.broker_url)
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"nodes must be 1..{MAX_NODES}")
        if not 1 <= self.stores <= self.nodes:
            raise ValueError("stores must be between 1 and the number of nodes")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in (0, {MAX_DURATION_S}]")
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.max_messages is not None and self.max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        if not 1 <= self.procs <= self.nodes:
            raise ValueError("procs must be between 1 and the number of nodes")


@dataclass
class FleetCounts:
    """Totals of one run (or one shard)."""

    nodes: int = 0
    connected: int = 0
    sent: int = 0
    puback: int = 0
    acked: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    # Seconds spent publishing (connections up to the last scheduled message), then
    # waiting for the hub's last acks: a hub that keeps up drains in about a round trip.
    publish_s: float = 0.0
    drain_s: float = 0.0

    def add(self, other: FleetCounts) -> None:
        """Accumulate a shard's counts (times are the longest shard's)."""
        for name in ("nodes", "connected", "sent", "puback", "acked", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("elapsed_s", "publish_s", "drain_s"):
            setattr(self, name, max(getattr(self, name), getattr(other, name)))

    @property
    def unacked(self) -> int:
        """Sent, not failed, but no hub ack seen."""
        return max(0, self.sent - self.acked - self.failed)


def node_ids(nodes: int, stores: int) -> list[str]:
    """``store-0001-n1`` ...: nodes spread round-robin over stores."""
    return [f"store-{i % stores + 1:04d}-n{i // stores + 1}" for i in range(nodes)]


class _SimNode:
    """One node's client and counters inside a shard's selector loop."""

    def __init__(
        self, node_id: str, password: str, boot: int, rng: random.Random, first_seq: int = 0
    ) -> None:
        """A paho client for ``node_id`` with its Last Will; not connected yet."""
        self.node_id = node_id
        self.boot = boot
        self.rng = rng
        self.first_seq = first_seq
        self.seq = first_seq - 1
        self.connected = False
        self.ever_connected = False
        self.attempted = 0
        self.failed = 0
        self.connects = 0
        self.sock: Any = None  # the socket registered with the shard's selector
        self.acked_seq = first_seq - 1
        self.pending: set[int] = set()  # mids sent, PUBACK not yet seen
        self.pubacks = 0
        self.next_at = 0.0
        self.short_id = rng.randrange(codes.MAX_SHORT_ID)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=node_id, clean_session=True)
        client.username_pw_set(node_id, password)
        will = NodeStatus(state=NodeState.LOST, boot=boot).to_bytes()
        client.will_set(node_topic(node_id, NodeLeaf.STATUS), will, qos=1, retain=True)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.client = client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        """Connected: subscribe to our acks and publish the birth message."""
        if reason.is_failure:
            log.warning("connect refused", extra={"node": self.node_id, "reason": str(reason)})
            return
        self.connected = self.ever_connected = True
        self.connects += 1
        client.subscribe(node_topic(self.node_id, NodeLeaf.ACK), qos=1)
        birth = NodeStatus(state=NodeState.ONLINE, boot=self.boot).to_bytes()
        client.publish(node_topic(self.node_id, NodeLeaf.STATUS), birth, qos=1, retain=True)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        """Lost the broker: messages due now fail until we reconnect."""
        self.connected = False

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        """An ack from the hub: remember the highest seq it covers for our boot."""
        try:
            ack: wire.Ack = wire.parse_message(wire.Ack, bytes(message.payload))
        except wire.WireError:
            return
        if ack.boot == self.boot:
            self.acked_seq = max(self.acked_seq, min(ack.seq, self.seq))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        """The broker took a QoS 1 message (PUBACK)."""
        if mid in self.pending:
            self.pending.discard(mid)
            self.pubacks += 1

    def publish_one(self, telemetry_share: float, uptime_s: float) -> bool:
        """Publish the next envelope; False (and counted failed) when it could not go."""
        self.seq += 1
        now = datetime.now(UTC)
        if self.rng.random() < telemetry_share:
            env: Any = wire.TelemetryEvent(
                node=self.node_id,
                boot=self.boot,
                seq=self.seq,
                ts=now,
                body=wire.TelemetryBody(uptime_s=uptime_s, version="fleet-sim", queue_depth=0),
            )
            leaf, qos = NodeLeaf.TELEMETRY, 0
        else:
            code = codes.beacon_code(self.short_id, b"fleet-sim-key-16b", self.seq)
            env = wire.DetectionEvent(
                node=self.node_id,
                boot=self.boot,
                seq=self.seq,
                ts=now,
                body=wire.DetectionBody(
                    code=codes.to_hex(code),
                    kind=wire.CodeKind.BEACON,
                    snr_db=round(self.rng.uniform(0.0, 25.0), 1),
                    confidence=round(self.rng.uniform(0.6, 1.0), 2),
                    first_heard=now,
                ),
            )
            leaf, qos = NodeLeaf.EVENTS, 1
        info = self.client.publish(node_topic(self.node_id, leaf), env.to_bytes(), qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.seq -= 1  # never left: the next message reuses the number (no gap)
            self.failed += 1
            return False
        if qos:
            self.pending.add(info.mid)
        else:
            self.pubacks += 1  # QoS 0 has no PUBACK: the socket write is all there is
        return True


def _raise_fd_limit(clients: int) -> None:
    """Raise the soft file-descriptor limit for this many clients (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = clients * FDS_PER_CLIENT + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def run_shard(
    opts: FleetOptions,
    ids: list[str],
    shard: int,
    progress: Callable[[FleetCounts], None] | None = None,
) -> FleetCounts:
    """Drive ``ids`` through connect, publish for ``duration_s``, drain acks, disconnect."""
    _raise_fd_limit(len(ids))
    address: BrokerAddress = parse_broker_url(opts.broker_url)
    rng = random.Random(f"{opts.seed}:{shard}")  # one independent stream per shard
    nodes = [
        _SimNode(n, opts.credentials.get(n, opts.password), opts.boot,
                 random.Random(rng.random()), opts.first_seqs.get(n, 0))
        for n in ids
    ]
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    for node in nodes:
        try:
            node.client.connect(address.host, address.port, KEEPALIVE_S)
        except OSError as exc:
            raise ConnectionError(f"cannot reach the broker at {opts.broker_url}: {exc}") from exc
        _register(sel, node)
    budget = opts.max_messages
    sent = 0

    def pump(timeout: float) -> None:
        """Read what arrived, write what is queued."""
        for key, _ in sel.select(timeout):
            key.data.client.loop_read()
        for node in nodes:
            if node.client.want_write():
                node.client.loop_write()

    deadline = start + CONNECT_TIMEOUT_S
    while not all(n.ever_connected for n in nodes) and time.monotonic() < deadline:
        pump(LOOP_TICK_S)
    t0 = time.monotonic()
    for node in nodes:
        node.next_at = t0 + node.rng.expovariate(opts.rate)
    stop_at = t0 + opts.duration_s
    next_misc = t0 + MISC_EVERY_S
    counts = FleetCounts(nodes=len(nodes))
    while True:
        now = time.monotonic()
        if now >= stop_at or (budget is not None and sent >= budget):
            break
        for node in nodes:
            while node.next_at <= now and (budget is None or sent < budget):
                node.attempted += 1
                if node.connected:
                    node.publish_one(opts.telemetry_share, now - t0)
                else:
                    node.failed += 1  # no outbox here: a message due while offline is lost
                sent += 1
                node.next_at += node.rng.expovariate(opts.rate)
        pump(LOOP_TICK_S)
        if now >= next_misc:
            for node in nodes:
                node.client.loop_misc()
                _reconnect_if_lost(sel, node)
            next_misc = now + MISC_EVERY_S
            if progress is not None:
                progress(_tally(nodes, counts, time.monotonic() - start))
    publish_end = time.monotonic()
    drain_until = publish_end + opts.grace_s
    while time.monotonic() < drain_until and any(
        n.connected and (n.acked_seq < n.seq or n.pending) for n in nodes
    ):
        pump(LOOP_TICK_S)
    drained_at = time.monotonic()
    for node in nodes:
        if node.connected:
            offline = NodeStatus(state=NodeState.OFFLINE, boot=node.boot).to_bytes()
            node.client.publish(node_topic(node.node_id, NodeLeaf.STATUS), offline, 1, True)
            node.client.loop_write()
            node.client.disconnect()
    sel.close()
    final = _tally(nodes, counts, time.monotonic() - start, final=True)
    final.publish_s, final.drain_s = publish_end - t0, drained_at - publish_end
    return final


def _register(sel: selectors.BaseSelector, node: _SimNode) -> None:
    """Watch the node's current socket (dropping a dead one first)."""
    if node.sock is not None:
        with contextlib.suppress(KeyError, ValueError):  # gone with its closed socket
            sel.unregister(node.sock)
        node.sock = None
    sock = node.client.socket()
    if sock is not None:
        sel.register(sock, selectors.EVENT_READ, node)
        node.sock = sock


def _reconnect_if_lost(sel: selectors.BaseSelector, node: _SimNode) -> None:
    """A node that lost its broker tries again once a second (the broker may be back)."""
    if node.connected or not node.ever_connected:
        return
    try:
        node.client.reconnect()
    except OSError:
        _register(sel, node)  # forget the dead socket; try again next second
        return
    _register(sel, node)


def _tally(
    nodes: list[_SimNode], counts: FleetCounts, elapsed_s: float, final: bool = False
) -> FleetCounts:
    """Sum the nodes' counters; at the end, QoS 1 messages the broker never took failed."""
    out = FleetCounts(nodes=counts.nodes, elapsed_s=elapsed_s)
    for n in nodes:
        out.connected += n.ever_connected
        out.sent += n.attempted
        out.puback += n.pubacks
        out.acked += n.acked_seq - n.first_seq + 1
        out.failed += n.failed + (len(n.pending) if final else 0)
    return out


def _shard_main(opts: FleetOptions, ids: list[str], shard: int, results: Any, live: Any) -> None:
    """Process entry: run a shard, report progress into ``live`` and the result to ``results``."""

    def progress(c: FleetCounts) -> None:
        """Share this shard's counts with the parent process."""
        live[shard] = json.dumps(asdict(c))

    try:
        results.put((shard, asdict(run_shard(opts, ids, shard, progress)), None))
    except Exception as exc:  # reported to the parent, which raises it with context
        results.put((shard, None, f"{type(exc).__name__}: {exc}"))


def run_fleet(
    opts: FleetOptions, progress: Callable[[FleetCounts], None] | None = None
) -> FleetCounts:
    """Run the whole fleet (in ``opts.procs`` processes) and return the totals."""
    ids = node_ids(opts.nodes, opts.stores)
    if opts.procs == 1:
        return run_shard(opts, ids, 0, progress)
    shards = [ids[i :: opts.procs] for i in range(opts.procs)]
    per_shard_budget = None if opts.max_messages is None else -(-opts.max_messages // opts.procs)
    shard_opts = FleetOptions(**{**asdict(opts), "max_messages": per_shard_budget, "procs": 1})
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    results = manager.Queue()
    live = manager.dict()
    procs = [
        ctx.Process(target=_shard_main, args=(shard_opts, s, i, results, live), daemon=True)
        for i, s in enumerate(shards)
    ]
    for p in procs:
        p.start()
    total = FleetCounts()
    errors: list[str] = []
    done = 0
    limit = time.monotonic() + opts.duration_s + opts.grace_s + CONNECT_TIMEOUT_S + 30.0
    while done < len(procs) and time.monotonic() < limit:
        try:
            shard, counts, error = results.get(timeout=1.0)
        except Exception:  # queue.Empty through the manager proxy
            if progress is not None and live:
                agg = FleetCounts()
                for v in list(live.values()):
                    agg.add(FleetCounts(**json.loads(v)))
                progress(agg)
            continue
        done += 1
        if error:
            errors.append(f"shard {shard}: {error}")
        else:
            total.add(FleetCounts(**counts))
    for p in procs:
        p.join(timeout=5.0)
        if p.is_alive():
            p.terminate()
    manager.shutdown()
    if errors:
        raise RuntimeError("; ".join(errors))
    return total
