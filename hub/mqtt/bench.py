"""Ingest benchmark: N publisher processes through a broker into (a) a counting subscriber,
(b) the ingest on SQLite, (c) on PostgreSQL, (d) a one-commit-per-message baseline on
each database, (e) amqtt.

``storewave bench ingest`` (or ``python -m hub.mqtt.bench run``). Every scenario gets a
fresh broker and database; the figure is sustained events/s from the publishers' start
to the last event counted/committed, and zero loss is checked by counting rows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.mqtt.broker import ManagedBroker, free_port
from hub.mqtt.publisher import OutboxPublisher, detection_payload
from hub.mqtt.worker import PASSWORD_ENV

RESULTS = Path(__file__).resolve().parents[2] / "tests" / "bench" / "results" / "ingest.json"
PG_URL_ENV = "STOREWAVE_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# A scenario that has not finished in this long is reported as failed, not waited on.
SCENARIO_TIMEOUT_S = 300.0
# Publishers resend what is unacked this long after its last send (an edge ack timeout;
# generous, so a slow consumer measures its own speed, not a resend storm).
RESEND_AFTER_S = 120.0
POLL_S = 0.05
# The naive baselines commit one message at a time (~70-400 events/s here, PostgreSQL
# slowest): they get this many events per node, so a run stays well inside the
# scenario timeout and the publishers' resend delay (a resend storm would slow it more)
# while still lasting long enough (tens of seconds) not to catch one quiet moment.
NAIVE_EVENTS_PER_NODE = 5
# Interleaved repetitions of (a), (b), (c): on a shared machine the best of each is
# the fairest figure (a neighbour's burst hits a single run, not all of them).
ROUNDS = 3
READY = "ready"


@dataclass
class Scenario:
    """One measured run."""

    name: str
    events: int
    seconds: float
    events_per_s: float
    stored: int | None = None
    lost: int | None = None
    resends: int = 0
    note: str = ""


# ---------------------------------------------------------------- child processes


def _publisher(args: tuple[str, int, tuple[str, str], list[str], int, bool, bool],
               start: Any, results: Any) -> None:
    """One publisher process: its nodes' events as fast as QoS 1 allows, then acks."""
    host, port, creds, nodes, per_node, want_acks, mqtt5 = args
    payloads = [(n, s, detection_payload(n, 1, s)) for s in range(per_node) for n in nodes]
    pub = OutboxPublisher(host, port, creds, nodes, client_id=f"bench-{nodes[0]}",
                          mqtt5=mqtt5).start()
    results.put({"ready": True})
    start.wait()
    infos = []
    for node, seq, data in payloads:
        if want_acks:
            pub.publish(node, seq, data)
        else:
            infos.append(pub.client.publish(f"sw/v1/nodes/{node}/events", data, qos=1))
    for info in infos:  # every PUBACK in before disconnecting
        info.wait_for_publish(SCENARIO_TIMEOUT_S)
    acked = pub.wait_all_acked(SCENARIO_TIMEOUT_S, RESEND_AFTER_S) if want_acks else True
    results.put({"acked": acked, "resends": pub.resends, "done": time.monotonic()})
    pub.stop()


