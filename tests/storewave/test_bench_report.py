"""The benchmark report: rows from small result files shaped like the real ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from storewave.bench_report import (
    EXTRACTORS,
    FAILED,
    NOT_RUN,
    OK,
    UNREADABLE,
    Row,
    build_rows,
)
from storewave.bench_report_render import REPORT_JSON, REPORT_MD, write_report
from storewave.cli import app


def _modem() -> dict[str, Any]:
    """modem.json: fast enough, 10x kernels, -8.5 dB half point, one false frame."""
    snr = [3, 0, -3, -6, -9]
    return {
        "speed": {"cython_x_realtime": 600.0, "ratio": 4.0, "kernels_ratio": 12.0},
        "curves": [
            {"name": "storewave AWGN", "snr_db": snr, "success": [1, 1, 0.995, 0.9, 0.1],
             "half_point_db": -8.5},
            {"name": "storewave impaired", "snr_db": snr, "success": [0.94, 0.5, 0.1, 0, 0],
             "half_point_db": 0.0},
        ],
        "false_frames": {"white": {"seconds": 1800.0, "false_frames": 0},
                         "music": {"seconds": 1800.0, "false_frames": 1}},
    }  # fmt: skip


def _edge() -> dict[str, Any]:
    """edge.json: latency met, drain missed, CPU met."""
    return {
        "targets": {"latency_p50_ms": 100.0, "latency_p99_ms": 250.0, "drain_s": 10.0,
                    "cpu_pct": 10.0},
        "latency": {"latency_p50_ms": 20.0, "latency_p99_ms": 40.0, "ratio_p50_to_baseline": 40.0,
                    "baseline_bare_paho_p99_ms": 8.0},
        "drain": {"events": 10000, "drain_s": 12.0, "ratio_unthrottled_to_baseline": 1.5},
        "cpu": {"cpu_pct": 3.0, "baseline_sound_card_only_pct": 1.5},
    }  # fmt: skip


def _sim() -> dict[str, Any]:
    """sim.json: a phone-minute in 4 s wall against a 5 s target."""
    return {"phone_minute": {"total_wall_s": 4.0, "total_cpu_s": 2.0, "target_s": 5.0,
                             "ratio_to_baseline": 3.2}}  # fmt: skip


def _campaigns() -> dict[str, Any]:
    """campaigns.json: wall p99 added 3 ms (met), CPU p99 added 6 ms (missed)."""
    return {
        "live_campaigns": 200, "target_p99_ms": 5.0, "added_p99_ms": 3.0,
        "ratio_p99_to_baseline": 1.3, "added_cpu_p99_ms": 6.0,
        "baseline": {"cpu_p99_ms": 2.0, "p99_ms": 4.0}, "loaded": {"cpu_p99_ms": 8.0},
        "added_p99_ms_coupons": 7.0, "loaded_coupons": {"p99_ms": 11.0},
    }  # fmt: skip


def _checkins(p99_ms: float) -> dict[str, Any]:
    """checkins.json with a given p99 at the full 200 req/s."""
    return {
        "fixed_rate": {"target_rps": 200.0, "achieved_rps": 200.0, "p99_ms": p99_ms,
                       "target_p99_ms": 50.0},
        "peak_checkins": {"rps": 400.0},
        "peak_to_baseline": 0.25,
    }  # fmt: skip


def _ingest() -> dict[str, Any]:
    """ingest.json: SQLite meets both goals, PostgreSQL misses the share of the limit."""
    return {
        "scenarios": [
            {"name": "b_ingest_sqlite", "events_per_s": 3000.0, "lost": 0},
            {"name": "c_ingest_postgresql", "events_per_s": 2000.0, "lost": 0},
        ],
        "ratios": {"b_ingest_sqlite": {"of_limit": 0.75, "x_naive": 6.0},
                   "c_ingest_postgresql": {"of_limit": 0.5, "x_naive": 5.5}},
    }  # fmt: skip


def _oao() -> dict[str, Any]:
    """oao.json: decision fast, end to end slow, steady sweep met, burst missed."""
    return {
        "stores": 500,
        "targets": {"orders_per_s": 500.0, "sweep_s": 1.0},
        "dispatch_kdtree": {"orders_per_s": 6000.0},
        "kdtree_speedup_vs_scan": 2.0,
        "dispatch_end_to_end_sqlite": {"orders": 10000, "orders_per_s": 100.0},
        "batch_speedup_vs_one_by_one_cpu": 30.0,
        "timeout_sweep_sqlite": {"open_orders": 10000, "steady_due": 100, "steady_sweep_s": 0.5,
                                 "burst_due": 9900, "burst_sweep_s": 20.0,
                                 "burst_ratio_to_noop_per_timer": 2.5,
                                 "timeout_due": 10000, "timeout_sweep_s": 0.9,
                                 "timeout_ratio_to_noop_per_timer": 3.0},
    }  # fmt: skip


def _arc(instances: int, total_s: float) -> dict[str, Any]:
    """arc.json with exact messages."""
    return {
        "instances": instances, "horizon_days": 31, "database": "sqlite",
        "messages": 500, "messages_implied": 500, "duplicates": 0,
        "total_s": total_s, "target_s": 60.0, "ratio_advance_to_noop_baseline": 4.0,
    }  # fmt: skip


def _load() -> dict[str, Any]:
    """load.json: SQLite + Mosquitto met its targets; SQLite + amqtt lagged and was slow."""
    def scenario(database: str, broker: str, sustained: float, lag: float, p99: float,
                 behind: float | None) -> dict[str, Any]:
        return {"name": f"{database}_{broker}", "database": database, "broker": broker,
                "status": "ok", "sustained_events_per_s": sustained,
                "fell_behind_at_events_per_s": behind,
                "realistic": {"offered_events_per_s": 200.0, "kept_up": True,
                              "ingest_lag_p99_s": lag, "checkin_p99_ms": p99}}

    return {
        "load": {"nodes": 1000, "stores": 200, "checkin_rate_per_s": 20.0},
        "targets": {"ingest_lag_p99_s": 2.0, "checkin_p99_ms": 50.0},
        "scenarios": [
            scenario("sqlite", "mosquitto", 1000.0, 0.1, 30.0, 2000.0),
            scenario("sqlite", "amqtt", 500.0, 3.0, 80.0, None),
        ],
    }  # fmt: skip


def _write(folder: Path, name: str, data: Any) -> None:
    """Write one result file."""
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """A results folder with every benchmark's file."""
    for name, data in {
        "modem.json": _modem(),
        "edge.json": _edge(),
        "sim.json": _sim(),
        "campaigns.json": _campaigns(),
        "checkins.json": _checkins(30.0),
        "checkins_postgresql.json": _checkins(80.0),
        "ingest.json": _ingest(),
        "oao.json": _oao(),
        "arc.json": _arc(100_000, 45.0),
        "load.json": _load(),
    }.items():
        _write(tmp_path, name, data)
    return tmp_path


