"""Benchmark of POST /v1/checkins on one uvicorn worker: p99 at a fixed rate, and peak req/s.

Not a test. ``storewave bench checkins`` (or ``python -m hub.bench_checkins``) starts a
hub (SQLite by default, ``--database-url`` for PostgreSQL) in a uvicorn subprocess, signs
in customers, then (1) sends check-ins open-loop at ``--rate`` req/s (a 3 s warm-up, then
``--windows`` windows of ``--seconds``) and reports latency percentiles measured from each
request's *scheduled* send time (no coordinated omission), with the generator's own send
lag and the CPU other processes used meanwhile, (2) drives it closed-loop with
``--concurrency`` clients for the peak rate. The baseline,
measured in the same run on the same worker, is GET /healthz's peak: the framework's
ceiling, so the ratio says how much of it a verified, recorded check-in costs.
The load generator shares the machine's cores with the server; figures are conservative.
Its own CPU per request is reported next to the server's (it builds and signs each code).
``--workers N`` runs N uvicorn worker processes instead of one (server CPU is then the
whole process tree's) and writes ``..._<N>workers.json``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx  # only to poll readiness
from sqlmodel import Session, select

from edge.modem.codes import beacon_code, slot_of, to_hex
from hub.db import make_engine, migrate
from hub.models.customers import Customer, CustomerSession
from hub.models.registry import Beacon, Store
from hub.models.types import new_id
from hub.security import HubCrypto, new_token
from hub.seed import load_seeds
from hub.services.auth import SESSION_PREFIX, SESSION_PURPOSE
from storewave.settings import HubSettings

RESULTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "bench" / "results"
TARGET_P99_MS = 50.0  # the target at 200 req/s
# Each customer checks in a few times per minute at most (the per-customer limit is 10/min):
# three fixed-rate windows and the peak run stay well under it.
CUSTOMERS = 3000
STARTUP_TIMEOUT_S = 30.0
# Check-ins at the fixed rate before the measured windows (reported as "fixed_rate_warmup").
WARMUP_S = 3.0
BENCH_SECRET = "bench-only-secret-0123456789abcdef-0123456789"
MS = 1000.0


def _free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch_campaigns(session: Session, count: int, store_ids: list[str], now: datetime) -> None:
    """``count`` live campaigns over the seeded stores: check-in and first-visit points."""
    from hub.models.auth import Role
    from hub.models.campaigns import CampaignCreate, Transition
    from hub.services.auth import Principal
    from hub.services.campaigns import lifecycle

    # Two admins: the campaign engine wants a second person to approve (four eyes).
    author = Principal(role=Role.ADMIN, key_id="bench-author")
    approver = Principal(role=Role.ADMIN, key_id="bench-approver")
    for i in range(count):
        spec = {
            "name": f"bench {i}",
            "trigger": ("checkin", "first_visit")[i % 2],
            "reward": {"kind": "points", "points": 5},
            "where": {"stores": [store_ids[i % len(store_ids)]]},
            "priority": i % 7,
            "caps": {"per_customer_per_day": 1, "budget": 1_000_000},
        }
        campaign = lifecycle.create(session, author, CampaignCreate.model_validate(spec), now)
        session.flush()
        lifecycle.transition(session, approver, campaign.id, Transition.APPROVE, now)
        lifecycle.transition(session, author, campaign.id, Transition.LAUNCH, now)


def _prepare(
    url: str, crypto: HubCrypto, campaigns: int = 0
) -> tuple[list[str], dict[int, bytes], list[int]]:
    """Seed the registry, make every store always open and roomy, sign customers in."""
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        load_seeds(session, crypto=crypto)
        if campaigns:
            store_ids = list(session.exec(select(Store.id).order_by(Store.id)))
            _launch_campaigns(session, campaigns, store_ids, now)
        # The bench measures verification cost, not refusals: no closing time, no
        # capacity cap on a code shared by thousands of simulated customers.
        for store in session.exec(select(Store)):
            store.opening_hours, store.capacity = {}, 100_000
            session.add(store)
        tokens = []
        for _ in range(CUSTOMERS):
            cid = new_id("cus")
            session.add(
                Customer(
                    id=cid,
                    phone_hash=new_id("h"),
                    phone_enc="-",
                    created_at=now,
                    microphone_disclosure_version="bench",
                    microphone_accepted_at=now,
                )
            )
            session.flush()
            token, _ = new_token(SESSION_PREFIX)
            session.add(
                CustomerSession(
                    token_hash=crypto.keyed_hash(SESSION_PURPOSE, token),
                    customer_id=cid,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                )
            )
            tokens.append(token)
        session.commit()
        beacons = session.exec(select(Beacon).order_by(Beacon.short_id)).all()
        keys = {b.short_id: bytes.fromhex(crypto.decrypt(b.key_enc)) for b in beacons}
        # One store per customer (no impossible travel): the first beacon of each store.
        firsts: dict[str, int] = {}
        for beacon in beacons:
            firsts.setdefault(beacon.store_id, beacon.short_id)
    engine.dispose()
    return tokens, keys, sorted(firsts.values())


def _body(short_id: int, key: bytes, i: int) -> dict[str, Any]:
    """A live check-in body for beacon ``short_id``."""
    now = time.time()
    code = to_hex(beacon_code(short_id, key, slot_of(now)))
    heard = datetime.fromtimestamp(now, UTC).isoformat()
    return {"code": code, "heard_at": heard, "snr_db": 12.0, "device_id": f"bench-{i}"}


class _Conn:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for this benchmark.

    httpx's pool costs more CPU per request than the hub does on this 2-core machine,
    so the load generator would measure itself; raw asyncio streams cost ~50 us.
    """

    def __init__(self, host: str, port: int) -> None:
        """Remember where to connect."""
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", token: str = "") -> int:
        """Send one request and read the whole response; return its status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        assert self.reader is not None
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


def _checkin_request(
    tokens: list[str], keys: dict[int, bytes], stores: list[int], i: int
) -> tuple[bytes, str]:
    """Body and token of the ``i``-th check-in (customer ``i`` modulo the population)."""
    cust = i % len(tokens)
    short_id = stores[cust % len(stores)]
    return json.dumps(_body(short_id, keys[short_id], cust)).encode(), tokens[cust]


async def _open_loop(
    port: int,
    tokens: list[str],
    keys: dict[int, bytes],
    stores: list[int],
    rate: float,
    seconds: float,
    connections: int,
    first: int = 0,
) -> dict[str, Any]:
    """Send at a fixed rate; latency from each request's scheduled time.

    Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to the ones
    before it; a request that waits for a free connection, or for this generator itself
    (its event loop late, building the body), counts that wait as latency (no coordinated
    omission). ``send_lag``: how late the generator wrote each request after its due time,
    so a stall of the generator itself shows apart from the server's. ``first``: index of
    the first request (windows after the first use other customers' turn).
    """
    total = int(rate * seconds)
    latencies: list[float] = []
    send_lags: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def worker() -> None:
        conn = _Conn("127.0.0.1", port)
        while (job := await queue.get()) is not None:
            i, scheduled = job
            body, token = _checkin_request(tokens, keys, stores, i)
            send_lags.append(time.perf_counter() - scheduled)
            status = await conn.request("POST", "/v1/checkins", body, token)
            latencies.append(time.perf_counter() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter() + 0.1
    for i in range(total):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        queue.put_nowait((first + i, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {
        "requests": total,
        "achieved_rps": round(total / elapsed, 1),
        **_percentiles(latencies),
        "generator_send_lag_p99_ms": _percentiles(send_lags)["p99_ms"],
        "statuses": statuses,
        "_latencies": latencies,
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of ``samples`` (seconds) in ms."""
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * MS, 2)

    return {
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * MS, 2),
    }


