"""One store, K phones walking in over T minutes: audio rendered and decoded for real."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from firmware_sim import calibration as cal
from firmware_sim import noise
from firmware_sim.phones import (
    SAMPLE_RATE,
    Phone,
    VisitResult,
    random_phone,
    simulate_visit,
)
from firmware_sim.store import StoreLayout, layout_from_seeds

# Wall-clock origin of every simulated run (2013-10-01 00:00 UTC, Shoplat's trial month):
# fixed so rotating codes, and thus every decoded payload, repeat run after run.
SIM_EPOCH_S = 1_380_585_600.0
MAX_PHONES = 500
# One background for the whole store, long enough that visits rarely wrap around it.
NOISE_BED_S = 180.0
# Seed stream of the noise bed, apart from the per-phone streams [seed, 0..MAX_PHONES).
NOISE_BED_STREAM = MAX_PHONES
MAX_MINUTES = 240.0


@dataclass
class StoreRun:
    """Results of a store simulation."""

    layout: StoreLayout
    visits: list[VisitResult] = field(default_factory=list)
    simulated_s: float = 0.0
    wall_s: float = 0.0

    @property
    def latencies_s(self) -> list[float]:
        """Zone-entry latencies (from entering a beacon's range to the app's decision)."""
        return [z.latency_s for v in self.visits for z in v.zones if z.latency_s is not None]

    def summary(self) -> dict[str, float | int]:
        """Visits, zones per visit, check-ins, latency percentiles, speed."""
        lat = sorted(self.latencies_s)
        zones = [len(v.zones) for v in self.visits]
        distinct = [len({z.zone_id for z in v.zones}) for v in self.visits]
        return {
            "visits": len(self.visits),
            "visits_detected": sum(1 for z in zones if z),
            "zones_per_visit": round(statistics.fmean(distinct), 2) if distinct else 0.0,
            "zone_entries_per_visit": round(statistics.fmean(zones), 2) if zones else 0.0,
            "checkin_attempts": sum(zones),
            "latency_median_s": round(statistics.median(lat), 2) if lat else float("nan"),
            "latency_p90_s": round(lat[int(0.9 * (len(lat) - 1))], 2) if lat else float("nan"),
            "foreign_frames": sum(v.frames_foreign for v in self.visits),
            "simulated_s": round(self.simulated_s, 1),
            "wall_s": round(self.wall_s, 1),
        }


def plan_phones(layout: StoreLayout, phones: int, minutes: float, seed: int) -> list[Phone]:
    """``phones`` customers arriving at seeded random times within ``minutes``."""
    if not 1 <= phones <= MAX_PHONES:
        raise ValueError(f"phones must be 1..{MAX_PHONES}")
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be in (0, {MAX_MINUTES}]")
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.uniform(0.0, minutes * 60.0, phones))
    return [random_phone(layout, f"phone-{i + 1:03d}", rng, float(t)) for i, t in enumerate(starts)]


def run_store(
    store_id: str | None,
    phones: int,
    minutes: float,
    seed: int,
    noise_floor_db_spl: float = cal.DEFAULT_NOISE_FLOOR_DB_SPL,
    on_visit: Callable[[VisitResult, StoreRun], None] | None = None,
    *,
    wall0_s: float = SIM_EPOCH_S,
    keys: dict[str, bytes] | None = None,
) -> StoreRun:
    """Simulate the store; ``on_visit`` is called after each phone (live progress).

    ``wall0_s`` is the wall-clock time of simulated second 0 (rotating codes follow it:
    pass ``time.time()`` when a live hub will verify the check-ins); ``keys`` are the
    hub's beacon keys by node id (see :func:`firmware_sim.store.layout_from_seeds`).
    """
    layout = layout_from_seeds(store_id, seed, noise_floor_db_spl, keys=keys)
    plan = plan_phones(layout, phones, minutes, seed)
    scene = noise.store_scene(noise_floor_db_spl, with_neighbour=True)
    bed = noise.NoiseBed.of(
        scene, NOISE_BED_S, SAMPLE_RATE, np.random.default_rng([seed, NOISE_BED_STREAM])
    )
    run = StoreRun(layout)
    start = time.perf_counter()
    for i, phone in enumerate(plan):
        rng = np.random.default_rng([seed, i])
        visit = simulate_visit(layout, phone, bed, rng, wall0_s)
        run.visits.append(visit)
        run.simulated_s += visit.duration_s
        run.wall_s = time.perf_counter() - start
        if on_visit is not None:
            on_visit(visit, run)
    return run
