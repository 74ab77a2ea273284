"""Receiver front end: per-rate constants (decimation, windows, sync grid) and kernel choice.

The detector never touches 48 kHz samples more than once: a complex FIR evaluated only
at every 12th sample mixes the 18-20 kHz band down to a ~4 kHz complex baseband, and
every later stage (sync search, symbol energies) runs there, 12x fewer samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from types import ModuleType

import numpy as np
import numpy.typing as npt
from scipy.signal import firwin

from edge.modem import frame
from ext import load_kernel, modem_reference

DECIMATION = 12  # 48 kHz -> 4 kHz complex baseband (3.675 kHz at 44.1 kHz): covers +/-1.8 kHz
# Low-pass taps: 144 = 12 per output phase. Kaiser beta 8 gives ~80 dB stop-band, and with
# cutoff 1.8 kHz the pass-band reaches ~1 kHz (tones + Doppler reach 0.84 kHz) while
# everything that would alias into +/-1 kHz (beyond fb - 1 kHz) is in the stop-band.
N_TAPS = 144
CUTOFF_HZ = 1800.0
KAISER_BETA = 8.0
HOP = 4  # baseband samples per sub-block: 1 ms sync grid; refinement then finds the sample
GRID_STEP_HZ = 50  # half a tone spacing: worst-case sync mismatch 25 Hz costs < 1 dB
# Sync frequency offsets searched, in grid steps: +/-100 Hz covers walking Doppler
# (+/-83 Hz at 19 kHz) plus 300 ppm of clock offset (+/-6 Hz).
MAX_SHIFT_STEPS = 2
# Grid rows either side of the carrier: the outermost tone (7.5 spacings) plus the shifts.
GRID_HALF = int(round((frame.N_TONES - 1) / 2 * frame.TONE_SPACING_HZ / GRID_STEP_HZ)) + (
    MAX_SHIFT_STEPS
)
# The sync score contrasts each preamble tone with the same tone 1 .. this many symbols
# before and after (mean of 4 neighbours, less noisy than 2: at the same rate of noise
# candidates it found 88% instead of 85% of frames at -8.5 dB, 94% instead of 90%).
SYNC_REACH = 2
BACKENDS = ("cython", "numpy")


@dataclass(frozen=True)
class FrontEnd:
    """Everything the detector derives from the sample rate."""

    sample_rate: int
    baseband_rate: float
    taps: npt.NDArray[np.complex128]
    window_subblocks: int
    window_len: int
    table: npt.NDArray[np.complex128]
    preamble_rows: npt.NDArray[np.int64]
    shifts: npt.NDArray[np.int64]
    scales: npt.NDArray[np.float64]
    delays: npt.NDArray[np.int64]
    neighbour: int  # windows per symbol
    reach: int  # sync contrast neighbours each side; delays include reach * neighbour

    @property
    def lead(self) -> int:
        """Windows from a sync score position to its first preamble window."""
        return self.reach * self.neighbour

    @property
    def group_delay(self) -> float:
        """FIR delay in input samples: baseband sample m describes input time m*D - this."""
        return (N_TAPS - 1) / 2.0


def build_front_end(sample_rate: int) -> FrontEnd:
    """Derive the decimator taps, sync grid and preamble geometry for ``sample_rate``."""
    frame.check_rate(sample_rate)
    fb = sample_rate / DECIMATION
    low = firwin(N_TAPS, CUTOFF_HZ, window=("kaiser", KAISER_BETA), fs=sample_rate)
    omega_c = 2.0 * np.pi * frame.CARRIER_HZ / sample_rate
    taps = low * np.exp(1j * omega_c * np.arange(N_TAPS))
    width = int(round(frame.INTEGRATION_S * fb / HOP))
    # Grid frequencies are multiples of GRID_STEP_HZ, so exp(-j w n) repeats after
    # fb / gcd(fb, step) samples (fb is integral for both supported rates).
    fb_int = sample_rate // DECIMATION
    period = fb_int // gcd(fb_int, GRID_STEP_HZ)
    grid_hz = GRID_STEP_HZ * np.arange(-GRID_HALF, GRID_HALF + 1)
    table = np.exp(-2j * np.pi * np.outer(grid_hz, np.arange(period)) / fb)
    rows = np.array(
        [int(round(frame.tone_offsets_hz()[t] / GRID_STEP_HZ)) + GRID_HALF
         for t in frame.PREAMBLE_TONES],
        dtype=np.int64,
    )
    shifts = np.arange(-MAX_SHIFT_STEPS, MAX_SHIFT_STEPS + 1, dtype=np.int64)
    scales = shifts * GRID_STEP_HZ / frame.CARRIER_HZ
    sym = np.arange(frame.N_PREAMBLE)
    neighbour = int(round(frame.SYMBOL_S * fb / HOP))
    delays = SYNC_REACH * neighbour + np.rint(
        sym[None, :] * frame.SYMBOL_S * fb / (1.0 + scales[:, None]) / HOP
    )
    return FrontEnd(
        sample_rate=sample_rate,
        baseband_rate=fb,
        taps=taps,
        window_subblocks=width,
        window_len=width * HOP,
        table=table,
        preamble_rows=rows,
        shifts=shifts,
        scales=scales,
        delays=delays.astype(np.int64),
        neighbour=neighbour,
        reach=SYNC_REACH,
    )


def kernels(backend: str) -> ModuleType:
    """The kernel module for ``backend``: compiled ``ext._modem`` or its NumPy twin."""
    if backend == "cython":
        return load_kernel("_modem")
    if backend == "numpy":
        return modem_reference
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


def cpu_has_avx2_fma() -> bool:
    """True on an x86-64 CPU with AVX2 and FMA (as NumPy's own dispatch detected them)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # pragma: no cover - NumPy moved it: use the portable build
        return False
    return bool(__cpu_features__.get("AVX2")) and bool(__cpu_features__.get("FMA3"))


def front_kernels(backend: str) -> ModuleType:
    """The module holding ``SyncFrontEnd`` for ``backend``.

    Compiled: ``ext._frontend_avx2`` where the CPU has AVX2 and FMA (the same code with
    twice the SIMD width), else the portable ``ext._frontend``. NumPy: the twin.
    """
    if backend == "cython":
        return load_kernel("_frontend_avx2" if cpu_has_avx2_fma() else "_frontend")
    if backend == "numpy":
        return modem_reference
    raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