def _by_figure(rows: list[Row], benchmark: str) -> dict[str, Row]:
    """One benchmark's rows keyed by the start of their figure text."""
    return {row.figure: row for row in rows if row.benchmark == benchmark}


def _row(rows: list[Row], benchmark: str, figure_start: str) -> Row:
    """The one row of ``benchmark`` whose figure starts with ``figure_start``."""
    found = [r for r in rows if r.benchmark == benchmark and r.figure.startswith(figure_start)]
    assert len(found) == 1, (benchmark, figure_start, found)
    return found[0]


def test_every_benchmark_gets_rows_with_figures(results: Path) -> None:
    rows = build_rows(results)
    assert {row.benchmark for row in rows} == set(EXTRACTORS)
    assert all(row.status == OK and row.value is not None for row in rows)
    assert all(row.measured_at for row in rows)


def test_load_rows(results: Path) -> None:
    rows = build_rows(results)
    fast = _row(rows, "load", "fleet 1,000 nodes / 200 stores, sqlite + mosquitto")
    assert (fast.value, fast.met, fast.ratio) == (1000.0, True, 5.0)
    assert "behind at 2000/s offered" in fast.figure
    slow = _row(rows, "load", "fleet 1,000 nodes / 200 stores, sqlite + amqtt")
    assert slow.met is False and "never fell behind" in slow.figure  # lag 3 s > 2 s
    assert _row(rows, "load", "sqlite + mosquitto: POST").met is True
    assert _row(rows, "load", "sqlite + amqtt: POST").met is False
    data = _load()
    data["scenarios"].append({"name": "postgresql_mosquitto", "status": "not run", "note": "-"})
    _write(results, "load.json", data)
    assert _row(build_rows(results), "load", "postgresql_mosquitto").status == "not run"


def test_modem_rows(results: Path) -> None:
    rows = build_rows(results)
    speed = _row(rows, "modem", "decoder speed")
    assert (speed.value, speed.unit, speed.met, speed.ratio) == (600.0, "x real time", True, 4.0)
    assert _row(rows, "modem", "Cython front-end").met is True
    awgn = _row(rows, "modem", "success at -3 dB")
    assert awgn.value == pytest.approx(99.5) and awgn.met is True
    assert _row(rows, "modem", "50% success point").met is True
    impaired = _row(rows, "modem", "success at +3 dB")
    assert impaired.value == pytest.approx(94.0) and impaired.met is False
    false = _row(rows, "modem", "false frames")
    assert (false.value, false.met) == (1, False)


