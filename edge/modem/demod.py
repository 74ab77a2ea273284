"""Decode one sync candidate: refine time/scale, soft-demodulate 16-FSK, Viterbi, CRC, gates.

Soft information: each symbol's 16 tone energies (Goertzel/DFT magnitudes squared)
become symbol log-likelihoods under the noncoherent Rician model
``LL = -S/N0 + ln I0(2 sqrt(E S) / N0)``, with a per-tone noise level ``N0`` (median
of that tone's energies without each symbol's strongest tone, fitted in dB) and a
per-tone signal level ``S`` from a straight-line fit (in dB) over the preamble's
tones, which absorbs microphone roll-off. Bit LLRs follow by log-sum-exp over the
tones whose label has the bit at 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import i0e

from edge.modem import fec, frame
from edge.modem.frontend import GRID_STEP_HZ, FrontEnd

# Refinement around the sync estimate: scale in quarter grid steps (sync is off by at
# most half a step) and timing in baseband samples (sync grid is HOP samples).
REFINE_SCALE_STEPS = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
REFINE_SHIFT_SAMPLES = np.arange(-3, 4)
BAND_HZ = frame.BAND_HIGH_HZ - frame.BAND_LOW_HZ
# The median of an exponential variable is ln 2 times its mean.
LN2 = float(np.log(2.0))
# Limits on the fitted roll-off across the 1.5 kHz of tones: steeper is noise in the fit.
MAX_TILT_DB = 20.0
# Noise floor relative to the strongest tone energy (100 dB down: numerically silent).
NOISE_FLOOR_REL = 1e-10
# Bit LLRs beyond this add nothing but let one wild symbol dominate the path metric.
MAX_BIT_LLR = 30.0
# Floor on the per-tone signal estimate, relative to N0, so ln I0 stays informative.
MIN_SIGNAL_RATIO = 0.05
# Measured (60 s of white noise, CRC bypassed): the best Viterbi path through noise agrees
# with 6-33% of the strongest tones; frames decoded at -7.5 dB SNR agree on 61-72%.
# The gate sits between them, so a noise path must beat the CRC *and* this.
MIN_AGREEMENT = 0.45
BIT_TABLE = frame.symbol_bit_table()
BIT_ZERO_MASK = (BIT_TABLE == 0).astype(np.float64)  # (tone, bit): 1 where the bit is 0
BIT_ONE_MASK = 1.0 - BIT_ZERO_MASK


@dataclass(frozen=True)
class Decoded:
    """A candidate that passed every gate."""

    payload: int
    frame_start_bb: float  # frame start in absolute baseband samples
    scale: float  # Doppler/clock scale: observed frequency = f * (1 + scale)
    snr_db: float
    confidence: float


def _symbol_energies(
    bb: npt.NDArray[np.complex128],
    starts: npt.NDArray[np.int64],
    offsets_hz: npt.NDArray[np.float64],
    fe: FrontEnd,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """DFT energy of each window at each offset frequency, plus each window's power."""
    idx = starts[:, None] + np.arange(fe.window_len)[None, :]
    seg = bb[idx]
    basis = np.exp(
        -2j * np.pi * np.outer(np.arange(fe.window_len), offsets_hz) / fe.baseband_rate
    )
    # einsum, not @: these matrices are tiny, and BLAS would wake its thread pool (whose
    # spinning threads cost more CPU than the product itself on a small edge box).
    return np.abs(np.einsum("sn,nk->sk", seg, basis)) ** 2, (np.abs(seg) ** 2).sum(axis=1)


def _starts(frame_start: float, scale: float, first: int, count: int, fb: float) -> np.ndarray:
    """Baseband start of the integration window of symbols ``first .. first+count-1``."""
    t = frame.RAMP_S + frame.SYMBOL_S * np.arange(first, first + count)
    return np.rint(frame_start + t * fb / (1.0 + scale)).astype(np.int64)


def _tone_offsets(scale: float) -> npt.NDArray[np.float64]:
    """Baseband frequency of every tone under Doppler/clock ``scale``."""
    return frame.tone_freqs_hz() * (1.0 + scale) - frame.CARRIER_HZ


def refine(
    bb: npt.NDArray[np.complex128], frame_start: float, scale0: float, fe: FrontEnd
) -> tuple[float, float]:
    """Best (frame start, scale) near the sync estimate by preamble energy (local search)."""
    step = GRID_STEP_HZ / frame.CARRIER_HZ
    scales = scale0 + REFINE_SCALE_STEPS * step
    tones = np.array(frame.PREAMBLE_TONES)
    t = frame.RAMP_S + frame.SYMBOL_S * np.arange(frame.N_PREAMBLE)
    # starts[scale, shift, symbol]
    starts = np.rint(
        frame_start
        + REFINE_SHIFT_SAMPLES[None, :, None]
        + t[None, None, :] * fe.baseband_rate / (1.0 + scales[:, None, None])
    ).astype(np.int64)
    if starts.min() < 0 or starts.max() + fe.window_len > bb.shape[0]:
        return frame_start, scale0
    seg = bb[starts[..., None] + np.arange(fe.window_len)]  # (scale, shift, symbol, n)
    offs = np.stack([_tone_offsets(sc)[tones] for sc in scales])  # (scale, symbol)
    basis = np.exp(
        -2j * np.pi * offs[:, :, None] * np.arange(fe.window_len)[None, None, :]
        / fe.baseband_rate
    )
    energy = np.abs(np.einsum("kmsn,ksn->kms", seg, basis)) ** 2
    power = (np.abs(seg) ** 2).sum(axis=(2, 3))
    score = energy.sum(axis=2) / np.maximum(power, 1e-300)
    k, m = np.unravel_index(int(np.argmax(score)), score.shape)
    return frame_start + float(REFINE_SHIFT_SAMPLES[m]), float(scales[k])


