"""CLI help names the settings each flag falls back to, brackets and all."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from storewave.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["kiosk", "--help"], "[kiosk]"),
        (["sim", "fleet", "--help"], "[sim] seed"),
    ],
)
def test_help_shows_the_settings_section_names(argv: list[str], shown: str) -> None:
    """Rich would read '[kiosk]' as markup and drop it; the help must keep it."""
    result = runner.invoke(app, argv, env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    assert shown in result.output
