"""Waveform synthesis: one frame, or a repeating emission schedule, as float32 mono.

``level_dbfs`` is the PEAK sample level relative to full scale (1.0). The cross-fades
keep the sum of the two overlapping tones' amplitudes at 1, so the envelope never
exceeds the single-tone peak and the RMS is ``level - 3.01 dB``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from edge.modem import frame

Samples = npt.NDArray[np.float32]


def _check(sample_rate: int, level_dbfs: float) -> None:
    """Validate the rate and level shared by every synthesis entry point."""
    frame.check_rate(sample_rate)
    if not level_dbfs <= 0.0:
        raise ValueError(f"level_dbfs must be <= 0 dBFS (peak), got {level_dbfs}")


def _tone_sequence(tones: npt.NDArray[np.int64], sample_rate: int, amplitude: float) -> Samples:
    """Cross-faded tone sequence: each symbol ramps up over RAMP_S while the last ramps down."""
    slot = frame.SYMBOL_S
    n_total = int(round(frame.FRAME_DURATION_S * sample_rate))
    out = np.zeros(n_total, dtype=np.float64)
    freqs = frame.tone_freqs_hz()
    n_ramp = int(round(frame.RAMP_S * sample_rate))
    for k, tone in enumerate(tones):
        start = int(round(k * slot * sample_rate))
        stop = min(int(round(((k + 1) * slot + frame.RAMP_S) * sample_rate)), n_total)
        t = np.arange(stop - start) / sample_rate
        env = np.ones(stop - start)
        ramp = np.sin(0.5 * np.pi * (np.arange(n_ramp) + 0.5) / n_ramp) ** 2
        env[:n_ramp] = ramp
        # sin^2 up and cos^2 down sum to exactly 1 across each cross-fade.
        env[-n_ramp:] = np.minimum(env[-n_ramp:], ramp[::-1])
        out[start:stop] += env * np.sin(2.0 * np.pi * freqs[tone] * t)
    return (amplitude * out).astype(np.float32)


def synthesize_frame(payload: int, sample_rate: int, level_dbfs: float) -> Samples:
    """The frame carrying ``payload``: FRAME_DURATION_S of float32 mono at ``level_dbfs`` peak."""
    _check(sample_rate, level_dbfs)
    return _tone_sequence(frame.frame_symbols(payload), sample_rate, 10.0 ** (level_dbfs / 20.0))


def emission_schedule(
    payload_for_time: Callable[[float], int],
    sample_rate: int,
    level_dbfs: float,
    period_s: float,
    duration_s: float,
    start_s: float = 0.0,
) -> Samples:
    """``duration_s`` of audio with a frame every ``period_s`` seconds from ``start_s``.

    Frame ``k`` starts at ``start_s + k * period_s`` (seconds from the start of the
    returned buffer) and carries ``payload_for_time(that start time)``, so a rotating
    beacon code can follow its time slot. Frames that would not finish before
    ``duration_s`` are left out (a cut frame would click); silence fills the gaps.
    """
    _check(sample_rate, level_dbfs)
    if period_s < frame.FRAME_DURATION_S:
        raise ValueError(
            f"period_s {period_s} is shorter than one frame ({frame.FRAME_DURATION_S:.3f} s)"
        )
    if duration_s < 0 or start_s < 0:
        raise ValueError("duration_s and start_s must be >= 0")
    out = np.zeros(int(round(duration_s * sample_rate)), dtype=np.float32)
    t = start_s
    while t + frame.FRAME_DURATION_S <= duration_s + 1e-9:
        wave = synthesize_frame(payload_for_time(t), sample_rate, level_dbfs)
        first = int(round(t * sample_rate))
        n = min(wave.size, out.size - first)
        out[first : first + n] += wave[:n]
        t += period_s
    return out