def _machine_busy_s() -> float:
    """CPU seconds all cores have been busy so far (``/proc/stat``: all but idle, iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already counted in user time (proc(5)).
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _fixed_rate_window(
    server_pid: int,
    port: int,
    tokens: list[str],
    keys: dict[int, bytes],
    stores: list[int],
    rate: float,
    seconds: float,
    concurrency: int,
    first: int,
) -> dict[str, Any]:
    """One open-loop window with what else the machine did meanwhile.

    ``other_cpu_cores``: the machine's busy CPU during the window not spent by the server
    or this generator, in cores (0 on a quiet machine; on a 2-core box, 1.0 means the
    server and generator had one core between them). A local PostgreSQL server's own
    processes count as "other" here (they serve the check-ins).
    """
    load_before = os.getloadavg()[0]
    busy0, server0, own0 = _machine_busy_s(), _cpu_s(server_pid), time.process_time()
    wall0 = time.perf_counter()
    window = asyncio.run(_open_loop(port, tokens, keys, stores, rate, seconds, concurrency, first))
    wall = time.perf_counter() - wall0
    server = _cpu_s(server_pid) - server0
    own = time.process_time() - own0
    other = max(0.0, _machine_busy_s() - busy0 - server - own)
    window["server_cpu_ms_per_request"] = round(server / window["requests"] * MS, 2)
    window["load_generator_cpu_ms_per_request"] = round(own / window["requests"] * MS, 2)
    window["other_cpu_cores"] = round(other / wall, 2)
    window["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return window


async def _closed_loop(
    port: int, method: str, path: str, make: Any, concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` clients back to back for ``seconds``: completed requests per second."""
    done = 0
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        conn = _Conn("127.0.0.1", port)
        i = w
        while time.perf_counter() < deadline:
            body, token = make(i)
            status = await conn.request(method, path, body, token)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"rps": round(done / elapsed, 1), "requests": done, "statuses": statuses}


