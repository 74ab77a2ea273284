"""``storewave edge run`` refuses a bad node.toml with a clear message and creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from storewave.cli import app


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('node_id = "store-0001-n1"\npassword = "pw"\nsample_rate = 22050', "44100 or 48000"),
        ('node_id = "Bad Id"\npassword = "pw"', "must match"),
        ('node_id = "store-0001-n1"', "node_id and password are required"),
        ('node_id = "store-0001-n1"\npassword = "pw"\nbroker_url = "http://x"', "mqtt://"),
        ('node_id = "store-0001-n1"\nsurprise = 1', "surprise"),
    ],
)
def test_bad_node_toml_is_refused_clearly(tmp_path: Path, table: str, message: str) -> None:
    data_dir = tmp_path / "node"
    config = tmp_path / "node.toml"
    config.write_text(f'[edge]\n{table}\ndata_dir = "{data_dir}"\n')
    result = CliRunner().invoke(app, ["edge", "run", "--config", str(config), "--sim"])
    assert result.exit_code == 2
    assert message in result.output
    assert not data_dir.exists()


def test_wav_and_sim_together_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["edge", "run", "--config", str(tmp_path / "n.toml"), "--sim", "--wav", "x.wav"]
    )
    assert result.exit_code == 2 and "not both" in result.output
