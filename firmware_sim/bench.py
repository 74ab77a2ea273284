"""Simulator benchmark: one phone-minute rendered + decoded, and the long-form range test.

Writes ``tests/bench/results/sim.json`` and ``range.png``. Run with
``storewave bench sim`` or ``python -m firmware_sim.bench`` (``--quick`` for a smoke run).

Figures and their baselines, measured in the same run:

* phone-minute: wall time to render 60 s of one walking phone in the seeded flagship
  store (4 beacons, noise, reverberation, Doppler) and decode it with the real detector,
  against the issue's 5 s target; baseline = the detector alone on the same audio.
* range: share of phone positions (bearings) where the app hears a beacon set to
  R = 3, 5, 10 m at 0.5-1.6 R; plus the level offset that would centre the gate between
  R and 1.3 R (``recommended_edge_snr_db``), to re-calibrate after a detector change.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware_sim import calibration as cal
from firmware_sim import noise, phones, rangetest, store
from firmware_sim.storesim import SIM_EPOCH_S

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "bench" / "results"
TARGET_PHONE_MINUTE_S = 5.0  # the target
PHONE_MINUTE_S = 60.0
RANGES_M = (3.0, 5.0, 10.0)
LONG_FACTORS = (0.5, 0.8, 1.0, 1.15, 1.3, 1.45, 1.6)
QUICK_FACTORS = (0.8, 1.0, 1.3, 1.6)
LONG_POSITIONS = 8
QUICK_POSITIONS = 3
BENCH_SEED = 20131001


def _phone_minute_walk(layout: store.StoreLayout) -> phones.Phone:
    """A fixed tour: door, then a metre in front of each zone's beacon, 60 s in all."""
    cx = layout.room.size_m[0] / 2.0
    points = [(layout.door[0], layout.door[1])] + [
        (b.position[0] + (1.0 if b.position[0] < cx else -1.0), b.position[1] - 0.5)
        for b in layout.beacons[1:]
    ]
    speed = 1.0
    walking_s = (
        sum(map(lambda a, b: float(np.hypot(b[0] - a[0], b[1] - a[1])), points[:-1], points[1:]))
        / speed
    )
    dwell = max(0.0, (PHONE_MINUTE_S - walking_s) / len(points))
    path = phones.WalkPath(tuple(points), (dwell,) * len(points), speed)
    return phones.Phone("bench-phone", path, clock_ppm=50.0)


def phone_minute(seed: int = BENCH_SEED) -> dict[str, Any]:
    """Render + decode 60 s of one walking phone; time both, and the detector alone."""
    from edge.modem.detector import StreamingDetector

    layout = store.layout_from_seeds("fz-gulou", seed=seed)
    phone = _phone_minute_walk(layout)
    rng = np.random.default_rng(seed)
    scene = noise.store_scene(cal.DEFAULT_NOISE_FLOOR_DB_SPL)
    w0, c0 = time.perf_counter(), time.process_time()
    audio, t0 = phones.render_visit(layout, phone, scene, rng, SIM_EPOCH_S)
    audio = audio[: int(PHONE_MINUTE_S * phones.SAMPLE_RATE)]
    w1 = time.perf_counter()
    result = phones.decode_visit(layout, phone, audio, t0, SIM_EPOCH_S)
    w2, c2 = time.perf_counter(), time.process_time()
    detector = StreamingDetector(phones.SAMPLE_RATE)
    for i in range(0, audio.size, phones.BLOCK):
        detector.feed(audio[i : i + phones.BLOCK])
    w3 = time.perf_counter()
    total = w2 - w0
    return {
        "audio_s": audio.size / phones.SAMPLE_RATE,
        "render_wall_s": round(w1 - w0, 3),
        "decode_wall_s": round(w2 - w1, 3),
        "total_wall_s": round(total, 3),
        "total_cpu_s": round((c2 - c0), 3),
        "target_s": TARGET_PHONE_MINUTE_S,
        "ratio_to_target": round(total / TARGET_PHONE_MINUTE_S, 3),
        "baseline_detector_alone_wall_s": round(w3 - w2, 3),
        "ratio_to_baseline": round(total / max(w3 - w2, 1e-9), 2),
        "zones": result.zone_path,
        "frames_decoded": result.frames_decoded,
    }


