"""Decode one sync candidate: refine time/scale, soft-demodulate 16-FSK, Viterbi, CRC, gates.

Steps: coarse refinement on the preamble, a cheap data-evidence test, a decode at that
estimate, then (after a failed CRC, unless that path's energy already looks like noise)
a wide decision-free time/scale search and another
decode, then (after another) fine re-timing around it with the decoded path standing in
for the data and a last decode; if every pass fails the CRC, CRC-aided list decoding
checks the next best paths of the last pass. A result must pass the CRC and two gates.

Soft information: each symbol's 16 tone energies (DFT magnitudes squared) become
symbol log-likelihoods under the noncoherent Rician model
``LL = -S/N0 + ln I0(2 sqrt(E S) / N0)``, with a per-tone noise level ``N0`` (median
of that tone's energies without each symbol's strongest tone, fitted in dB) and a
per-tone signal level ``S`` from a weighted straight-line fit (in dB) over every
symbol's tone, which absorbs microphone roll-off. The Viterbi decoder scores whole
symbols with these (no bit LLRs: see :mod:`edge.modem.fec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt

from edge.modem import fec, frame
from edge.modem.frontend import GRID_STEP_HZ, FrontEnd
from ext import modem_reference

# Refinement around the sync estimate: scale in quarter grid steps (sync is off by at
# most half a step) and timing in baseband samples (sync grid is HOP samples).
REFINE_SCALE_STEPS = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
REFINE_SHIFT_SAMPLES = np.arange(-3, 4)
COARSE_SCALE_STEPS = REFINE_SCALE_STEPS * (GRID_STEP_HZ / frame.CARRIER_HZ)
PREAMBLE = np.array(frame.PREAMBLE_TONES, dtype=np.int64)
# A frame's tones as far as known before decoding: the preamble, then data (0) to fill in.
PREAMBLE_THEN_DATA = np.array(frame.PREAMBLE_TONES + (0,) * frame.N_DATA, dtype=np.int64)
TONE_FREQS_HZ = frame.tone_freqs_hz()
# Start of each symbol's integration window after the frame start, in seconds.
SYMBOL_STARTS_S = frame.RAMP_S + frame.SYMBOL_S * np.arange(frame.N_SYMBOLS)
# Second, whole-frame refinement: +/-8 Hz in 2 Hz steps (the coarse grid is 12.5 Hz;
# 12.5 Hz of error alone cost ~0.4 dB at -7.5 dB) and +/-2 samples.
FINE_SCALE_STEPS_HZ = np.arange(-4, 5) * 2.0
FINE_SHIFT_SAMPLES = np.arange(-2, 3)
# Wide search after the first decode fails: +/-16 Hz in 2 Hz steps and +/-8 samples
# (+/-2 ms) around the coarse estimate, scored on every symbol without data decisions.
# Measured (the same 381 sync candidates at -8 dB / 354 at -8.5 dB): frames decoded
# 254 -> 289 and 153 -> 175 (with the true start and scale: 291 and 177); the fine
# search alone (+/-2 samples, +/-8 Hz, scored on the decoded path) stays near the
# coarse estimate, whose timing is off by more than 4 samples for 1 frame in 10.
WIDE_SCALE_STEPS_HZ = np.arange(-8, 9) * 2.0
WIDE_SHIFT_SAMPLES = np.arange(-8, 9)
BAND_HZ = frame.BAND_HIGH_HZ - frame.BAND_LOW_HZ
# Read-only: the compiled candidate kernels check these frame tables once and then
# know them by identity (as fec.SYMBOL_LABELS).
for _table in (PREAMBLE, TONE_FREQS_HZ, SYMBOL_STARTS_S):
    _table.setflags(write=False)
# The median of an exponential variable is ln 2 times its mean.
LN2 = float(np.log(2.0))
# Limits on the fitted roll-off across the 1.5 kHz of tones: steeper is noise in the fit.
MAX_TILT_DB = 20.0
# Noise floor relative to the strongest tone energy (100 dB down: numerically silent).
NOISE_FLOOR_REL = 1e-10
# Floor on the per-tone signal estimate, relative to N0, so ln I0 stays informative.
MIN_SIGNAL_RATIO = 0.05
# Gates a decoded path must pass besides the CRC (so a noise path must beat the CRC
# *and* these). Measured on 6,000 decodes at random places in white noise (CRC
# ignored) vs 130 right decodes at -8 dB in-band SNR: the share of data symbols whose
# strongest tone is the path's had noise median 0.46 (max 0.65), frames 0.41-0.76; the
# mean energy excess over the noise on the path's tones, (E - N0) / N0, had noise
# median 2.0 (99.9th percentile 2.85), frames at -8 dB median 3.5 (min 2.5).
# Both gates together pass 0.4% of noise paths and 95% of right decodes at -8 dB.
# Re-measured through the whole pipeline (CRC ignored): ~2% of white-noise sync
# candidates past the evidence test, but about half of music-like ones (tonal energy
# in the band: there the CRC is the protection), and 93% of right decodes at -8 .. -9 dB.
MIN_AGREEMENT = 0.45
# Decoding attempts per candidate: at the coarse estimate, then at the wide search's
# estimate, then re-timed on the fine grid around that with the previous attempt's path.
DECODE_PASSES = 3
# Pre-decode test on data_evidence (see there). Measured on sync candidates in 2 min of
# white noise (sync threshold 0.05): median 3.37, 99th percentile 3.92, max 4.11; on
# frames that then decoded at -8.5 / -9 dB: min 3.83, 5th percentile 3.86. At 3.75 it
# passes ~5% of noise candidates and every frame that would decode.
MIN_EVIDENCE = 3.75
MIN_PATH_EXCESS = 2.7
# After the first decode fails the CRC, the wide search, fine re-timing, two more
# decodes and the list search (~1.5 ms together) run only if that first Viterbi path held
# at least this mean energy excess over the noise on its tones (mean (E - N0) / N0, as
# MIN_PATH_EXCESS). Measured on candidates past the evidence test: white noise at a
# constant level (56 in 20 min, all failing every pass) median 2.34, 73% below 2.4;
# frames that decoded only on a later pass (387 at -9 .. -7 dB AWGN and -4 .. -2 dB
# impaired) median 3.15, 1.8% below 2.4 (0.6% of all frames decoded at -8 dB, i.e.
# ~0.01 dB on the 50% point); frames that decode on the first pass never reach it.
MIN_RETRY_EXCESS = 2.4
# CRC-aided list decoding after the last pass fails the CRC: the best paths checked
# (the first is the Viterbi path). Measured, 400 frames per point, same audio: AWGN
# success at -8 dB 45.8% -> 59.8% (L=4: 55.5%, L=16: 62.0%), at -8.5 dB 25.5% -> 32.5%.
# Cost: each wrong path checked passes the CRC with probability 2**-16 and the gates
# below hardly tell a wrong path of a real frame from the right one (they pass about
# half): a frame that fails every pass now has up to 7 more wrong paths checked, ~3.3
# of them gate-passing (measured at -8 .. -9 dB AWGN): about 4,000-5,000 per full
# bench run (both SNR curves), i.e. ~0.06-0.08 expected wrong payloads per run. On
# beacon-free audio (same pipeline, paths counted before the CRC): ~70 gate-passing
# listed paths an hour of white noise, ~600 of music-like audio (most music candidates
# skip the list: see MAX_LIST_EXCESS), i.e. ~0.001 and ~0.01 expected false frames an
# hour from the list. A rotating code with a wrong payload still fails the hub's MAC.
LIST_PATHS = 8
# No list search when the Viterbi path already holds this much energy over the noise
# (mean (E - N0) / N0 on its tones): such a candidate is a strong frame seen off-time,
# which no listed path decodes, and each search is a chance for a wrong payload.
# Measured: frames the list recovered had at most 5.2 (impaired, -3 dB); off-time
# candidates of 0 dB AWGN frames have ~8, of +3 dB impaired ones a median of 6.1.
MAX_LIST_EXCESS = 6.0


@dataclass(frozen=True)
class Decoded:
    """A candidate that passed every gate."""

    payload: int
    frame_start_bb: float  # frame start in absolute baseband samples
    scale: float  # Doppler/clock scale: observed frequency = f * (1 + scale)
    snr_db: float
    confidence: float


def _local_search(
    bb: npt.NDArray[np.complex128],
    frame_start: float,
    scales: npt.NDArray[np.float64],
    shifts: npt.NDArray[np.int64],
    tones: npt.NDArray[np.int64],
    fe: FrontEnd,
    k: ModuleType,
) -> tuple[float, float] | None:
    """(frame start, scale) on the grid whose windows hold the most energy at ``tones``.

    ``tones[i]`` is the tone expected in symbol ``i`` (from 0); the score is the energy
    at those tones over the windows' total energy. None if a window leaves ``bb``.
    """
    t = frame.RAMP_S + frame.SYMBOL_S * np.arange(tones.shape[0])
    # [scale, shift, symbol]
    starts = np.rint(
        frame_start
        + shifts[None, :, None]
        + t[None, None, :] * fe.baseband_rate / (1.0 + scales[:, None, None])
    ).astype(np.int64)
    if starts.min() < 0 or starts.max() + fe.window_len > bb.shape[0]:
        return None
    # (scale, symbol): each tone's baseband frequency under each scale.
    offs = TONE_FREQS_HZ[tones][None, :] * (1.0 + scales[:, None]) - frame.CARRIER_HZ
    # Windows listed [scale, symbol, shift], so the shifts of a symbol share one basis
    # (``window_energies_direct``: fine_refine 0.37 -> 0.13 ms), then put back in [scale,
    # shift, symbol] order, contiguous, so the sums below add in the same order.
    by_symbol = np.ascontiguousarray(starts.transpose(0, 2, 1)).ravel()
    freqs = np.repeat(offs.ravel(), shifts.shape[0]).reshape(-1, 1)
    energy, power = k.window_energies_direct(
        bb, by_symbol, freqs, fe.window_len, fe.baseband_rate
    )
    swapped = (scales.shape[0], tones.shape[0], shifts.shape[0])
    energy = np.ascontiguousarray(energy.reshape(swapped).transpose(0, 2, 1))
    power = np.ascontiguousarray(power.reshape(swapped).transpose(0, 2, 1))
    score = energy.sum(axis=2) / np.maximum(power.sum(axis=2), 1e-300)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return frame_start + float(shifts[j]), float(scales[i])


def coarse_frame(
    bb: npt.NDArray[np.complex128], frame_start: float, scale0: float, fe: FrontEnd,
    k: ModuleType,
) -> tuple[float, float, npt.NDArray[np.float64] | None]:
    """Best (frame start, scale) near the sync estimate by preamble energy, and its energies.

    A local search on a coarse grid (quarter sync steps, 12.5 Hz, and +/-3 samples),
    then every symbol's tone energies there (None if the frame leaves ``bb``): one
    kernel call (``coarse_frame``), since every sync candidate pays for it.
    """
    return k.coarse_frame(  # type: ignore[no-any-return]
        bb, frame_start, scale0, COARSE_SCALE_STEPS, REFINE_SHIFT_SAMPLES, PREAMBLE,
        TONE_FREQS_HZ, SYMBOL_STARTS_S, float(frame.CARRIER_HZ), fe.window_len,
        fe.baseband_rate,
    )


def fine_refine(
    bb: npt.NDArray[np.complex128],
    frame_start: float,
    scale: float,
    decided: npt.NDArray[np.int64],
    fe: FrontEnd,
    k: ModuleType,
) -> tuple[float, float]:
    """Whole-frame refinement of a (frame start, scale) estimate on a fine grid.

    ``decided`` is the tone taken for each of the frame's symbols (the preamble, then a
    guess of the data). 45 symbols instead of the preamble's 8 pin frequency (2 Hz
    grid) and timing (+/-2 samples) down far better: measured ~0.25 dB more frame
    success at -8 dB.
    """
    fine = _local_search(
        bb, frame_start, scale + FINE_SCALE_STEPS_HZ / frame.CARRIER_HZ, FINE_SHIFT_SAMPLES,
        decided, fe, k,
    )
    return fine if fine is not None else (frame_start, scale)


def wide_refine(
    bb: npt.NDArray[np.complex128], frame_start: float, scale: float, fe: FrontEnd,
    k: ModuleType,
) -> tuple[float, float]:
    """(frame start, scale) on a wide grid around the coarse estimate, without decisions.

    Score: energy at each preamble symbol's known tone plus the strongest tone of each
    data symbol, over the windows' total energy. Unlike :func:`fine_refine` it needs no
    decoded path (wrong on a third of the symbols of a frame that failed the CRC), so it
    can search far enough to pull in a coarse estimate that is several samples off.
    Two stages (every other grid point, then the neighbours of the best) cost a third
    of the full grid; the score is flat over +/-2 samples of a clean frame, so the
    coarse stage cannot step over its peak.
    """
    scales = scale + WIDE_SCALE_STEPS_HZ[::2] / frame.CARRIER_HZ
    shifts = WIDE_SHIFT_SAMPLES[::2].astype(np.float64)
    best = _wide_best(bb, frame_start, shifts, scales, fe, k)
    if best is None:
        return frame_start, scale
    step_hz = float(WIDE_SCALE_STEPS_HZ[1] - WIDE_SCALE_STEPS_HZ[0])
    near_shifts = best[0] + np.array([-1.0, 0.0, 1.0])
    near_scales = best[1] + np.array([-step_hz, 0.0, step_hz]) / frame.CARRIER_HZ
    found = _wide_best(bb, frame_start, near_shifts, near_scales, fe, k)
    if found is None:
        found = best
    return frame_start + found[0], found[1]


def _wide_best(
    bb: npt.NDArray[np.complex128],
    frame_start: float,
    shifts: npt.NDArray[np.float64],
    scales: npt.NDArray[np.float64],
    fe: FrontEnd,
    k: ModuleType,
) -> tuple[float, float] | None:
    """(shift, scale) with the best decision-free score, or None if a window leaves ``bb``.

    The scores come from one kernel call (``wide_scores``: each scale's windows by prefix
    sums, scored in place); the first best wins.
    """
    score = k.wide_scores(
        bb, frame_start, shifts, scales, PREAMBLE, TONE_FREQS_HZ, SYMBOL_STARTS_S,
        float(frame.CARRIER_HZ), fe.window_len, fe.baseband_rate,
    )
    if score is None:
        return None
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return float(shifts[j]), float(scales[i])


def frame_energies(
    bb: npt.NDArray[np.complex128], frame_start: float, scale: float, fe: FrontEnd,
    k: ModuleType,
) -> npt.NDArray[np.float64] | None:
    """Tone energies of every symbol of the frame at (start, scale), or None if out of ``bb``.

    One kernel call (``frame_energies``: the same numbers as ``window_energies`` on the
    same windows at the modem's window lengths, 45 -> 16 us).
    """
    return k.frame_energies(  # type: ignore[no-any-return]
        bb, frame_start, scale, TONE_FREQS_HZ, SYMBOL_STARTS_S, float(frame.CARRIER_HZ),
        fe.window_len, fe.baseband_rate,
    )


def data_evidence(energy: npt.NDArray[np.float64]) -> float:
    """Mean strongest-tone energy of the data symbols over the typical tone energy.

    White noise alone gives ~3.4 (the mean of the largest of 16 exponentials, over
    their median / ln 2); a frame lifts it by its per-symbol SNR. A cheap test that
    drops most noise sync candidates before the costlier fine refinement and decoding.
    """
    data = energy[frame.N_PREAMBLE :]
    typical = _median(data) / LN2
    # sum / n is what .mean() computes (the same float), without its Python overhead.
    strongest = float(np.add.reduce(np.maximum.reduce(data, axis=1))) / data.shape[0]
    return strongest / max(typical, 1e-300)


def _median(values: npt.NDArray[np.float64]) -> float:
    """np.median of all of ``values`` (the same value), by one partition: ~5x cheaper here."""
    n = values.size
    half = n // 2
    if n % 2:
        return float(np.partition(values, half, axis=None)[half])
    part = np.partition(values, (half - 1, half), axis=None)
    return float((part[half - 1] + part[half]) / 2.0)


def noise_levels(data: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-tone noise energy: per-tone medians without each symbol's strongest tone, dB-fitted.

    Dropping the strongest tone removes most signal; the line fit pools the 16 medians
    (lower variance than any one of them) yet follows a tilted noise spectrum. (NumPy
    reference; the decoder runs it inside ``soft_symbols``.)
    """
    return modem_reference.noise_levels(data, MAX_TILT_DB, NOISE_FLOOR_REL)


def signal_levels(
    pre: npt.NDArray[np.float64], data: npt.NDArray[np.float64], n0: npt.NDArray[np.float64]
) -> np.ndarray:
    """Per-tone signal energy: a dB-line fit over every symbol's tone (roll-off).

    Each symbol contributes its tone's energy above the noise: the known tone in the
    preamble, the strongest tone in the data. Pooling all 45 symbols per tone (weighted
    by how often each tone was seen) keeps the fitted tilt steady at low SNR, where the
    8 preamble symbols alone gave slopes wrong by several dB: measured, the estimate
    from the preamble alone cost ~0.3 dB of frame success at -8 dB. (NumPy reference.)
    """
    return modem_reference.signal_levels(
        pre, data, n0, PREAMBLE, MAX_TILT_DB, MIN_SIGNAL_RATIO
    )


def symbol_loglik(
    energy: npt.NDArray[np.float64], signal: npt.NDArray[np.float64], n0: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Noncoherent Rician log-likelihood ratio of each tone vs noise, per symbol.

    ``-S / N0 + ln I0(2 sqrt(E S) / N0)``, ln I0 by polynomials within 5e-7 of the exact
    value (``ext.modem_reference.log_i0``).
    """
    return modem_reference.symbol_loglik(energy, signal, n0)


def soft_symbols(
    energy: npt.NDArray[np.float64], k: ModuleType
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(noise per tone, data symbols' tone log-likelihoods) of a frame's energies.

    :func:`noise_levels`, :func:`signal_levels` and :func:`symbol_loglik` in one kernel
    call (``soft_symbols``: every decode pass pays for them, ~0.2 ms in NumPy).
    """
    return k.soft_symbols(  # type: ignore[no-any-return]
        energy, PREAMBLE, MAX_TILT_DB, NOISE_FLOOR_REL, MIN_SIGNAL_RATIO
    )


def path_gates(
    loglik: npt.NDArray[np.float64],
    data: npt.NDArray[np.float64],
    n0: npt.NDArray[np.float64],
    expected: npt.NDArray[np.int64],
) -> tuple[float, npt.NDArray[np.float64]] | None:
    """(agreement, energy on the path's tones) if a decoded path passes both gates, else None."""
    path = _on_path(data, n0, expected)
    agreement = _agreement(loglik, expected)
    if agreement < MIN_AGREEMENT or _excess(*path) < MIN_PATH_EXCESS:
        return None
    return agreement, path[0]


_DATA_ROWS = np.arange(frame.N_DATA)


def _on_path(
    data: npt.NDArray[np.float64], n0: npt.NDArray[np.float64], expected: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(energy, noise level) at each data symbol's tone on a path."""
    return data[_DATA_ROWS[: data.shape[0]], expected], n0[expected]


def _agreement(loglik: npt.NDArray[np.float64], expected: npt.NDArray[np.int64]) -> float:
    """Share of data symbols whose most likely tone is the path's (as np.mean would)."""
    return np.count_nonzero(np.argmax(loglik, axis=1) == expected) / expected.shape[0]


def _excess(path_energy: npt.NDArray[np.float64], path_n0: npt.NDArray[np.float64]) -> float:
    """Mean energy excess over the noise, (E - N0) / N0, on a path's tones.

    (sum / n: the same float as ``np.mean``, whose Python overhead is most of the cost.)
    """
    return float(np.add.reduce((path_energy - path_n0) / path_n0)) / path_energy.shape[0]


def _path_excess(
    data: npt.NDArray[np.float64], n0: npt.NDArray[np.float64], expected: npt.NDArray[np.int64]
) -> float:
    """Mean energy excess over the noise, (E - N0) / N0, on a path's tones."""
    return _excess(*_on_path(data, n0, expected))


def decode_candidate(
    bb: npt.NDArray[np.complex128],
    bb_start: int,
    frame_start: float,
    scale0: float,
    fe: FrontEnd,
    k: ModuleType,
) -> Decoded | None:
    """Decode the frame whose start is near absolute baseband ``frame_start``, or None."""
    start1, scale1, energy1 = coarse_frame(bb, frame_start - bb_start, scale0, fe, k)
    if energy1 is None or data_evidence(energy1) < MIN_EVIDENCE:
        return None
    # Decode at the coarse estimate (enough for a strong frame); after a failed CRC,
    # re-time the frame on the wide grid and decode again; after another, re-time it on
    # the fine grid around that using the decoded path (right on most symbols even then)
    # as the data, and decode again.
    local_start, scale, energy = start1, scale1, energy1
    decided = PREAMBLE_THEN_DATA.copy()
    for attempt in range(DECODE_PASSES):
        if attempt:
            if attempt == 1:
                local_start, scale = wide_refine(bb, start1, scale1, fe, k)
            else:
                local_start, scale = fine_refine(bb, local_start, scale, decided, fe, k)
            found = frame_energies(bb, local_start, scale, fe, k)
            if found is None:
                return None
            energy = found
        data = energy[frame.N_PREAMBLE :]
        n0, loglik = soft_symbols(energy, k)
        if not np.isfinite(loglik).all():
            return None
        payload, crc_ok, expected = fec.decode_tones(loglik, k.viterbi_tones)
        if crc_ok:
            break
        if attempt == 0 and _path_excess(data, n0, expected) < MIN_RETRY_EXCESS:
            return None  # most likely noise: not worth the re-timing (see there)
        decided[frame.N_PREAMBLE :] = expected
    else:
        # Every pass failed the CRC: look for a path that passes it among the next best
        # paths of the last (best-timed) pass.
        if _path_excess(data, n0, expected) > MAX_LIST_EXCESS:
            return None
        listed = fec.decode_list(loglik, LIST_PATHS, k.list_paths)
        if listed is None:
            return None
        payload, expected, _ = listed
    # The gates (as path_gates), then the SNR, from one look-up of the path's tones.
    path_energy, path_n0 = _on_path(data, n0, expected)
    agreement = _agreement(loglik, expected)
    if agreement < MIN_AGREEMENT or _excess(path_energy, path_n0) < MIN_PATH_EXCESS:
        return None
    n = path_energy.shape[0]
    es = float(np.add.reduce(np.maximum(path_energy - path_n0, 0.0))) / n
    snr = es / (float(np.add.reduce(path_n0)) / n) * fe.baseband_rate / (
        BAND_HZ * fe.window_len
    )
    return Decoded(
        payload=payload,
        frame_start_bb=bb_start + local_start,
        scale=scale,
        snr_db=float(10.0 * np.log10(max(snr, 1e-12))),
        confidence=agreement,
    )