def test_edge_rows(results: Path) -> None:
    rows = build_rows(results)
    p99 = _row(rows, "edge", "detection -> subscriber latency p99")
    assert (p99.value, p99.met, p99.ratio) == (40.0, True, 5.0)
    drain = _row(rows, "edge", "drain")
    assert (drain.value, drain.target, drain.met, drain.ratio) == (12.0, "< 10 s", False, 1.5)
    cpu = _row(rows, "edge", "CPU")
    assert (cpu.met, cpu.ratio) == (True, 2.0)


def test_sim_campaigns_and_checkins_rows(results: Path) -> None:
    rows = build_rows(results)
    wall = _row(rows, "sim", "one phone-minute rendered + decoded, wall")
    assert (wall.value, wall.met, wall.ratio) == (4.0, True, 3.2)
    assert _row(rows, "sim", "one phone-minute rendered + decoded, CPU").met is None
    wall_p99 = _row(rows, "campaigns", "added p99 with 200 live campaigns, wall")
    assert (wall_p99.met, wall_p99.ratio) == (True, 1.3)
    coupons = _row(rows, "campaigns", "added p99 with 200 live campaigns granting coupons")
    assert (coupons.value, coupons.met, coupons.ratio) == (7.0, False, 2.75)
    cpu_p99 = _row(rows, "campaigns", "added p99 with 200 live campaigns, CPU")
    assert (cpu_p99.met, cpu_p99.ratio) == (False, 4.0)
    assert _row(rows, "checkins", "POST").met is True
    assert _row(rows, "checkins (postgresql)", "POST").met is False
    peak = _row(rows, "checkins", "peak")
    assert (peak.value, peak.met, peak.ratio) == (400.0, None, 0.25)


def test_ingest_oao_and_arc_rows(results: Path) -> None:
    rows = build_rows(results)
    sqlite = _row(rows, "ingest", "MQTT ingest into SQLite")
    assert (sqlite.value, sqlite.met, sqlite.ratio) == (3000.0, True, 0.75)
    assert _row(rows, "ingest", "MQTT ingest into PostgreSQL").met is False
    decision = _row(rows, "oao", "dispatch decision")
    assert (decision.met, decision.ratio) == (True, 2.0)
    assert _row(rows, "oao", "dispatch end to end").met is False
    assert _row(rows, "oao", "timeout sweep, 10,000 open (100 due)").met is True
    burst = _row(rows, "oao", "timeout sweep, 10,000 open (9,900 reminders due)")
    assert (burst.met, burst.ratio) == (False, 2.5)
    redispatch = _row(rows, "oao", "timeout sweep, 10,000 open (10,000 re-dispatched)")
    assert (redispatch.value, redispatch.met, redispatch.ratio) == (0.9, True, 3.0)
    assert _row(rows, "oao", "dispatch end to end, SQLite (10,000 orders)").ratio == 30.0
    journeys = _row(rows, "arc", "100,000 journeys")
    assert (journeys.value, journeys.met, journeys.ratio) == (45.0, True, 4.0)
    assert _row(rows, "arc", "outbox messages").met is True


def test_a_small_arc_run_does_not_meet_the_100k_target(results: Path) -> None:
    _write(results, "arc.json", _arc(5_000, 10.0))
    assert _row(build_rows(results), "arc", "5,000 journeys").met is False


def test_missing_file_is_not_run(results: Path) -> None:
    (results / "sim.json").unlink()
    rows = _by_figure(build_rows(results), "sim")
    assert [(row.figure, row.status, row.value, row.met) for row in rows.values()] == [
        ("sim.json", NOT_RUN, None, None)
    ]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"speed": {}}),
        json.dumps({**_edge(), "latency": {**_edge()["latency"], "latency_p99_ms": "fast"}}),
        json.dumps({**_edge(), "cpu": {"cpu_pct": 3.0, "baseline_sound_card_only_pct": 0}}),
    ],
    ids=["not-json", "not-an-object", "missing-keys", "string-for-number", "zero-baseline"],
)
def test_unknown_shape_is_unreadable_and_others_still_read(results: Path, content: str) -> None:
    target = "modem" if "speed" in content else "edge"
    (results / f"{target}.json").write_text(content, encoding="utf-8")
    rows = build_rows(results)
    broken = [row for row in rows if row.benchmark == target]
    assert len(broken) == 1 and broken[0].status == UNREADABLE and broken[0].value is None
    others = [row for row in rows if row.benchmark != target]
    assert others and all(row.status == OK for row in others)