def run_checkins_bench(
    rate: float = 200.0,
    seconds: float = 15.0,
    peak_seconds: float = 10.0,
    concurrency: int = 32,
    database_url: str | None = None,
    out_dir: Path = RESULTS_DIR,
    campaigns: int = 0,
    workers: int = 1,
    windows: int = 3,
) -> dict[str, Any]:
    """Run the whole benchmark and write ``checkins.json``; return the figures.

    The fixed rate runs ``windows`` times ``seconds`` back to back: ``fixed_rate`` pools
    them (its p99 is the headline), ``fixed_rate_windows`` has each window's figures with
    what else the machine ran meanwhile, so a stall of another process shows as such.

    ``campaigns`` > 0 launches that many live campaigns first (the engine runs inside
    every check-in; a visit's first check-in earns points) and writes
    ``checkins[_postgresql]_campaigns.json`` instead. ``workers`` > 1 serves with that many
    uvicorn worker processes (``..._<N>workers.json``).
    """
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        url = database_url or f"sqlite:///{tmp}/hub.sqlite3"
        crypto = HubCrypto(BENCH_SECRET.encode())
        tokens, keys, stores = _prepare(url, crypto, campaigns)
        # This generator's heap (SQLAlchemy, the models, thousands of tokens) stays out of
        # its own cyclic GC's walks: a full collection here would delay the sends it is
        # due to make, and be counted as the server's latency.
        gc.collect()
        gc.freeze()
        port = _free_port()
        env = {
            **os.environ,
            "STOREWAVE_HUB__DATA_DIR": tmp,
            "STOREWAVE_HUB__DATABASE_URL": url,
            "STOREWAVE_HUB__SECRET_KEY": BENCH_SECRET,
            "STOREWAVE_LOG__LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "hub.bench_checkins:app_from_env",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, workers)
            cpu_before = _cpu_s(server.pid)
            healthz = asyncio.run(
                _closed_loop(
                    port, "GET", "/healthz", lambda i: (b"", ""), concurrency, peak_seconds
                )
            )
            healthz["server_cpu_ms_per_request"] = round(
                (_cpu_s(server.pid) - cpu_before) / healthz["requests"] * MS, 3
            )
            # Warm-up at the fixed rate, reported apart: the first check-ins of a fresh
            # worker fill its caches (beacon keys, compiled statements, the campaign index,
            # PostgreSQL's pool and prepared statements) and the first checkpoint copies
            # the seeded rows; the target is the steady state's p99.
            warmup = _fixed_rate_window(
                server.pid, port, tokens, keys, stores, rate, WARMUP_S, concurrency, 0
            )
            warmup.pop("_latencies")
            first = warmup["requests"]
            runs = [
                _fixed_rate_window(
                    server.pid,
                    port,
                    tokens,
                    keys,
                    stores,
                    rate,
                    seconds,
                    concurrency,
                    first + w * int(rate * seconds),
                )
                for w in range(windows)
            ]
            fixed = _pooled(runs)

            def make(i: int) -> tuple[bytes, str]:
                return _checkin_request(tokens, keys, stores, i)

            cpu_before = _cpu_s(server.pid)
            peak = asyncio.run(
                _closed_loop(port, "POST", "/v1/checkins", make, concurrency, peak_seconds)
            )
            # Server CPU per check-in: independent of how much of a core the shared
            # machine gave the worker, so it says what a dedicated core would carry.
            peak["server_cpu_ms_per_request"] = round(
                (_cpu_s(server.pid) - cpu_before) / peak["requests"] * MS, 2
            )
            peak["rps_per_dedicated_core"] = round(MS / peak["server_cpu_ms_per_request"], 1)
            # Latency at half the measured peak: what this worker sustains comfortably
            # on this machine, next to the figure at the target rate above.
            half_rate = max(1.0, round(peak["rps"] / 2, 1))
            at_half_peak = _fixed_rate_window(
                server.pid, port, tokens, keys, stores, half_rate, seconds, concurrency, 0
            )
            at_half_peak.pop("_latencies")
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "benchmark": "POST /v1/checkins, "
        + ("one uvicorn worker" if workers == 1 else f"{workers} uvicorn workers"),
        "workers": workers,
        "database": "postgresql" if database_url and "postgres" in database_url else "sqlite",
        "live_campaigns": campaigns,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        # The machine is shared; a load average above the core count means the hub got
        # only part of a core, and the figures say so.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "method": "open loop at a fixed rate from one asyncio generator process (keep-alive "
        "connections) on the same machine; latency from each request's scheduled send time, "
        "so waits for a connection or for the generator itself count (no coordinated "
        "omission); generator_send_lag_p99_ms is the generator's own lateness; "
        "other_cpu_cores is the busy CPU of every other process during the window"
        + (" (the PostgreSQL server's included)" if database_url else ""),
        # Latency is measured from each request's scheduled send time (open loop, no
        # coordinated omission); the generator runs on the same cores as the server.
        "fixed_rate": {
            "target_rps": rate,
            **fixed,
            "target_p99_ms": TARGET_P99_MS,
            "p99_to_target": round(fixed["p99_ms"] / TARGET_P99_MS, 3),
        },
        "fixed_rate_windows": runs,
        "fixed_rate_warmup": warmup,
        "peak_checkins": peak,
        "fixed_rate_half_peak": {"target_rps": half_rate, **at_half_peak},
        "baseline_healthz_peak": healthz,
        "peak_to_baseline": round(peak["rps"] / healthz["rps"], 3),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "checkins" if result["database"] == "sqlite" else "checkins_postgresql"
    name += "_campaigns" if campaigns else ""
    name += f"_{workers}workers.json" if workers > 1 else ".json"
    (out_dir / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fixed-rate windows as one run: percentiles over every request of them all."""
    latencies = [x for run in runs for x in run.pop("_latencies")]
    requests = sum(run["requests"] for run in runs)
    statuses: dict[int, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count

    def mean(key: str) -> float:
        return round(sum(run[key] * run["requests"] for run in runs) / requests, 2)

    return {
        "requests": requests,
        "windows": len(runs),
        "achieved_rps": min(run["achieved_rps"] for run in runs),
        **_percentiles(latencies),
        "generator_send_lag_p99_ms": max(run["generator_send_lag_p99_ms"] for run in runs),
        "statuses": statuses,
        "server_cpu_ms_per_request": mean("server_cpu_ms_per_request"),
        "load_generator_cpu_ms_per_request": mean("load_generator_cpu_ms_per_request"),
        "other_cpu_cores": mean("other_cpu_cores"),
    }


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its descendants (uvicorn's worker
    processes) have used so far (Linux ``/proc``)."""
    total = 0.0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # exited meanwhile
        # utime and stime are fields 14 and 15 of stat(5); the split above starts at field 3.
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except FileNotFoundError:
                continue
    return out


def _wait_ready(base: str, workers: int = 1) -> None:
    """Poll /readyz until the server answers and, with several workers, every worker
    process has started (bounded)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError(f"hub did not become ready within {STARTUP_TIMEOUT_S} s")
    if workers > 1:
        # The other workers may still be starting (each builds the app); let them.
        time.sleep(2.0 * workers)


def app_from_env() -> Any:
    """uvicorn factory: the hub app on the settings in the environment (bench subprocess)."""
    from hub.app import create_app

    return create_app(HubSettings.load())


def main(argv: list[str] | None = None) -> None:
    """``python -m hub.bench_checkins [--rate R] [--seconds S] [--windows N] [--database-url U]
    [--campaigns C] [--workers W] [--out DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="per fixed-rate window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--peak-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--campaigns", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    run_checkins_bench(
        args.rate,
        args.seconds,
        args.peak_seconds,
        args.concurrency,
        args.database_url or None,
        args.out,
        args.campaigns,
        args.workers,
        args.windows,
    )


if __name__ == "__main__":
    main()
