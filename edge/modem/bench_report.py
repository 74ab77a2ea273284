"""Report for ``storewave bench modem``: a rich table against the issue's targets, and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edge.modem import bench as b


def _fmt(v: float | None, unit: str = "") -> str:
    """A number with unit, or a dash."""
    return "-" if v is None else f"{v:.3g}{unit}"


def _ok(flag: bool | None) -> str:
    """Coloured verdict."""
    if flag is None:
        return "[yellow]n/a[/]"
    return "[green]met[/]" if flag else "[red]NOT met[/]"


def print_report(result: dict[str, Any], curves: list[b.Curve]) -> None:
    """Print measured figures next to their targets."""
    console = Console()
    by = {c.name: c for c in curves}
    awgn, imp = by["storewave AWGN"], by["storewave impaired"]
    sp = result["speed"]
    gg_half = [c.half_point() for n, c in by.items() if n.startswith("ggwave") and "AWGN" in n]
    gg_best = min((h for h in gg_half if h is not None), default=None) if gg_half else None
    ours_half = awgn.half_point()
    gg_speed = result.get("ggwave_speed", {})
    table = Table(title=f"StoreWave modem ({result['frames_per_point']} frames/point)")
    for col in ("figure", "measured", "target", "verdict"):
        table.add_column(col)
    rows = [
        ("success at -3 dB, AWGN", awgn.at(-3), ">= 0.99",
         None if awgn.at(-3) is None else awgn.at(-3) >= b.TARGET_AWGN_M3),
        ("50% point, AWGN (dB)", ours_half, "<= -8",
         None if ours_half is None else ours_half <= b.TARGET_HALF_DB),
        ("success at +3 dB, reverb+Doppler+clock+roll-off", imp.at(3), ">= 0.95",
         None if imp.at(3) is None else imp.at(3) >= b.TARGET_IMPAIRED_P3),
        ("50% point, impaired (dB)", imp.half_point(), "-", None),
        ("decoder speed, Cython (x real time, 1 core, frames every 3 s at 0 dB)",
         sp["cython_x_realtime"], ">= 500", sp["cython_x_realtime"] >= b.TARGET_SPEED_X),
        ("decoder speed, Cython, noise only", sp["cython_noise_only_x_realtime"], ">= 500",
         sp["cython_noise_only_x_realtime"] >= b.TARGET_SPEED_X),
        ("decoder speed, NumPy twin (x real time)", sp["numpy_x_realtime"], "-", None),
        ("Cython / NumPy, whole detector", sp["ratio"], ">= 10",
         sp["ratio"] >= b.TARGET_SPEED_RATIO),
        ("front-end kernels alone, Cython (x real time)", sp["kernels_cython_x_realtime"], "-",
         None),
        ("Cython / NumPy, front-end kernels (hot loops)", sp["kernels_ratio"], ">= 10",
         sp["kernels_ratio"] >= b.TARGET_SPEED_RATIO),
    ]
    ff = result["false_frames"]
    total_s = sum(v["seconds"] for v in ff.values())
    total_ff = sum(v["false_frames"] for v in ff.values())
    rows.append((f"false frames in {total_s / 60:.0f} min of non-beacon audio", total_ff,
                 "0 in >= 60 min", total_ff == 0 and total_s >= 3600 if total_ff == 0 else False))
    wrong = sum(c.wrong for c in curves if c.name.startswith("storewave"))
    rows.append(("wrong payloads passing CRC (all trials)", wrong, "0", wrong == 0))
    rows.append(("best ggwave [U] 50% point, AWGN (dB)", gg_best, "ours + 6 dB worse",
                 None if gg_best is None or ours_half is None
                 else gg_best - ours_half >= b.TARGET_GG_MARGIN_DB))
    for name, speeds in gg_speed.items():
        for label, speed in speeds.items():
            if label == "frames_found":
                continue
            rows.append((f"{name} decode speed, {label.replace('_', ' ')} (x real time)", speed,
                         "-", None))
    vs = result.get("speed_vs_ggwave", {})
    for label, v in vs.items():
        rows.append((f"our speed / fastest ggwave [U] ({v['ggwave_protocol']}), "
                     f"{label.replace('_', ' ')}, same run", v["ratio"], "> 1", v["ratio"] > 1.0))
    rows.append(("faster decoding per audio second than ggwave [U], noise only and with frames",
                 None, "both > 1",
                 all(v["ratio"] > 1.0 for v in vs.values()) if vs else None))
    for label, value, target, verdict in rows:
        table.add_row(label, _fmt(value) if not isinstance(value, int) else str(value), target,
                      _ok(verdict))
    console.print(table)
    curves_table = Table(title="success vs SNR (dB, signal power over noise in 2 kHz)")
    curves_table.add_column("SNR")
    for c in curves:
        curves_table.add_column(c.name)
    for snr in b.SNRS_DB:
        curves_table.add_row(str(snr), *[_fmt(c.at(snr)) for c in curves])
    console.print(curves_table)
    console.print(f"ggwave: {result['ggwave']}")
    for kind, v in ff.items():
        console.print(f"false frames, {kind}: {v['false_frames']} in {v['seconds'] / 60:.1f} min")


def save_plot(curves: list[b.Curve], path: Path) -> None:
    """Success-vs-SNR curves as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for c in curves:
        style = "-" if c.name.startswith("storewave") else "--"
        ax.plot(c.snr_db, c.success, style, marker="o", markersize=3, label=c.name)
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.axvline(b.TARGET_HALF_DB, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("SNR (dB): signal power / white-noise power in 2 kHz")
    ax.set_ylabel("frame success rate")
    ax.set_xlim(min(b.SNRS_DB), max(b.SNRS_DB))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