def counter_main(host: str, port: int, user: str, total: int, mqtt5: bool) -> None:
    """(a): a bare paho subscriber that only counts; prints the monotonic time of the last."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-counter",
                         protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311)
    client.username_pw_set(user, os.environ[PASSWORD_ENV])
    seen = [0]

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        seen[0] += 1
        if seen[0] == total:
            print(f"done {time.monotonic()}", flush=True)

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe("sw/v1/nodes/+/events", 1)
    client.on_subscribe = lambda *_a: print(READY, flush=True)  # nothing published is missed
    client.connect(host, port)
    client.loop_start()
    sys.stdin.read()  # until the parent closes our stdin
    client.loop_stop()


def naive_main(host: str, port: int, user: str, db_url: str) -> None:
    """(d): validate, insert and COMMIT each message on its own, then ack it."""
    from hub.db import make_engine
    from hub.mqtt.hooks import NullHooks
    from hub.mqtt.store import BatchWriter, Incoming
    from storewave.wire import utc_now

    writer = BatchWriter(make_engine(db_url), NullHooks())
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-naive",
                         protocol=mqtt.MQTTv5, manual_ack=True)
    client.username_pw_set(user, os.environ[PASSWORD_ENV])

    def on_message(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        result = writer.write([Incoming(m.topic, bytes(m.payload), utc_now())])
        c.ack(m.mid, m.qos)
        for (node, boot), seq in result.acks.items():
            c.publish(f"sw/v1/nodes/{node}/ack", f'{{"boot":{boot},"seq":{seq}}}', qos=1)

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe("sw/v1/nodes/+/events", 1)
    client.connect(host, port)
    client.loop_start()
    print(READY, flush=True)
    sys.stdin.read()
    client.loop_stop()


# ---------------------------------------------------------------- orchestration


def _spawn(argv: list[str], password: str) -> subprocess.Popen[str]:
    """Start a consumer process and wait for its ready line."""
    env = dict(os.environ, **{PASSWORD_ENV: password})
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line not in (READY, "ingest-ready"):
        proc.kill()
        raise RuntimeError(f"consumer did not start: {argv[2:4]}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop a consumer (close stdin, SIGTERM) and reap it."""
    if proc.stdin:
        proc.stdin.close()
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _count_rows(db_url: str) -> int:
    """Rows in mqtt_event (``-1`` while the table does not exist yet)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM mqtt_event")).scalar_one())
    except Exception:  # table not created yet by the consumer's migration
        return -1
    finally:
        engine.dispose()


class Bench:
    """Runs the scenarios with the same publishers, node counts and events."""

    def __init__(self, processes: int, nodes_per_process: int, per_node: int, work: Path) -> None:
        """Fix the load: ``processes`` x ``nodes_per_process`` nodes x ``per_node`` events."""
        self.processes = processes
        self.nodes_per_process = nodes_per_process
        self.per_node = per_node
        self.total = processes * nodes_per_process * per_node
        self.work = work

    def _broker(self, kind: str, name: str) -> ManagedBroker:
        """A fresh managed broker for one scenario."""
        from hub.mqtt.amqtt_broker import AmqttBroker
        from hub.mqtt.broker import mosquitto_binary
        from hub.mqtt.mosquitto import MosquittoBroker

        directory = self.work / name
        if kind == "amqtt":
            return AmqttBroker(directory, free_port()).start()
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto not installed")
        return MosquittoBroker(directory, binary, free_port()).start()

    def _publish(
        self, broker: ManagedBroker, want_acks: bool, mqtt5: bool
    ) -> tuple[Any, Any, list[Any]]:
        """Start publisher processes, blocked on a start event."""
        ctx = mp.get_context("spawn")
        start, results = ctx.Event(), ctx.Queue()
        procs = []
        for p in range(self.processes):
            nodes = [f"bench-p{p}-n{i:03d}" for i in range(self.nodes_per_process)]
            args = (broker.host, broker.port, broker.hub_credentials, nodes, self.per_node,
                    want_acks, mqtt5)
            proc = ctx.Process(target=_publisher, args=(args, start, results), daemon=True)
            proc.start()
            procs.append(proc)
        for _ in procs:  # connected and payloads built: the clock starts after this
            results.get(timeout=SCENARIO_TIMEOUT_S)
        return start, results, procs

    def _collect(self, results: Any, procs: list[Any]) -> tuple[bool, int]:
        """Wait for every publisher; (all acked, total resends)."""
        reports = [results.get(timeout=SCENARIO_TIMEOUT_S) for _ in procs]
        for proc in procs:
            proc.join(30)
        return all(r["acked"] for r in reports), sum(r["resends"] for r in reports)

    def limit(self) -> Scenario:
        """(a) bare paho subscriber counting QoS 1 messages."""
        broker = self._broker("mosquitto", "a")
        try:
            counter = _spawn([sys.executable, "-m", __spec__.name if __spec__ else "hub.mqtt.bench",
                              "counter", "--port", str(broker.port), "--user",
                              broker.hub_credentials[0], "--total", str(self.total)],
                             broker.hub_credentials[1])
            start, results, procs = self._publish(broker, want_acks=False, mqtt5=True)
            t0 = time.monotonic()
            start.set()
            assert counter.stdout is not None
            line = counter.stdout.readline().split()
            self._collect(results, procs)
            _stop(counter)
            seconds = float(line[1]) - t0
            return Scenario("a_bare_paho_counter", self.total, seconds, self.total / seconds,
                            note="counts only: no validation, no database, no acks")
        finally:
            broker.stop()

    def ingest(
        self, name: str, db_url: str, kind: str = "mosquitto", naive: bool = False
    ) -> Scenario:
        """(b)-(e): the ingest (or the naive baseline) into ``db_url``, zero loss checked."""
        from hub.db import make_engine
        from hub.mqtt.schema import upgrade_ingest

        upgrade_ingest(make_engine(db_url))
        broker = self._broker(kind, name)
        mqtt5 = kind != "amqtt"
        try:
            if naive:
                argv = [sys.executable, "-m", "hub.mqtt.bench", "naive", "--port",
                        str(broker.port), "--user", broker.hub_credentials[0], "--db", db_url]
            else:
                argv = [sys.executable, "-m", "hub.mqtt.worker", "--port", str(broker.port),
                        "--username", broker.hub_credentials[0], "--database-url", db_url,
                        "--no-hooks", "--no-hub-status"] + ([] if mqtt5 else ["--mqtt3"])
            consumer = _spawn(argv, broker.hub_credentials[1])
            start, results, procs = self._publish(broker, want_acks=True, mqtt5=mqtt5)
            t0 = time.monotonic()
            start.set()
            deadline = t0 + SCENARIO_TIMEOUT_S
            while _count_rows(db_url) < self.total and time.monotonic() < deadline:
                time.sleep(POLL_S)
            seconds = time.monotonic() - t0
            acked, resends = self._collect(results, procs)
            _stop(consumer)
            stored = _count_rows(db_url)
            print(f"{name}: {seconds:.1f} s, all acked after {time.monotonic() - t0:.1f} s",
                  flush=True)
            note = "all events acked to the publishers" if acked else "NOT all acked"
            return Scenario(name, self.total, seconds, self.total / seconds, stored,
                            self.total - stored, resends, note)
        finally:
            broker.stop()


def _pg_database(base_url: str, name: str) -> str | None:
    """A fresh PostgreSQL database ``name`` on ``base_url``'s server, or None if unreachable."""
    try:
        admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # no server: the scenario is reported as not run
        print(f"PostgreSQL not reachable ({type(exc).__name__}): scenario (c) NOT RUN")
        return None
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _database(scenario: str) -> str:
    """Which database a scenario name writes to (for the same-database naive ratio)."""
    return "postgresql" if scenario.endswith("postgresql") else "sqlite"


