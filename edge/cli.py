"""``storewave edge``: run one store node."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

edge_app = typer.Typer(help="A store's edge node: listen, emit, report to the hub.")


@edge_app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help="node.toml (its edge table)."),
    wav: Path | None = typer.Option(
        None, "--wav", help="Decode this WAV file instead of a device."
    ),
    sim: bool = typer.Option(False, "--sim", help="Simulated room: hear the node's own beacon."),
) -> None:
    """Run the node until SIGTERM/Ctrl-C (with --wav: until the file is decoded and sent)."""
    from edge.agent.run import NodeSetupError, run_node
    from edge.audio.devices import AudioUnavailable
    from storewave.logs import setup_logging
    from storewave.settings import ConfigFileError, EdgeSettings, LogSettings

    if wav is not None and sim:
        raise typer.BadParameter("use --wav or --sim, not both")
    try:
        log_settings = LogSettings.load(config)
        settings = EdgeSettings.load(config)
    except (ConfigFileError, ValidationError) as exc:
        typer.secho(f"bad configuration: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    setup_logging(log_settings.level, log_settings.format)
    try:
        code = run_node(settings, wav=wav, sim=sim)
    except AudioUnavailable as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(3) from None
    except NodeSetupError as exc:
        typer.secho(f"cannot start the node: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:  # WavError and bad broker URLs are ValueErrors with a reason
        typer.secho(f"cannot start the node: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