def _dbfit(values: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> np.ndarray:
    """Straight-line fit in dB of positive ``values`` at tone indices ``x``, over all tones."""
    v_db = 10.0 * np.log10(np.maximum(values, 1e-300))
    # Closed-form least squares (np.polyfit's general solver costs 50x more here).
    xc = x - x.mean()
    slope = float(np.dot(xc, v_db - v_db.mean()) / np.dot(xc, xc))
    max_slope = MAX_TILT_DB / (frame.N_TONES - 1)
    slope = float(np.clip(slope, -max_slope, max_slope))
    icept = float(np.mean(v_db - slope * x))
    return 10.0 ** ((icept + slope * np.arange(frame.N_TONES)) / 10.0)


def noise_levels(data: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-tone noise energy: per-tone medians without each symbol's strongest tone, dB-fitted.

    Dropping the strongest tone removes most signal; the line fit pools the 16 medians
    (lower variance than any one of them) yet follows a tilted noise spectrum.
    """
    masked = data.copy()
    masked[np.arange(data.shape[0]), np.argmax(data, axis=1)] = np.inf
    # Column medians over the finite entries (sorting puts the masked ones last).
    count = np.isfinite(masked).sum(axis=0)
    ordered = np.sort(masked, axis=0)
    cols = np.arange(data.shape[1])
    lo = ordered[np.maximum((count - 1) // 2, 0), cols]
    hi = ordered[np.maximum(count // 2, 0), cols]
    med = np.where(count > 0, 0.5 * (lo + hi), np.nan) / LN2
    # In digital silence the noise is zero; a floor far below the signal keeps the
    # likelihoods finite (an ideal channel, decoded as such).
    floor = max(NOISE_FLOOR_REL * float(data.max()), 1e-30)
    med = np.maximum(np.nan_to_num(med, nan=floor), floor)
    return np.maximum(_dbfit(med, np.arange(frame.N_TONES, dtype=float)), floor)


def _signal_levels(pre: npt.NDArray[np.float64], n0: npt.NDArray[np.float64]) -> np.ndarray:
    """Per-tone signal energy from a dB-linear fit over the preamble tones (roll-off)."""
    tones = np.array(frame.PREAMBLE_TONES)
    sig = pre[np.arange(frame.N_PREAMBLE), tones] - n0[tones]
    fit = _dbfit(np.maximum(sig, MIN_SIGNAL_RATIO * n0[tones]), tones.astype(float))
    return np.maximum(fit, MIN_SIGNAL_RATIO * n0)


def symbol_loglik(
    energy: npt.NDArray[np.float64], signal: npt.NDArray[np.float64], n0: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Noncoherent Rician log-likelihood ratio of each tone vs noise, per symbol."""
    x = 2.0 * np.sqrt(energy * signal[None, :]) / n0[None, :]
    return -signal[None, :] / n0[None, :] + np.log(i0e(x)) + x


def bit_llrs(loglik: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Bit LLRs (positive = 0) in transmission order from per-symbol tone log-likelihoods.

    Log-sum-exp over the tones labelled 0 and 1 for each bit, done as one matrix product
    of the row-max-shifted likelihoods with the two label masks (the shift cancels).
    """
    shifted = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    zero = np.maximum(np.einsum("st,tb->sb", shifted, BIT_ZERO_MASK), 1e-300)
    one = np.maximum(np.einsum("st,tb->sb", shifted, BIT_ONE_MASK), 1e-300)
    return np.clip(np.log(zero / one).reshape(-1), -MAX_BIT_LLR, MAX_BIT_LLR)


def decode_candidate(
    bb: npt.NDArray[np.complex128],
    bb_start: int,
    frame_start: float,
    scale0: float,
    fe: FrontEnd,
    viterbi: fec.ViterbiFn,
) -> Decoded | None:
    """Decode the frame whose start is near absolute baseband ``frame_start``, or None."""
    local_start, scale = refine(bb, frame_start - bb_start, scale0, fe)
    offs = _tone_offsets(scale)
    data_starts = _starts(local_start, scale, frame.N_PREAMBLE, frame.N_DATA, fe.baseband_rate)
    pre_starts = _starts(local_start, scale, 0, frame.N_PREAMBLE, fe.baseband_rate)
    if pre_starts[0] < 0 or data_starts[-1] + fe.window_len > bb.shape[0]:
        return None
    data, _ = _symbol_energies(bb, data_starts, offs, fe)
    pre, _ = _symbol_energies(bb, pre_starts, offs, fe)
    n0 = noise_levels(data)
    signal = _signal_levels(pre, n0)
    loglik = symbol_loglik(data, signal, n0)
    if not np.isfinite(loglik).all():
        return None
    payload, crc_ok = fec.decode_llr(bit_llrs(loglik), viterbi)
    if not crc_ok:
        return None
    expected = frame.data_symbols(payload)
    agreement = float(np.mean(np.argmax(loglik, axis=1) == expected))
    if agreement < MIN_AGREEMENT:
        return None
    rows = np.arange(frame.N_DATA)
    es = np.maximum(data[rows, expected] - n0[expected], 0.0).mean()
    snr = es / n0[expected].mean() * fe.baseband_rate / (BAND_HZ * fe.window_len)
    return Decoded(
        payload=payload,
        frame_start_bb=bb_start + local_start,
        scale=scale,
        snr_db=float(10.0 * np.log10(max(snr, 1e-12))),
        confidence=agreement,
    )
