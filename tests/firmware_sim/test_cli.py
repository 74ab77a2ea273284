"""``storewave sim ...`` end to end through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storewave.cli import app

from .conftest import HubSide, Mosquitto

runner = CliRunner()


@pytest.mark.mosquitto
def test_sim_fleet_prints_and_writes_its_counts(
    broker: Mosquitto, hub_side: HubSide, tmp_path: Path
) -> None:
    out = tmp_path / "fleet.json"
    result = runner.invoke(
        app,
        [
            "sim",
            "fleet",
            "--broker",
            broker.url,
            "--nodes",
            "3",
            "--stores",
            "1",
            "--rate",
            "10",
            "--duration",
            "1",
            "--grace",
            "5",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "hub acked" in result.output
    counts = json.loads(out.read_text())
    assert counts["sent"] > 0 and counts["acked"] == counts["sent"] and counts["failed"] == 0


def test_sim_fleet_refuses_bad_arguments_clearly() -> None:
    result = runner.invoke(app, ["sim", "fleet", "--broker", "http://x", "--nodes", "1"])
    assert result.exit_code == 2
    assert "mqtt://" in result.output
    result = runner.invoke(
        app,
        [
            "sim",
            "fleet",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--nodes",
            "1",
            "--stores",
            "1",
            "--duration",
            "0.1",
        ],
    )
    assert result.exit_code == 1 and "cannot reach the broker" in result.output


def test_sim_store_walks_a_phone_through_a_seeded_store(tmp_path: Path) -> None:
    out = tmp_path / "store.json"
    result = runner.invoke(
        app,
        [
            "sim",
            "store",
            "--store",
            "fz-cangshan",
            "--phones",
            "1",
            "--minutes",
            "0.5",
            "--seed",
            "4",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["summary"]["visits"] == 1
    assert data["visits"][0]["checkins"][0]["code"]  # a CheckinRequest, as the app sends it
    assert "Shop floor" in result.output and "zones per visit" in result.output
    bad = runner.invoke(app, ["sim", "store", "--store", "nowhere"])
    assert bad.exit_code == 2 and "unknown store" in bad.output


@pytest.mark.mosquitto
def test_sim_nodes_runs_provisioned_firmware_in_real_time(
    broker: Mosquitto, hub_side: HubSide, tmp_path: Path
) -> None:
    config = b'{"version":4,"beacon":{"short_id":7,"key_hex":"' + b"ab" * 16 + b'"}}'
    hub_side.publish("sw/v1/nodes/store-0009-n1/config", config, retain=True)
    creds = tmp_path / "nodes.json"
    creds.write_text(json.dumps({"store-0009-n1": "pw", "store-0009-n2": "pw"}))
    result = runner.invoke(
        app,
        ["sim", "nodes", "--broker", broker.url, "--credentials", str(creds), "--duration", "2"],
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "store-0009-n1" in line)
    assert "running" in row and " 4 " in row
    other = next(line for line in result.output.splitlines() if "store-0009-n2" in line)
    assert "await_config" in other  # no config yet: still waiting (10 s) after 2 s
    births = [s for s in hub_side.statuses("store-0009-n1") if s["state"] == "online"]
    assert births == [{"state": "online", "boot": 1}]
    bad = runner.invoke(
        app,
        ["sim", "nodes", "--broker", broker.url, "--credentials", str(tmp_path / "missing.json")],
    )
    assert bad.exit_code == 2


def test_sim_range_prints_one_column_per_distance() -> None:
    result = runner.invoke(app, ["sim", "range", "--positions", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "R m" in line)
    assert all(f"{f:g} R" in header for f in (0.5, 0.8, 1, 1.3, 1.6))
    rows = [line for line in result.output.splitlines() if line.startswith("│ ")]
    assert len(rows) == 3
    for row in rows:  # heard at 0.5 R, 0.8 R and R; not at 1.6 R
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[1:4] == ["1.00", "1.00", "1.00"] and cells[-1] == "0.00"
