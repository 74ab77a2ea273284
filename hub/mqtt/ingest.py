"""The MQTT ingest worker: subscribe, validate, commit in batches, THEN ack (broker and node).

paho's network thread only queues messages (``manual_ack=True``: the broker's PUBACK
waits); a writer thread commits batches through :class:`hub.mqtt.store.BatchWriter`,
then sends the PUBACKs and each node's :class:`storewave.wire.Ack`. A message that
never got committed is never acknowledged, so the broker redelivers it (and the node
resends it) and the unique (node, boot, seq) makes the redelivery a no-op.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from hub.mqtt import metrics
from hub.mqtt.hooks import NodeHooks, default_hooks
from hub.mqtt.store import BatchResult, BatchWriter, Incoming
from storewave.wire import HUB_STATUS_TOPIC, TOPIC_PREFIX, Ack, HubState, HubStatus, utc_now

log = logging.getLogger(__name__)

SHARE_GROUP = "hub"
# The node -> hub topics, subscribed at the highest QoS each is published with.
SUBSCRIPTIONS = (
    (f"{TOPIC_PREFIX}/nodes/+/events", 1),
    (f"{TOPIC_PREFIX}/nodes/+/telemetry", 0),
    (f"{TOPIC_PREFIX}/nodes/+/status", 1),
)
# Messages per transaction, at most: a batch is whatever is queued, so under light load
# it is small (no added latency) and under load it grows to this. Large enough to
# amortise a commit (fsync) and the per-statement round trips: 2,000 gave 58 -> 72 %
# (PostgreSQL) and 72 -> 87 % (SQLite) of the bare subscriber against 1,000 in one run
# (hub.mqtt.bench, loaded machine); a full batch still commits in tens of ms.
BATCH_MAX = 2000
# Unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum),
# per message a batch may hold: the ingest acks after each commit, so while one batch
# commits the broker can deliver the next one in full.
RECEIVE_MAXIMUM_PER_BATCH = 2
# A node is acked at most this often (latest seq wins): under load one Ack covers many
# events instead of one publish per event (with 1,000 busy nodes, 0.5 s meant 2,000 ack
# publishes/s, as many as the events). Nodes resend only after 10 s (edge default).
ACK_COALESCE_S = 2.0
# ... unless the node's committed seq has moved this far past its last Ack: a node
# draining a backlog keeps at most 1,000 events in flight (edge IN_FLIGHT_WINDOW), so
# acking only every 2 s would cap its drain at 500 events/s; an Ack every 250 events
# keeps the window open while a node at an ordinary rate is still acked every 2 s.
ACK_EARLY_SEQS = 250
# (node, boot) send times remembered before old ones are pruned.
MAX_ACK_TIMES = 100_000
# How long the writer waits for messages before flushing pending acks.
IDLE_POLL_S = 0.05
# The broker keeps our session (subscriptions, queued QoS 1) this long while we are
# gone, so a restarted hub picks up where it stopped.
SESSION_EXPIRY_S = 24 * 3600
# Keepalive: the broker notices a dead hub within 1.5x this.
KEEPALIVE_S = 30
# After a database error the batch is retried with growing pauses, up to this.
DB_RETRY_MAX_S = 5.0
# Reconnect back-off (paho's built-in) when the broker goes away (e.g. restarted).
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0


@dataclass(frozen=True)
class _Received:
    """A queued message plus what is needed to PUBACK it on the same connection."""

    incoming: Incoming
    mid: int
    qos: int
    generation: int


@dataclass
class IngestStats:
    """Running totals of one worker (also exported as Prometheus metrics)."""

    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    dead: int = 0
    batches: int = 0
    gaps: int = 0


class IngestWorker:
    """One ingest client: paho network thread + writer thread, sharing the subscription."""

    def __init__(
        self,
        url_host: str,
        url_port: int,
        credentials: tuple[str, str],
        engine: Engine,
        *,
        client_id: str = "storewave-hub-ingest-0",
        mqtt5: bool = True,
        hooks: NodeHooks | None = None,
        publish_hub_status: bool = True,
        batch_max: int = BATCH_MAX,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Configure the client; nothing connects until :meth:`start`.

        ``clock`` stamps ``received_at`` (the hub's clock, so a demo or test that moves
        time sees presence and last-seen on the same time line as its API).
        """
        self._clock = clock
        self.host, self.port = url_host, url_port
        self.mqtt5 = mqtt5
        self.publish_hub_status = publish_hub_status
        self.batch_max = batch_max
        self.writer = BatchWriter(engine, hooks or default_hooks())
        self.stats = IngestStats()
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._generation = 0
        self._pending_acks: dict[tuple[str, int], int] = {}
        self._ack_sent_at: dict[tuple[str, int], float] = {}
        self._ack_sent_seq: dict[tuple[str, int], int] = {}
        self._thread: threading.Thread | None = None
        self.client = self._make_client(client_id, credentials)

    def _make_client(self, client_id: str, credentials: tuple[str, str]) -> mqtt.Client:
        """A paho 2.x client with manual acks, a persistent session and a Last Will."""
        protocol = mqtt.MQTTv5 if self.mqtt5 else mqtt.MQTTv311
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if self.mqtt5 else False,
            manual_ack=True,
        )
        client.username_pw_set(*credentials)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(0)
        if self.publish_hub_status:
            will = HubStatus(state=HubState.OFFLINE).to_bytes()
            client.will_set(HUB_STATUS_TOPIC, will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> IngestWorker:
        """Connect, subscribe and start the writer; raise TimeoutError if never connected."""
        props = None
        if self.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = min(65535, RECEIVE_MAXIMUM_PER_BATCH * self.batch_max)
        self.client.connect_async(
            self.host, self.port, keepalive=KEEPALIVE_S, clean_start=False, properties=props
        )
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"ingest could not connect to {self.host}:{self.port}")
        return self

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Unsubscribe, commit and ack what was received, publish hub offline, disconnect."""
        if self._connected.is_set():
            self.client.unsubscribe([self._topic(t) for t, _ in SUBSCRIPTIONS])
        deadline = time.monotonic() + drain_timeout_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(IDLE_POLL_S)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(drain_timeout_s)
        self._flush_acks(force=True)
        if self.publish_hub_status and self._connected.is_set():
            info = self.client.publish(
                HUB_STATUS_TOPIC, HubStatus(state=HubState.OFFLINE).to_bytes(), qos=1, retain=True
            )
            try:
                info.wait_for_publish(drain_timeout_s)
            except (RuntimeError, ValueError):  # connection lost meanwhile: the Will says it
                log.warning("hub offline status not delivered; the broker's Last Will covers it")
        self.client.disconnect()
        self.client.loop_stop()
        log.info("ingest stopped", extra={"stored": self.stats.stored, "dead": self.stats.dead})

    @property
    def connected(self) -> bool:
        """Whether the client is connected right now."""
        return self._connected.is_set()

    # ------------------------------------------------------------ paho callbacks

    def _topic(self, topic: str) -> str:
        """The shared-subscription form of ``topic`` when the broker speaks MQTT 5."""
        return f"$share/{SHARE_GROUP}/{topic}" if self.mqtt5 else topic

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, rc: object,
                    _p: object = None) -> None:
        """Subscribe (again) and announce the hub online."""
        if getattr(rc, "is_failure", False):
            log.error("ingest connection refused: %s", rc)
            return
        self._generation += 1
        if self.mqtt5:
            subs = [(self._topic(t), SubscribeOptions(qos=q)) for t, q in SUBSCRIPTIONS]
        else:
            subs = [(t, q) for t, q in SUBSCRIPTIONS]
        client.subscribe(subs)
        if self.publish_hub_status:
            client.publish(HUB_STATUS_TOPIC, HubStatus(state=HubState.ONLINE).to_bytes(), 1, True)
        self._connected.set()
        log.info("ingest connected", extra={"generation": self._generation})

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: object,
                       _p: object = None) -> None:
        """Note the loss; paho reconnects by itself and unacked messages come again."""
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("ingest disconnected: %s", rc)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        """Queue the message for the writer; nothing is acknowledged here."""
        incoming = Incoming(msg.topic, bytes(msg.payload), self._clock(), bool(msg.retain))
        self._queue.put(_Received(incoming, msg.mid, msg.qos, self._generation))

    # ------------------------------------------------------------ writer thread

    def _run(self) -> None:
        """Take batches off the queue, commit, then ack, until stopped and drained."""
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._take_batch()
            metrics.QUEUE_DEPTH.set(self._queue.qsize())
            if batch:
                self._commit_and_ack(batch)
            self._flush_acks()

    def _take_batch(self) -> list[_Received]:
        """Whatever is queued, up to ``batch_max``; waits briefly only when idle."""
        try:
            batch = [self._queue.get(timeout=IDLE_POLL_S)]
        except queue.Empty:
            return []
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit_and_ack(self, batch: list[_Received]) -> None:
        """Commit (retrying while the database is down), then PUBACK and queue node acks."""
        pause = RECONNECT_MIN_S
        while True:
            try:
                result = self.writer.write([r.incoming for r in batch])
                break
            except OperationalError:
                log.exception("database unavailable; batch kept unacknowledged, retrying")
                self.writer.cursors.clear()
                if self._stop.wait(pause):
                    return  # not acked: the broker redelivers after we reconnect
                pause = min(pause * 2, DB_RETRY_MAX_S)
        self._record(result, len(batch))
        for received in batch:
            if received.qos > 0 and received.generation == self._generation:
                self.client.ack(received.mid, received.qos)
        self._pending_acks.update(result.acks)

    def _record(self, result: BatchResult, size: int) -> None:
        """Update stats and metrics after a commit."""
        self.stats.batches += 1
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.statuses += result.statuses
        self.stats.dead += result.dead
        self.stats.gaps += len(result.gaps)
        metrics.BATCH_SIZE.observe(size)
        metrics.MESSAGES.labels("stored").inc(result.stored)
        metrics.MESSAGES.labels("duplicate").inc(result.duplicates)
        metrics.MESSAGES.labels("status").inc(result.statuses)
        metrics.MESSAGES.labels("dead").inc(result.dead)
        metrics.DEAD_LETTERS.inc(result.dead)
        metrics.SEQ_GAPS.inc(len(result.gaps))
        for gap in result.gaps:
            log.warning(
                "seq gap", extra={"node": gap.node, "boot": gap.boot,
                                  "first": gap.first_missing, "last": gap.last_missing},
            )

    def _flush_acks(self, force: bool = False) -> None:
        """Publish each node's Ack unless one went out within ACK_COALESCE_S."""
        if not self._pending_acks:
            return
        now = time.monotonic()
        for key, seq in list(self._pending_acks.items()):
            recent = now - self._ack_sent_at.get(key, 0.0) < ACK_COALESCE_S
            far = seq - self._ack_sent_seq.get(key, -1) >= ACK_EARLY_SEQS
            if not force and recent and not far:
                continue
            node, boot = key
            payload = Ack(boot=boot, seq=seq).to_bytes()
            self.client.publish(f"{TOPIC_PREFIX}/nodes/{node}/ack", payload, qos=1)
            self._ack_sent_at[key] = now
            self._ack_sent_seq[key] = seq
            del self._pending_acks[key]
        if len(self._ack_sent_at) > MAX_ACK_TIMES:
            self._ack_sent_at = {
                k: t for k, t in self._ack_sent_at.items() if now - t < ACK_COALESCE_S
            }
            self._ack_sent_seq = {
                k: s for k, s in self._ack_sent_seq.items() if k in self._ack_sent_at
            }