def range_long(positions: int, factors: tuple[float, ...], seed: int) -> dict[str, Any]:
    """The long-form range sweep, with the offset that would centre the gate."""
    points = rangetest.sweep(RANGES_M, factors, positions, seed)
    rows = [
        {
            "range_m": p.range_m,
            "distance_m": round(p.distance_m, 2),
            "factor": round(p.distance_m / p.range_m, 2),
            "rate": round(p.rate, 3),
            "positions": p.positions,
            "mean_snr_db": [
                round(float(np.mean(s)), 2) if len(s) else None for s in p.frame_snrs_db
            ],
        }
        for p in points
    ]

    def means(factor: float) -> list[float]:
        """Per-position mean SNRs at one distance factor, over all ranges."""
        return [m for r in rows if r["factor"] == factor for m in r["mean_snr_db"] if m is not None]

    at_r, beyond = means(1.0), means(1.3)
    recommended = None
    if at_r and beyond:
        low_at_r = float(np.percentile(at_r, 10))
        high_beyond = float(np.percentile(beyond, 90))
        shift = cal.APP_MIN_SNR_DB - (low_at_r + high_beyond) / 2.0
        recommended = round(cal.EDGE_SNR_DB + shift, 2)
    return {
        "points": rows,
        "app_min_snr_db": cal.APP_MIN_SNR_DB,
        "edge_snr_db": cal.EDGE_SNR_DB,
        "recommended_edge_snr_db": recommended,
        "room": {"size_m": rangetest.RANGE_ROOM.size_m, "rt60_s": rangetest.RANGE_ROOM.rt60_s},
        "noise_floor_db_spl": cal.DEFAULT_NOISE_FLOOR_DB_SPL,
    }


def plot_range(data: dict[str, Any], path: Path) -> None:
    """Detection share vs distance / R for each R, with the R and 1.3 R marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    # The three curves often coincide: nudge them apart so each stays visible.
    for i, (r, marker) in enumerate(zip(RANGES_M, ("o", "s", "^"), strict=True)):
        pts = [p for p in data["points"] if p["range_m"] == r]
        nudge = (i - 1) * 0.012
        ax.plot(
            [p["factor"] + nudge for p in pts],
            [p["rate"] + nudge for p in pts],
            marker=marker,
            label=f"R = {r:g} m ({cal.range_to_level_dbfs(r):.1f} dBFS)",
        )
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.axvline(1.3, color="red", linestyle=":", linewidth=1)
    ax.text(1.0, 0.5, " R", color="grey")
    ax.text(1.3, 0.5, " 1.3 R", color="red")
    ax.set_xlabel("distance / configured range R")
    ax.set_ylabel("share of positions where the app hears the beacon")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(
        f"Power sets range: store model RT60 {data['room']['rt60_s']} s, "
        f"{data['noise_floor_db_spl']:g} dB SPL in-band noise, real detector"
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sim_bench(
    quick: bool = False, out_dir: Path = RESULTS_DIR, seed: int = BENCH_SEED
) -> dict[str, Any]:
    """Run both parts, print the figures, write sim.json and range.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    minute = phone_minute(seed)
    print(
        f"phone-minute: {minute['total_wall_s']:.2f} s wall (render {minute['render_wall_s']:.2f}"
        f" + decode {minute['decode_wall_s']:.2f}), target {TARGET_PHONE_MINUTE_S} s "
        f"(x{minute['ratio_to_target']:.2f}); detector alone "
        f"{minute['baseline_detector_alone_wall_s']:.2f} s "
        f"(x{minute['ratio_to_baseline']:.2f})"
    )
    factors = QUICK_FACTORS if quick else LONG_FACTORS
    started = time.perf_counter()
    ranges = range_long(QUICK_POSITIONS if quick else LONG_POSITIONS, factors, seed)
    for r in RANGES_M:
        rates = "  ".join(
            f"{p['factor']:.2f}R:{p['rate']:.2f}" for p in ranges["points"] if p["range_m"] == r
        )
        print(f"range R={r:g} m: {rates}")
    print(
        f"edge SNR {cal.EDGE_SNR_DB} dB; recommended from this run: "
        f"{ranges['recommended_edge_snr_db']} dB"
    )
    result = {
        # Five engineers share two cores here: the load average says how busy it was.
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "quick": quick,
        "seed": seed,
        "phone_minute": minute,
        "range": ranges,
        "range_wall_s": round(time.perf_counter() - started, 1),
    }
    (out_dir / "sim.json").write_text(json.dumps(result, indent=2))
    plot_range(ranges, out_dir / "range.png")
    print(f"wrote {out_dir / 'sim.json'} and {out_dir / 'range.png'}")
    return result


def main() -> None:
    """``python -m firmware_sim.bench [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer positions (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    run_sim_bench(args.quick, args.out)


if __name__ == "__main__":
    main()
