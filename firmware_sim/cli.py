"""``storewave sim``: fleet load, store simulation and the range check, with rich output."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from storewave.settings import SimSettings

app = typer.Typer(
    help="Simulated stores, phones and fleets.", no_args_is_help=True, add_completion=False
)
console = Console()


def _seed(seed: int | None) -> int:
    """The given seed, else the ``[sim] seed`` setting."""
    return seed if seed is not None else int(SimSettings.load().seed)


@app.command("fleet")
def fleet_command(
    broker: str = typer.Option(..., "--broker", help="mqtt://host:port of the broker"),
    nodes: int = typer.Option(10, "--nodes", help="Simulated nodes (MQTT clients)"),
    stores: int = typer.Option(2, "--stores", help="Stores the nodes are spread over"),
    rate: float = typer.Option(1.0, "--rate", help="Messages per second per node"),
    duration: float = typer.Option(10.0, "--duration", help="Seconds of publishing"),
    max_messages: int | None = typer.Option(None, "--max-messages", help="Stop after this many"),
    grace: float = typer.Option(10.0, "--grace", help="Seconds to wait for the last acks"),
    procs: int = typer.Option(1, "--procs", help="Processes to spread the nodes over"),
    password: str = typer.Option("sim", "--password", help="Password shared by every node"),
    credentials: Path | None = typer.Option(
        None, "--credentials", help='JSON file {"node-id": "password", ...} (overrides)'
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: \\[sim] seed)"),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the counts here"),
) -> None:
    """Start N nodes over M stores publishing detections/telemetry; count sent/acked/failed."""
    from firmware_sim.fleet import FleetCounts, FleetOptions, run_fleet

    try:
        creds = json.loads(credentials.read_text()) if credentials else {}
        opts = FleetOptions(
            broker,
            nodes=nodes,
            stores=stores,
            rate=rate,
            duration_s=duration,
            max_messages=max_messages,
            grace_s=grace,
            password=password,
            credentials=creds,
            procs=procs,
            seed=_seed(seed),
        )
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    progress = Progress(
        TextColumn("[bold]fleet[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("connecting", total=duration)

    def on_progress(c: FleetCounts) -> None:
        """Move the progress bar to the fleet's latest counts."""
        progress.update(
            task,
            completed=min(duration, c.elapsed_s),
            description=f"sent {c.sent} acked {c.acked} failed {c.failed}",
        )

    try:
        with progress:
            counts = run_fleet(opts, on_progress)
    except (ConnectionError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"fleet: {nodes} nodes, {stores} stores, {rate}/s each, {duration} s")
    for col in (
        "nodes",
        "connected",
        "sent",
        "broker took",
        "hub acked",
        "unacked",
        "failed",
        "msg/s",
    ):
        table.add_column(col, justify="right")
    rate_out = counts.sent / duration if duration else 0.0
    table.add_row(
        *(
            str(v)
            for v in (
                counts.nodes,
                counts.connected,
                counts.sent,
                counts.puback,
                counts.acked,
                counts.unacked,
                counts.failed,
            )
        ),
        f"{rate_out:.0f}",
    )
    console.print(table)
    if json_out is not None:
        data = {**counts.__dict__, "unacked": counts.unacked, "rate_per_node": rate}
        json_out.write_text(json.dumps(data, indent=2))


@app.command("store")
def store_command(
    store: str | None = typer.Option(None, "--store", help="Store id from seeds (default first)"),
    phones: int = typer.Option(5, "--phones", help="Phones (customers) walking in"),
    minutes: float = typer.Option(5.0, "--minutes", help="Arrivals spread over this many minutes"),
    noise_floor: float = typer.Option(40.0, "--noise-floor", help="In-band noise, dB SPL"),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: \\[sim] seed)"),
    json_out: Path | None = typer.Option(None, "--json", help="Also write summary + visits here"),
) -> None:
    """Phones walk through one store; real audio, real decoder; visits, zones, latency."""
    from firmware_sim.storesim import StoreRun, run_store

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} phones"),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("walking", total=phones)

    def on_visit(visit: object, run: StoreRun) -> None:
        """Show the latest phone's movement path on the progress line."""
        v = run.visits[-1]
        progress.update(
            task,
            advance=1,
            description=(f"{v.phone_id}: {' > '.join(v.zone_path) or '(nothing heard)'}"),
        )

    try:
        with Live(progress, console=console, refresh_per_second=4):
            run = run_store(store, phones, minutes, _seed(seed), noise_floor, on_visit)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    visits = Table(title=f"{run.layout.name}: visits")
    for col in ("phone", "zones (movement path)", "check-ins", "latency s"):
        visits.add_column(col)
    for v in run.visits:
        lat = ", ".join(f"{z.latency_s:.1f}" for z in v.zones if z.latency_s is not None)
        visits.add_row(v.phone_id, " > ".join(v.zone_path) or "-", str(len(v.zones)), lat or "-")
    console.print(visits)
    summary = Table(title="summary")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, value in run.summary().items():
        summary.add_row(key.replace("_", " "), str(value))
    console.print(summary)
    if json_out is not None:
        visits_out = [
            {
                "phone": v.phone_id,
                "zones": v.zone_path,
                "checkins": [z.checkin.model_dump(mode="json") for z in v.zones],
                "latency_s": [z.latency_s for z in v.zones],
            }
            for v in run.visits
        ]
        json_out.write_text(json.dumps({"summary": run.summary(), "visits": visits_out}, indent=2))


@app.command("nodes")
def nodes_command(
    broker: str = typer.Option(..., "--broker", help="mqtt://host:port of the broker"),
    credentials: Path = typer.Option(
        ..., "--credentials", help='JSON file {"node-id": "password", ...} from provisioning'
    ),
    duration: float = typer.Option(30.0, "--duration", help="Seconds to run"),
) -> None:
    """Run the node firmware (state machine) in real time for each provisioned node."""
    from firmware_sim.noderun import run_nodes

    try:
        creds = json.loads(credentials.read_text())
        if not isinstance(creds, dict):
            raise ValueError("credentials must be a JSON object of node id -> password")
        with console.status(f"running {len(creds)} node(s) for {duration:g} s"):
            reports = run_nodes(broker, creds, duration)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(title="simulated nodes")
    for col in ("node", "state", "boot", "config", "emitted", "unacked", "restarts"):
        table.add_column(col)
    for r in reports:
        table.add_row(
            r.node_id,
            r.state,
            str(r.boot),
            str(r.config_version),
            str(r.emitted),
            str(r.unacked),
            str(r.restarts),
        )
    console.print(table)


@app.command("range")
def range_command(
    positions: int = typer.Option(8, "--positions", help="Phone positions per distance"),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: \\[sim] seed)"),
) -> None:
    """Range check: a beacon set to R (3, 5, 10 m) heard inside R, rarely beyond 1.3 R."""
    from firmware_sim.rangetest import DEFAULT_FACTORS, sweep

    ranges = (3.0, 5.0, 10.0)
    points = sweep(ranges, DEFAULT_FACTORS, positions=positions, seed=_seed(seed))
    table = Table(title="share of positions where the app hears the beacon")
    table.add_column("R m")
    for f in DEFAULT_FACTORS:
        table.add_column(f"{f:g} R", justify="right")
    for r in ranges:
        table.add_row(f"{r:g}", *(f"{p.rate:.2f}" for p in points if p.range_m == r))
    console.print(table)
