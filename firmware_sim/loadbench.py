"""Load benchmark: the fleet simulator against a whole hub, ramping until the hub falls behind.

``storewave bench load`` (or ``python -m firmware_sim.loadbench run``). For each database
(SQLite, PostgreSQL) and broker (Mosquitto, the embedded amqtt) a fresh hub runs in its
own process (``hub.runtime.serve``: managed broker, ingest with the registry hooks,
timers, HTTP API) with 1,000 nodes over 200 stores in its registry and accounts on its
broker. The fleet simulator (firmware_sim.fleet) then publishes at a realistic rate and
at growing rates, a step each, while phones check in over HTTP at a fixed open-loop rate.

Per step: events/s the hub committed and acked (over publishing plus the drain beyond
the hub's deliberate 2 s ack coalescing), the ingest lag (hub receipt minus the node's
timestamp, p50/p99), how long the last acks took after publishing stopped, and the p99
check-in latency measured from each request's scheduled time. A step where the hub
acked under 90% of what the broker took, or needed more than a few seconds to drain,
is where it fell behind; the ramp stops there.
The baseline, measured in the same run, is the realistic step's offered load: the
sustained figure is reported as headroom over it. Writes ``tests/bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from firmware_sim.fleet import FleetCounts, FleetOptions, node_ids, run_fleet

RESULTS = Path(__file__).resolve().parents[1] / "tests" / "bench" / "results" / "load.json"
NODES = 1_000
STORES = 200
# A realistic busy hour: a node reports a phone token or beacon hearing every ~6 s and a
# heartbeat every 30 s, so about 0.2 messages/s per node (200/s for the fleet).
REALISTIC_RATE = 0.2
# Per-node rates of the ramp after the realistic step (messages/s per node).
RAMP = (0.5, 1.0, 2.0, 4.0, 8.0)
STEP_S = 12.0
# The fleet waits this long after publishing for the last acks (the hub coalesces acks
# for 2 s, so a hub that keeps up drains in 2-3 s).
GRACE_S = 15.0
# A step is "behind" when the hub acked less than this share of what the fleet sent...
KEPT_UP_SHARE = 0.90
# ...or needed longer than this after publishing stopped to ack the rest.
KEPT_UP_DRAIN_S = 6.0
# Phones checking in over HTTP during every step (open loop, requests/s).
CHECKIN_RATE = 20.0
CHECKIN_CONNECTIONS = 8
# A check-in with no answer after this long counts as failed (status 0).
CHECKIN_TIMEOUT_S = 30.0
# Targets: the realistic load with the ingest lag under two seconds, and check-ins as
# fast as the check-in benchmark's goal (hub.bench_checkins.TARGET_P99_MS) under load.
TARGET_LAG_P99_S = 2.0
FLEET_PROCS = 2
HUB_READY_TIMEOUT_S = 120.0
PG_URL_ENV = "STOREWAVE_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER_ENV = "STOREWAVE_LOAD_BROKER"
# The hub process logs errors only (its log is in the scenario's folder); set this to
# WARNING or INFO to see more.
LOG_LEVEL_ENV = "STOREWAVE_LOAD_HUB_LOG_LEVEL"


def _free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- preparation


def _register_fleet(url: str, nodes: int, stores: int, crypto: Any) -> dict[str, str]:
    """Stores ``store-0001``... and their nodes in the registry; return node passwords."""
    from hub.db import make_engine
    from hub.models.registry import Node, Store
    from hub.mqtt.credentials import hash_password

    engine = make_engine(url)
    ids = node_ids(nodes, stores)
    passwords = {node: f"load-{node}-pw" for node in ids}
    now = datetime.now(UTC)
    with Session(engine) as session:
        template = session.execute(select(Store).order_by(Store.id)).scalars().first()
        assert template is not None, "the seeds made no store"
        fields = template.model_dump()
        for i in range(stores):
            sid = f"store-{i + 1:04d}"
            session.add(Store(**{**fields, "id": sid, "name": f"Load store {i + 1}",
                                 "opening_hours": {}, "capacity": 100_000}))
        session.flush()
        for node in ids:
            session.add(Node(id=node, store_id=node.rsplit("-", 1)[0],
                             password_hash=hash_password(passwords[node]), created_at=now))
        session.commit()
    engine.dispose()
    return passwords


def _broker_accounts(broker_dir: Path, passwords: dict[str, str], port: int) -> None:
    """Write the broker's password file (all nodes at once) and its port before it starts."""
    from hub.mqtt.credentials import CredentialStore, hash_password

    store = CredentialStore(broker_dir)
    for node, password in passwords.items():
        store._users[node] = hash_password(password)  # one file write, not a thousand
    store._save()
    (broker_dir / "port").write_text(f"{port}\n")


