"""``storewave bench ...``: one typer group; each part registers its benchmark command here.

Add a benchmark with ``@bench_app.command("name")`` in this module (a plain registry:
no shared state, each command imports its own part lazily so ``storewave --help``
stays fast). Results go to ``tests/bench/results/``.
"""

from __future__ import annotations

from pathlib import Path

import typer

RESULTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "bench" / "results"

bench_app = typer.Typer(help="Benchmarks (results in tests/bench/results/).", no_args_is_help=True)


@bench_app.command("modem")
def modem(
    quick: bool = typer.Option(False, "--quick", help="Fewer frames per point (a smoke run)."),
    frames: int = typer.Option(200, "--frames", help="Frames per SNR point."),
    noise_minutes: float = typer.Option(
        60.0, "--noise-minutes", help="Minutes of non-beacon audio for the false-frame count."
    ),
    ggwave: bool = typer.Option(True, "--ggwave/--no-ggwave", help="Also measure ggwave [U]."),
    out_dir: Path = typer.Option(RESULTS_DIR, "--out", help="Where modem.json/png go."),
) -> None:
    """Ultrasonic modem: speed, success vs SNR (AWGN, impaired), false frames, ggwave."""
    from edge.modem.bench import run_modem_bench

    run_modem_bench(
        quick=quick, frames=frames, noise_minutes=noise_minutes, with_ggwave=ggwave, out_dir=out_dir
    )


@bench_app.command("edge")
def edge(
    out_dir: Path = typer.Option(RESULTS_DIR, "--out", help="Where edge.json goes."),
) -> None:
    """Edge node: detection-to-publish latency, 10,000-event drain, CPU while listening."""
    from edge.agent.bench import run_edge_bench
    from storewave.logs import setup_logging

    setup_logging("ERROR")
    run_edge_bench(out_dir=out_dir)


@bench_app.command("sim")
def sim(
    quick: bool = typer.Option(False, "--quick", help="Fewer positions per point (a smoke run)."),
    out_dir: Path = typer.Option(RESULTS_DIR, "--out", help="Where sim.json/range.png go."),
) -> None:
    """Simulator: one phone-minute rendered + decoded (target 5 s), long-form range test."""
    from firmware_sim.bench import run_sim_bench

    run_sim_bench(quick=quick, out_dir=out_dir)


@bench_app.command("campaigns")
def campaigns(
    samples: int = typer.Option(500, "--samples", help="Check-ins measured per condition."),
    out_dir: Path = typer.Option(RESULTS_DIR, "--out", help="Where campaigns.json goes."),
    pg_url: str = typer.Option("", "--pg-url", help="Also run on this PostgreSQL server."),
) -> None:
    """Campaign evaluation: latency it adds to a check-in with 200 live campaigns (5 ms p99)."""
    from hub.services.campaigns.bench import run_campaigns_bench
    from storewave.logs import setup_logging

    setup_logging("ERROR")
    run_campaigns_bench(samples=samples, out_dir=out_dir, pg_url=pg_url or None)


@bench_app.command("arc")
def arc(
    instances: int = typer.Option(
        10_000, "--instances", help="Journey instances (the issue's target run is 100000)."
    ),
    seed: int = typer.Option(7, "--seed", help="Seed of the customer cohorts."),
    pg_url: str = typer.Option("", "--pg-url", help="Run on this PostgreSQL instead of SQLite."),
    out_dir: Path = typer.Option(RESULTS_DIR, "--out", help="Where arc.json goes."),
) -> None:
    """ARC journeys: N instances through a simulated 31-day trial (target 100,000 in 60 s)."""
    import json

    from hub.services.journeys.bench import run_arc_bench
    from storewave.logs import setup_logging

    setup_logging("ERROR")
    result = run_arc_bench(instances, seed, out_dir, pg_url or None)
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("oao")
def oao(
    orders: int = typer.Option(10_000, "--orders", help="Orders dispatched over 500 stores."),
    e2e_orders: int = typer.Option(
        10_000, "--e2e-orders", help="Of them, taken end to end through the database."
    ),
    open_orders: int = typer.Option(10_000, "--open", help="Open orders in the timeout sweep."),
    out_dir: Path = typer.Option(RESULTS_DIR, "--out", help="Where oao.json goes."),
) -> None:
    """OAO: nearest-store dispatch (k-d tree vs a full scan) and the SLA timeout sweep."""
    from hub.services.oao.bench import run_oao_bench
    from storewave.logs import setup_logging

    setup_logging("ERROR")
    run_oao_bench(out_dir, n_orders=orders, e2e_orders=e2e_orders, n_open=open_orders)