def test_failed_benchmark_is_reported_failed_not_from_its_stale_file(results: Path) -> None:
    rows = [row for row in build_rows(results, failed=["oao"]) if row.benchmark == "oao"]
    assert [(row.status, row.value) for row in rows] == [(FAILED, None)]


def test_write_report_writes_json_and_markdown(results: Path) -> None:
    (results / "arc.json").unlink()
    (results / "oao.json").write_text("[]", encoding="utf-8")
    rows = write_report(results, console=Console(file=None, width=200, record=True, quiet=True))
    saved = json.loads((results / REPORT_JSON).read_text(encoding="utf-8"))
    assert saved["generated_at"]
    assert [r["figure"] for r in saved["rows"]] == [row.figure for row in rows]
    markdown = (results / REPORT_MD).read_text(encoding="utf-8")
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # header + one line per row
    assert "| 600 x real time | >= 500 x real time | yes | 4: " in markdown
    assert "| arc | arc.json | not run |" in markdown
    assert "| oao | oao.json: TypeError: top level is not an object | unreadable |" in markdown


def test_cli_report_builds_files_without_running_benchmarks(results: Path) -> None:
    before = {path.name: path.read_bytes() for path in results.iterdir()}
    result = CliRunner().invoke(app, ["bench", "report", "--results", str(results)])
    assert result.exit_code == 0, result.output
    assert "StoreWave benchmarks" in result.output and "modem" in result.output
    assert (results / REPORT_JSON).is_file() and (results / REPORT_MD).is_file()
    assert {path.name: path.read_bytes() for path in results.iterdir() if path.name in before} == (
        before
    )


def test_bench_all_runs_each_then_reports_and_a_failure_costs_only_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from storewave import bench

    ran: list[str] = []
    group = typer.Typer()

    @group.command("sim")
    def fake_sim() -> None:
        """Stands in for a benchmark that writes its result."""
        ran.append("sim")
        _write(tmp_path, "sim.json", _sim())

    @group.command("oao")
    def fake_oao() -> None:
        """Stands in for a benchmark that breaks."""
        ran.append("oao")
        raise RuntimeError("broker went away")

    group.command("report")(bench.report)
    group.command("all")(bench.run_all)
    _write(tmp_path, "oao.json", _oao())  # a stale file the failed run must not report
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    result = CliRunner().invoke(group, ["all"])
    assert result.exit_code == 1 and "failed: oao" in result.output, result.output
    assert ran == ["sim", "oao"]
    saved = json.loads((tmp_path / REPORT_JSON).read_text(encoding="utf-8"))["rows"]
    status = {(row["benchmark"], row["status"]) for row in saved}
    assert ("sim", OK) in status and ("oao", FAILED) in status and ("arc", NOT_RUN) in status
    assert ("oao", OK) not in status


def test_when_is_the_runs_own_stamp_else_the_file_time(results: Path) -> None:
    data = json.loads((results / "arc.json").read_text())
    data["measured_at"] = "2026-01-02T03:04:05+08:00"
    (results / "arc.json").write_text(json.dumps(data))
    rows = build_rows(results)
    assert {r.measured_at for r in rows if r.benchmark == "arc"} == {"2026-01-01T19:04:05+00:00"}
    data["measured_at"] = "not a time"
    (results / "arc.json").write_text(json.dumps(data))
    rows = build_rows(results)
    assert all(r.measured_at.endswith(" (file)") for r in rows if r.benchmark == "arc")


def test_a_committed_unchanged_file_is_dated_by_its_commit_not_its_checkout(
    results: Path,
) -> None:
    # A fresh clone gives every file the clone's time: a committed result without its own
    # stamp takes its last commit's time; once changed, the file's own time again.
    import os
    import subprocess

    env = {**os.environ, "GIT_COMMITTER_DATE": "2026-03-04T05:06:07+00:00",
           "GIT_AUTHOR_DATE": "2026-03-04T05:06:07+00:00"}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(results), *args], check=True, env=env,
                       capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    data = json.loads((results / "arc.json").read_text())
    data.pop("measured_at", None)
    (results / "arc.json").write_text(json.dumps(data))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-am", "x")
    rows = [r for r in build_rows(results) if r.benchmark == "arc"]
    assert rows and {r.measured_at for r in rows} == {"2026-03-04T05:06:07+00:00 (committed)"}
    (results / "arc.json").write_text(json.dumps(data) + "\n")  # changed since the commit
    rows = [r for r in build_rows(results) if r.benchmark == "arc"]
    assert all(r.measured_at.endswith(" (file)") for r in rows)