def _pg_database(name: str) -> str | None:
    """A fresh database on the PostgreSQL server of the test suites, or None."""
    from hub.mqtt.bench import _pg_database as fresh

    return fresh(os.environ.get(PG_URL_ENV, DEFAULT_PG_URL), name)


def _drop_pg_database(url: str) -> None:
    """Drop the scenario's database."""
    admin = create_engine(os.environ.get(PG_URL_ENV, DEFAULT_PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


# ---------------------------------------------------------------- the hub process


def hub_main() -> None:
    """Child process: the real hub (``hub.runtime.serve``) on the settings in the env."""
    from hub.runtime import serve
    from storewave.logs import setup_logging
    from storewave.settings import HubSettings

    setup_logging(os.environ.get(LOG_LEVEL_ENV, "ERROR"))
    serve(HubSettings.load(), os.environ[BROKER_ENV])


def _start_hub(data_dir: Path, url: str, broker: str, http_port: int,
               secret: str) -> subprocess.Popen[bytes]:
    """Start the hub process and wait until its API says the database is ready."""
    env = {
        **os.environ,
        "STOREWAVE_HUB__DATA_DIR": str(data_dir),
        "STOREWAVE_HUB__DATABASE_URL": url,
        "STOREWAVE_HUB__SECRET_KEY": secret,
        "STOREWAVE_HUB__PORT": str(http_port),
        "STOREWAVE_LOG__LEVEL": "ERROR",
        BROKER_ENV: broker,
    }
    log_file = (data_dir / "hub.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim.loadbench", "hub"], env=env,
                            stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + HUB_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({proc.returncode}); see {data_dir / 'hub.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the hub was not ready within {HUB_READY_TIMEOUT_S} s")


def _stop_hub(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the hub drains its ingest), SIGKILL if it hangs."""
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- one step


def _percentile(values: list[float], p: float) -> float | None:
    """The ``p`` percentile of ``values`` (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _next_seqs(url: str, boot: int) -> dict[str, int]:
    """Per node, the seq after the highest one stored for ``boot`` (where the next step
    starts, so the hub sees one continuous stream per node)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT node, max(seq) FROM mqtt_event WHERE boot = :boot GROUP BY node"),
                {"boot": boot},
            ).all()
    finally:
        engine.dispose()
    return {str(node): int(top) + 1 for node, top in rows}


def _lag_s(url: str, boot: int, since: datetime) -> tuple[float | None, float | None, int, int]:
    """Ingest lag of the step's events (hub receipt minus node timestamp): p50, p99, rows;
    and the dead letters so far."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT ts, received_at FROM mqtt_event WHERE boot = :boot"), {"boot": boot}
            ).all()
            dead = int(conn.execute(text("SELECT count(*) FROM dead_letter")).scalar_one())
    finally:
        engine.dispose()

    def aware(value: Any) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    stamped = [(aware(r[0]), aware(r[1])) for r in rows]
    lags = [(got - ts).total_seconds() for ts, got in stamped if ts >= since]
    p50, p99 = _percentile(lags, 0.50), _percentile(lags, 0.99)
    return (None if p50 is None else round(p50, 3), None if p99 is None else round(p99, 3),
            len(lags), dead)


class _Checkins:
    """Phones checking in at a fixed open-loop rate on a thread, started on demand."""

    def __init__(self, port: int, population: tuple[list[str], dict[int, bytes], list[int]],
                 rate: float, seconds: float) -> None:
        """Remember what to send; :meth:`start` sends it."""
        self.port, self.population, self.rate, self.seconds = port, population, rate, seconds
        self.result: dict[str, Any] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """Open loop; a request that fails (reset, refused) counts as status 0, not a crash."""
        try:
            self.result = asyncio.run(self._open_loop())
        except Exception as exc:  # reported in the step, not fatal to the ramp
            self.result = {"error": f"{type(exc).__name__}: {exc}"}

    async def _open_loop(self) -> dict[str, Any]:
        """Send at the fixed rate; latency from each request's scheduled send time (the
        check-in benchmark's method, hub.bench_checkins, with failures counted)."""
        from hub.bench_checkins import _checkin_request, _Conn

        tokens, keys, stores = self.population
        total = int(self.rate * self.seconds)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        jobs: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

        async def worker() -> None:
            conn = _Conn("127.0.0.1", self.port)
            while (job := await jobs.get()) is not None:
                i, scheduled = job
                body, token = _checkin_request(tokens, keys, stores, i)
                try:
                    status = await asyncio.wait_for(
                        conn.request("POST", "/v1/checkins", body, token), CHECKIN_TIMEOUT_S
                    )
                except (OSError, asyncio.IncompleteReadError, ValueError):  # timeouts too
                    status, conn = 0, _Conn("127.0.0.1", self.port)
                latencies.append(time.perf_counter() - scheduled)
                statuses[status] = statuses.get(status, 0) + 1

        workers = [asyncio.create_task(worker()) for _ in range(CHECKIN_CONNECTIONS)]
        start = time.perf_counter() + 0.1
        for i in range(total):
            scheduled = start + i / self.rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            jobs.put_nowait((i, scheduled))
        for _ in workers:
            jobs.put_nowait(None)
        await asyncio.gather(*workers)
        p99 = _percentile(latencies, 0.99)
        return {"requests": total, "statuses": statuses,
                "p50_ms": round(_percentile(latencies, 0.5) * 1000, 1) if latencies else None,
                "p99_ms": None if p99 is None else round(p99 * 1000, 1)}

    def join(self) -> dict[str, Any]:
        """Wait for the run to finish; its figures."""
        if self._thread is not None:
            self._thread.join(self.seconds + 60)
        return self.result


def run_step(broker_url: str, passwords: dict[str, str], nodes: int, stores: int, rate: float,
             boot: int, first_seqs: dict[str, int], db_url: str, http_port: int,
             population: tuple[list[str], dict[int, bytes], list[int]],
             step_s: float = STEP_S) -> dict[str, Any]:
    """One fleet run at ``rate`` messages/s per node, with check-ins alongside."""
    checkins = _Checkins(http_port, population, CHECKIN_RATE, step_s)

    def progress(counts: FleetCounts) -> None:
        if counts.sent:  # the fleet is publishing: phones start checking in
            checkins.start()

    opts = FleetOptions(broker_url=broker_url, nodes=nodes, stores=stores, rate=rate,
                        duration_s=step_s, grace_s=GRACE_S, credentials=passwords,
                        procs=min(FLEET_PROCS, nodes), boot=boot, first_seqs=first_seqs)
    started = datetime.now(UTC)
    counts = run_fleet(opts, progress)
    checkins.start()  # no progress seen (a very short step): still measure
    checkin = checkins.join()
    lag_p50, lag_p99, stored, dead = _lag_s(db_url, boot, started)
    from hub.mqtt.ingest import ACK_COALESCE_S

    offered = nodes * rate
    # The hub holds each node's ack up to ACK_COALESCE_S on purpose; that wait is not
    # work it fell behind on, so it is not counted against the rate.
    busy_s = counts.publish_s + max(0.0, counts.drain_s - ACK_COALESCE_S)
    sustained = counts.acked / busy_s if busy_s > 0 else 0.0
    # Messages the broker never took (``failed``: no PUBACK, or the connection dropped;
    # the simulator has no outbox to resend them) are the broker's loss, reported on
    # their own; the hub is judged on what reached it.
    taken = counts.sent - counts.failed
    kept_up = counts.acked >= KEPT_UP_SHARE * taken and counts.drain_s <= KEPT_UP_DRAIN_S
    step = {
        "rate_per_node": rate,
        "offered_events_per_s": offered,
        "fleet_sent_per_s": round(counts.sent / counts.publish_s, 1) if counts.publish_s else 0,
        "sent": counts.sent,
        "acked": counts.acked,
        "failed": counts.failed,
        "stored_rows": stored,
        "dead_letters_total": dead,
        "publish_s": round(counts.publish_s, 2),
        "drain_s": round(counts.drain_s, 2),
        "sustained_events_per_s": round(sustained, 1),
        "ingest_lag_p50_s": lag_p50,
        "ingest_lag_p99_s": lag_p99,
        "checkin_p99_ms": checkin.get("p99_ms"),
        "checkin": checkin,
        "kept_up": kept_up,
    }
    print(f"  {rate:5.2f}/node ({offered:6.0f}/s offered): sent {counts.sent} failed "
          f"{counts.failed} acked {counts.acked} stored {stored} dead {dead}; sustained "
          f"{sustained:7.1f}/s drain {counts.drain_s:5.1f} s lag p99 {lag_p99} s check-in "
          f"p99 {checkin.get('p99_ms')} ms {'' if kept_up else 'BEHIND'}", flush=True)
    return step


# ---------------------------------------------------------------- one scenario


def run_scenario(database: str, broker: str, work: Path, nodes: int, stores: int,
                 rates: list[float], step_s: float) -> dict[str, Any]:
    """A fresh hub on ``database`` with ``broker``; the ramp until it falls behind."""
    from hub.bench_checkins import BENCH_SECRET, _prepare
    from hub.mqtt.broker import MANAGED_BROKER_DIRS
    from hub.security import HubCrypto

    name = f"{database}_{broker}"
    print(f"== {name}", flush=True)
    data_dir = work / name
    data_dir.mkdir(parents=True)
    if database == "sqlite":
        url: str | None = f"sqlite:///{data_dir / 'hub.sqlite3'}"
    else:
        url = _pg_database(f"sw_load_{os.getpid()}_{broker}")
        if url is None:
            return {"name": name, "database": database, "broker": broker,
                    "status": "not run", "note": "PostgreSQL not reachable"}
    crypto = HubCrypto(BENCH_SECRET.encode())
    population = _prepare(url, crypto)  # seeds, open stores, 1,500 signed-in customers
    passwords = _register_fleet(url, nodes, stores, crypto)
    broker_port = _free_port()
    _broker_accounts(data_dir / MANAGED_BROKER_DIRS[0 if broker == "mosquitto" else 1],
                     passwords, broker_port)
    http_port = _free_port()
    proc = _start_hub(data_dir, url, broker, http_port, BENCH_SECRET)
    steps: list[dict[str, Any]] = []
    try:
        # One boot for the whole ramp, each step continuing the seqs: the nodes reconnect
        # between steps like after a network blip, not a reboot, so the registry is warm.
        for i, rate in enumerate(rates):
            first_seqs = _next_seqs(url, 1) if i else {}
            steps.append(run_step(f"mqtt://127.0.0.1:{broker_port}", passwords, nodes, stores,
                                  rate, 1, first_seqs, url, http_port, population, step_s))
            if not steps[-1]["kept_up"]:
                break
    finally:
        _stop_hub(proc)
        if database == "postgresql":
            _drop_pg_database(url)
    kept = [s for s in steps if s["kept_up"]]
    realistic = steps[0]  # steps is never empty: the ramp runs at least one
    return {
        "name": name,
        "database": database,
        "broker": broker,
        "status": "ok",
        "steps": steps,
        "realistic": {
            "offered_events_per_s": realistic["offered_events_per_s"],
            "kept_up": realistic["kept_up"],
            "ingest_lag_p99_s": realistic["ingest_lag_p99_s"],
            "checkin_p99_ms": realistic["checkin_p99_ms"],
        },
        # The most the hub committed and acked per second in any step: where it kept up,
        # what was offered; where it fell behind, what it managed (its capacity here).
        "sustained_events_per_s": max(s["sustained_events_per_s"] for s in steps),
        "kept_up_to_events_per_s": max((s["offered_events_per_s"] for s in kept), default=0.0),
        "fell_behind_at_events_per_s": None if steps[-1]["kept_up"]
        else steps[-1]["offered_events_per_s"],
    }


def run_load_bench(nodes: int = NODES, stores: int = STORES, step_s: float = STEP_S,
                   rates: list[float] | None = None, databases: tuple[str, ...] = (
                       "sqlite", "postgresql"), brokers: tuple[str, ...] = ("mosquitto", "amqtt"),
                   out: Path = RESULTS) -> dict[str, Any]:
    """Every database x broker scenario; print a summary and write ``out`` (JSON)."""
    from hub.bench_checkins import TARGET_P99_MS
    from hub.mqtt.broker import mosquitto_binary

    rates = rates or [REALISTIC_RATE, *RAMP]
    work = Path(tempfile.mkdtemp(prefix="sw-load-bench-"))
    scenarios = []
    for broker in brokers:
        if broker == "mosquitto" and mosquitto_binary() is None:
            scenarios += [{"name": f"{db}_mosquitto", "status": "not run",
                           "note": "mosquitto not installed"} for db in databases]
            continue
        for database in databases:
            try:
                scenarios.append(run_scenario(database, broker, work, nodes, stores, rates,
                                              step_s))
            except Exception as exc:  # one scenario failing must not lose the others
                print(f"{database}_{broker} FAILED: {exc}", flush=True)
                scenarios.append({"name": f"{database}_{broker}", "status": "failed",
                                  "note": f"{type(exc).__name__}: {exc}"[:500]})
    report = {
        "benchmark": "fleet load against a whole hub (ingest + registry hooks + HTTP API)",
        "command": "storewave bench load",
        "load": {"nodes": nodes, "stores": stores, "step_s": step_s,
                 "rates_per_node": rates, "realistic_rate_per_node": rates[0],
                 "checkin_rate_per_s": CHECKIN_RATE, "fleet_processes": FLEET_PROCS},
        "targets": {"realistic_kept_up": True, "ingest_lag_p99_s": TARGET_LAG_P99_S,
                    "checkin_p99_ms": TARGET_P99_MS},
        "behind_when": {"acked_share_below": KEPT_UP_SHARE, "drain_s_above": KEPT_UP_DRAIN_S},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                    "note": "the fleet simulator, broker, hub and database share these cores"},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scenarios": scenarios,
    }
    for s in scenarios:
        if s.get("status") == "ok":
            print(f"{s['name']:24s} sustained {s['sustained_events_per_s']:8.1f} ev/s "
                  f"(x{s['sustained_events_per_s'] / s['realistic']['offered_events_per_s']:.1f} "
                  f"the realistic load); behind at {s['fell_behind_at_events_per_s']} ev/s; "
                  f"realistic: lag p99 {s['realistic']['ingest_lag_p99_s']} s, check-in p99 "
                  f"{s['realistic']['checkin_p99_ms']} ms")
        else:
            print(f"{s['name']:24s} {s['status']}: {s.get('note', '')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


def main(argv: list[str] | None = None) -> None:
    """``run`` (the benchmark) or ``hub`` (the hub process a scenario starts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    run = sub.add_parser("run")
    run.add_argument("--nodes", type=int, default=NODES)
    run.add_argument("--stores", type=int, default=STORES)
    run.add_argument("--step-s", type=float, default=STEP_S)
    sub.add_parser("hub")
    args = parser.parse_args(argv)
    if args.role == "hub":
        hub_main()
    else:
        run_load_bench(args.nodes, args.stores, args.step_s)


if __name__ == "__main__":
    main()