@bench_app.command("ingest")
def ingest(
    processes: int = typer.Option(4, "--processes", help="Publisher processes."),
    nodes: int = typer.Option(250, "--nodes", help="Simulated nodes per publisher process."),
    # 40 x 1,000 nodes: each scenario runs ~5 s, long enough to be a sustained rate (10 gave
    # ~1.4 s runs in which start-up and the last batch weighed on the ratio).
    events: int = typer.Option(40, "--events", help="Events per node."),
    amqtt: bool = typer.Option(True, "--amqtt/--no-amqtt", help="Also measure amqtt."),
    out: Path = typer.Option(RESULTS_DIR / "ingest.json", "--out", help="JSON result file."),
) -> None:
    """MQTT ingest through Mosquitto, zero loss: vs a bare counter and a naive baseline."""
    from hub.mqtt.bench import run_ingest_bench

    run_ingest_bench(processes, nodes, events, out, amqtt)


@bench_app.command("checkins")
def checkins(
    rate: float = typer.Option(200.0, "--rate", help="Open-loop rate in requests/s."),
    seconds: float = typer.Option(15.0, "--seconds", help="Duration of the fixed-rate run."),
    peak_seconds: float = typer.Option(10.0, "--peak-seconds", help="Duration of the peak run."),
    concurrency: int = typer.Option(32, "--concurrency", help="Connections for both runs."),
    database_url: str = typer.Option("", "--database-url", help="Empty: a fresh SQLite file."),
    campaigns: int = typer.Option(0, "--campaigns", help="Live campaigns to launch first."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes."),
) -> None:
    """POST /v1/checkins on one uvicorn worker: p99 at a fixed rate, peak req/s vs /healthz."""
    from hub.bench_checkins import run_checkins_bench

    run_checkins_bench(
        rate,
        seconds,
        peak_seconds,
        concurrency,
        database_url or None,
        RESULTS_DIR,
        campaigns,
        workers,
    )


@bench_app.command("load")
def load(
    nodes: int = typer.Option(1000, "--nodes", help="Simulated nodes in the fleet."),
    stores: int = typer.Option(200, "--stores", help="Stores the nodes are spread over."),
    step_s: float = typer.Option(12.0, "--step-s", help="Seconds of publishing per ramp step."),
    database: list[str] = typer.Option(["sqlite", "postgresql"], "--database", help="Databases."),
    broker: list[str] = typer.Option(["mosquitto", "amqtt"], "--broker", help="mosquitto/amqtt"),
    out: Path = typer.Option(RESULTS_DIR / "load.json", "--out", help="JSON result file."),
) -> None:
    """Fleet load on a whole hub: realistic rate, then ramping until the hub falls behind."""
    from firmware_sim.loadbench import run_load_bench

    run_load_bench(nodes, stores, step_s, databases=tuple(database), brokers=tuple(broker), out=out)


# Commands that are not benchmarks: `all` skips them.
NOT_BENCHMARKS = frozenset({"all", "report"})


@bench_app.command("report")
def report(
    results_dir: Path = typer.Option(RESULTS_DIR, "--results", help="Folder of *.json results."),
) -> None:
    """Write latest.json + latest.md from the results already there (runs nothing)."""
    from storewave.bench_report_render import write_report

    write_report(results_dir)


@bench_app.command("all")
def run_all(ctx: typer.Context) -> None:
    """Run every registered benchmark with its defaults, then write the report (`make bench`)."""
    import logging

    group = ctx.parent.command if ctx.parent else None
    commands = getattr(group, "commands", {})
    failed: list[str] = []
    for name, command in commands.items():
        if name in NOT_BENCHMARKS:
            continue
        typer.echo(f"== storewave bench {name}")
        try:
            # A fresh sub-context parses no arguments, so each runs with its defaults (this
            # typer's ctx.invoke(command) would re-parse sys.argv instead).
            with command.make_context(name, [], parent=ctx) as sub_ctx:
                command.invoke(sub_ctx)
        except Exception:  # one broken benchmark must not cost the others' figures
            logging.getLogger(__name__).exception("storewave bench %s failed", name)
            failed.append(name)
    from storewave.bench_report_render import write_report

    write_report(RESULTS_DIR, failed=failed)
    if failed:
        typer.echo(f"failed: {', '.join(failed)}", err=True)
        raise typer.Exit(code=1)
