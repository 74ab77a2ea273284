"""Render what a (possibly moving) listener hears from beacon emissions in a room.

Each emission is convolved with the room response at the listener's position when it
arrives, then read out along the listener's exact time-varying direct-path delay, so
walking produces the Doppler shift of its velocity relative to the beacon. Reflections
ride on that same time warp (each really has its own shift between -v/c and +v/c of the
carrier: within +/-83 Hz at 1.5 m/s, which the modem's guard band absorbs, so the
approximation only moves reflections within that span). Everything works on the
complex baseband of the 18-20 kHz band, decimated 4x: it changes slowly, so linear
interpolation of it is exact to ~1e-3, where interpolating the 19 kHz carrier itself
would lose several dB. The phone's sample clock runs ``clock_ppm`` fast or slow against
true time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from firmware_sim.acoustics.room import (
    BAND_CENTER_HZ,
    MIN_DISTANCE_M,
    Point,
    Response,
    Room,
    impulse_response,
)

# Parts per million.
PPM = 1e-6
# The 18-20 kHz band is rendered on a complex baseband at 1/4 of the sample rate
# (12 kHz at 48 kHz): the band is +/-1 kHz wide, so 4x decimation keeps a 6x margin for
# the linear interpolation of delays, and every convolution is 4x shorter.
BASEBAND_DECIMATION = 4
# A walking listener's delay changes by < 5 ms over a frame (1.5 m/s x 0.5 s / c):
# look 50 ms either side of the static arrival for samples that hear the emission.
WALK_SLACK_S = 0.05


class Trajectory(Protocol):
    """Where the listener is at true times ``t_s`` (array in, N x 3 metres out)."""

    def positions(self, t_s: np.ndarray) -> np.ndarray:
        """Listener positions at ``t_s``."""
        ...


@dataclass(frozen=True, slots=True)
class Still:
    """A listener standing at one point."""

    point: Point

    def positions(self, t_s: np.ndarray) -> np.ndarray:
        """The same point for every time."""
        return np.broadcast_to(np.asarray(self.point, dtype=float), (np.size(t_s), 3))


@dataclass(frozen=True, slots=True)
class Emission:
    """One frame played by a beacon: where, when (true time), and its digital samples.

    ``samples`` are already scaled to the listener's digital units at 1 m (see
    ``firmware_sim.calibration.emitter_to_mic_gain``).
    """

    source: Point
    start_s: float
    samples: np.ndarray


def _distances(traj: Trajectory, t_s: np.ndarray, source: Point) -> np.ndarray:
    """Listener-to-source distances along the trajectory (clamped near zero)."""
    pos = traj.positions(t_s)
    d = np.linalg.norm(pos - np.asarray(source, dtype=float), axis=1)
    return np.maximum(d, MIN_DISTANCE_M)


def phone_times(start_s: float, n_samples: int, sample_rate: int, clock_ppm: float) -> np.ndarray:
    """True time of each phone sample when its clock runs ``clock_ppm`` off nominal."""
    true_rate = sample_rate * (1.0 + clock_ppm * PPM)
    return start_s + np.arange(n_samples) / true_rate


def _baseband(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Complex baseband of the beacon band, decimated by BASEBAND_DECIMATION.

    Mix the band centre to 0 Hz, keep only |f| < the decimated Nyquist in the frequency
    domain and inverse-transform at the short length: one FFT, no filter design. The
    result is half the analytic signal (x = 2 Re{b e^{jwt}}).
    """
    n = samples.size
    n_fft = sp_fft.next_fast_len(n + BASEBAND_DECIMATION, real=False)
    n_fft += (-n_fft) % BASEBAND_DECIMATION
    w = 2.0 * math.pi * BAND_CENTER_HZ / sample_rate
    spec = sp_fft.fft(samples * np.exp(-1j * w * np.arange(n)), n_fft)
    m = n_fft // BASEBAND_DECIMATION
    keep = np.concatenate((spec[: m // 2], spec[n_fft - m // 2 :]))
    return sp_fft.ifft(keep) / BASEBAND_DECIMATION


def _kernel(resp: Response, sample_rate: int) -> np.ndarray:
    """The response on the decimated complex baseband: each path's carrier phase and its
    exact fractional delay (linear taps; the band is < 1/6 of the baseband rate wide)."""
    rate = sample_rate / BASEBAND_DECIMATION
    delays = np.concatenate(([0.0], resp.reflection_delays_s))
    gains = np.concatenate(([resp.direct_gain], resp.reflection_gains))
    phased = gains * np.exp(-2j * math.pi * BAND_CENTER_HZ * delays)
    pos = delays * rate
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    kernel = np.zeros(int(lo.max()) + 2, dtype=complex)
    np.add.at(kernel, lo, phased * (1.0 - frac))
    np.add.at(kernel, lo + 1, phased * frac)
    return kernel


def render_emission(
    room: Room,
    emission: Emission,
    traj: Trajectory,
    t_phone: np.ndarray,
    out: np.ndarray,
    sample_rate: int,
) -> None:
    """Add one emission, as heard along ``traj``, into ``out`` (phone samples at ``t_phone``)."""
    c = room.speed_of_sound_m_s
    src = emission.source
    # Where the listener is when the frame's middle arrives (one fixed-point step).
    mid = emission.start_s + emission.samples.size / sample_rate / 2.0
    d0 = float(_distances(traj, np.array([mid]), src)[0])
    d0 = float(_distances(traj, np.array([mid + d0 / c]), src)[0])
    listener = tuple(traj.positions(np.array([mid + d0 / c]))[0])
    resp = impulse_response(room, src, listener)  # type: ignore[arg-type]
    base = signal.oaconvolve(_baseband(emission.samples, sample_rate), _kernel(resp, sample_rate))
    span_s = base.size * BASEBAND_DECIMATION / sample_rate
    # Phone samples that can receive this emission.
    lo = emission.start_s + resp.direct_delay_s - WALK_SLACK_S
    hi = emission.start_s + resp.direct_delay_s + span_s + WALK_SLACK_S
    i0, i1 = np.searchsorted(t_phone, [lo, hi])
    if i1 <= i0:
        return
    t = t_phone[i0:i1]
    d = _distances(traj, t, src)
    # Fractional sample index (full rate) along the exact direct-path delay of each sample.
    m = (t - emission.start_s - d / c) * sample_rate
    pos = m / BASEBAND_DECIMATION
    valid = (pos >= 0.0) & (pos <= base.size - 1)
    if not valid.any():
        return
    d, m, pos = d[valid], m[valid], pos[valid]
    grid = np.arange(base.size)
    seg = np.interp(pos, grid, base.real) + 1j * np.interp(pos, grid, base.imag)
    w = 2.0 * math.pi * BAND_CENTER_HZ / sample_rate
    heard = 2.0 * (seg * np.exp(1j * w * m)).real * (resp.direct_delay_s * c / d)
    out[np.nonzero(valid)[0] + i0] += heard


def render(
    room: Room,
    emissions: Iterable[Emission],
    traj: Trajectory,
    start_s: float,
    n_samples: int,
    sample_rate: int,
    clock_ppm: float = 0.0,
) -> np.ndarray:
    """Everything the listener hears from ``emissions`` over ``n_samples`` phone samples."""
    t_phone = phone_times(start_s, n_samples, sample_rate, clock_ppm)
    out = np.zeros(n_samples)
    for emission in emissions:
        render_emission(room, emission, traj, t_phone, out, sample_rate)
    return out