def run_ingest_bench(processes: int = 4, nodes_per_process: int = 250, per_node: int = 20,
                     out: Path = RESULTS, amqtt: bool = True,
                     rounds: int = ROUNDS) -> dict[str, Any]:
    """Run every scenario, print the table and ratios, write ``out`` (JSON).

    The machine is shared, so (a), (b) and (c) run ``rounds`` times interleaved, (a)
    once more at the end, and each scenario's best run is its figure: every ratio
    compares the best each path showed.
    """
    work = Path(tempfile.mkdtemp(prefix="sw-ingest-bench-"))
    base = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    bench = Bench(processes, nodes_per_process, per_node, work)
    naive_bench = Bench(processes, nodes_per_process, min(per_node, NAIVE_EVENTS_PER_NODE), work)
    runs: list[Scenario] = []
    pg_urls: list[str] = []
    # Each round's ingest runs against the limit measured just before them: a second
    # view that does not mix a quiet moment of one scenario with a busy one of another.
    paired: dict[str, list[float]] = {}
    for r in range(rounds):
        limit_now = bench.limit()
        round_runs = [bench.ingest("b_ingest_sqlite", f"sqlite:///{work / f'b{r}.sqlite3'}")]
        pg = _pg_database(base, f"sw_ingest_bench_{os.getpid()}_{r}")
        if pg:
            pg_urls.append(pg)
            round_runs.append(bench.ingest("c_ingest_postgresql", pg))
        runs += [limit_now, *round_runs]
        for run in round_runs:
            paired.setdefault(run.name, []).append(
                round(run.events_per_s / limit_now.events_per_s, 3))
    runs.append(naive_bench.ingest("d_naive_commit_per_message_sqlite",
                                   f"sqlite:///{work / 'd.sqlite3'}", naive=True))
    pg_naive = _pg_database(base, f"sw_ingest_bench_naive_{os.getpid()}") if pg_urls else None
    if pg_naive:
        pg_urls.append(pg_naive)
        runs.append(naive_bench.ingest("d_naive_commit_per_message_postgresql", pg_naive,
                                       naive=True))
    if amqtt:
        runs.append(bench.ingest("e_ingest_sqlite_via_amqtt", f"sqlite:///{work / 'e.sqlite3'}",
                                 kind="amqtt"))
    runs.append(bench.limit())
    best: dict[str, Scenario] = {}
    for run in runs:
        if run.name not in best or run.events_per_s > best[run.name].events_per_s:
            best[run.name] = run
    for name, chosen in best.items():  # a loss in any round is reported, not hidden
        losses = [r.lost for r in runs if r.name == name and r.lost is not None]
        if losses:
            chosen.lost = max(losses)
    limit = best["a_bare_paho_counter"].events_per_s
    # x_naive compares each scenario with the naive baseline on the same database.
    naive = {"sqlite": best["d_naive_commit_per_message_sqlite"].events_per_s}
    if "d_naive_commit_per_message_postgresql" in best:
        naive["postgresql"] = best["d_naive_commit_per_message_postgresql"].events_per_s
    ratios = {
        name: {"of_limit": round(r.events_per_s / limit, 3),
               "x_naive": round(r.events_per_s / naive.get(_database(name), naive["sqlite"]), 2)}
        for name, r in best.items()
    }
    report = {
        "benchmark": "mqtt ingest through a managed broker, QoS 1, zero loss",
        "load": {"publisher_processes": processes, "nodes_per_process": nodes_per_process,
                 "events_per_node": per_node, "events": bench.total,
                 "naive_events": naive_bench.total, "rounds": rounds},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 1)},
        "command": "storewave bench ingest",
        "scenarios": [asdict(r) for r in best.values()],
        "every_run": [{"name": r.name, "events_per_s": round(r.events_per_s, 1), "lost": r.lost}
                      for r in runs],
        "limit_events_per_s": round(limit, 1),
        "ratios": ratios,
        "paired_of_limit": {name: {"rounds": v, "median": statistics.median(v)}
                            for name, v in paired.items()},
    }
    for run in runs:
        print(f"  run {run.name:40s} {run.events_per_s:9.0f} ev/s")
    for name, r in best.items():
        lost = "" if r.lost is None else f" lost={r.lost}"
        print(f"{name:40s} {r.events_per_s:9.0f} ev/s  {ratios[name]['of_limit']:6.1%} of (a)"
              f"  {ratios[name]['x_naive']:5.2f}x (d, same db){lost}  resends={r.resends}")
    for name, v in paired.items():
        print(f"{name:40s} paired with the limit of its round: {v}, "
              f"median {statistics.median(v):.1%}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    for url in pg_urls:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()
    shutil.rmtree(work, ignore_errors=True)  # brokers' files and SQLite databases
    return report


def main(argv: list[str] | None = None) -> None:
    """``run`` (all scenarios) or one of the consumer roles the scenarios spawn."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    run = sub.add_parser("run")
    run.add_argument("--processes", type=int, default=4)
    run.add_argument("--nodes", type=int, default=250, help="nodes per publisher process")
    run.add_argument("--events", type=int, default=40, help="events per node")
    run.add_argument("--rounds", type=int, default=ROUNDS, help="repetitions of (a)-(c)")
    for role in ("counter", "naive"):
        p = sub.add_parser(role)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--total", type=int, default=0)
        p.add_argument("--db", default="")
        p.add_argument("--mqtt3", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "run":
        run_ingest_bench(args.processes, args.nodes, args.events, rounds=args.rounds)
    elif args.role == "counter":
        counter_main(args.host, args.port, args.user, args.total, not args.mqtt3)
    else:
        naive_main(args.host, args.port, args.user, args.db)


if __name__ == "__main__":
    main()
