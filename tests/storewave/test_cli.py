"""The storewave CLI: every command has help, unbuilt parts say so and run nothing."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from storewave.cli import app

runner = CliRunner()


def test_top_level_help_lists_the_parts() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for part in ("demo", "hub", "edge", "kiosk", "sim", "bench"):
        assert part in result.output


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    names = list(group.commands)  # type: ignore[attr-defined]
    assert names
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "storewave", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("storewave ")
