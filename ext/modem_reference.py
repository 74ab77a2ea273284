"""Pure-NumPy twins of the ``ext._modem`` kernels: the same algorithms, vectorised, for tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def decimate(
    x: npt.NDArray[np.float32],
    taps: npt.NDArray[np.complex128],
    first: int,
    step: int,
    abs_first: int,
    carrier_hz: int,
    rate_hz: int,
    n_out: int,
) -> npt.NDArray[np.complex128]:
    """Same contract as ``ext._modem.decimate``: mixer + complex FIR at decimated points."""
    arr = np.asarray(x)
    if arr.dtype != np.float32 or arr.ndim != 1:
        raise TypeError(f"x must be a 1-D float32 array, got {arr.dtype} with shape {arr.shape}")
    tp = np.asarray(taps, dtype=np.complex128)
    if n_out == 0:
        return np.zeros(0, dtype=np.complex128)
    pos = first + step * np.arange(n_out)
    if pos[0] < tp.shape[0] - 1 or pos[-1] >= arr.shape[0]:
        raise ValueError("output positions fall outside the input history")
    # Rows of the input, newest sample first, so the dot with the taps is the FIR.
    idx = pos[:, None] - np.arange(tp.shape[0])[None, :]
    # einsum keeps BLAS (and its thread pool) out, so the twin runs on one core like the kernel.
    acc = np.einsum("mk,k->m", arr.astype(np.float64)[idx], tp)
    num = (carrier_hz * (abs_first + step * np.arange(n_out, dtype=np.int64))) % rate_hz
    return acc * np.exp(-2j * np.pi * num / rate_hz)


def subblock_dft(
    xb: npt.NDArray[np.complex128], table: npt.NDArray[np.complex128], phase0: int, hop: int
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]]:
    """Same contract as ``ext._modem.subblock_dft``: per sub-block DFT sums and powers."""
    x = np.asarray(xb, dtype=np.complex128)
    tab = np.asarray(table, dtype=np.complex128)
    n_sub = x.shape[0] // hop
    x = x[: n_sub * hop]
    cols = (phase0 + np.arange(x.shape[0])) % tab.shape[1]
    weighted = tab[:, cols] * x[None, :]
    sums = weighted.reshape(tab.shape[0], n_sub, hop).sum(axis=2)
    power = (np.abs(x) ** 2).reshape(n_sub, hop).sum(axis=1)
    return sums, power


def sliding_energy(
    sums: npt.NDArray[np.complex128], power: npt.NDArray[np.float64], width: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Same contract as ``ext._modem.sliding_energy``: windowed |sum|^2 and band energy."""
    s = np.asarray(sums, dtype=np.complex128)
    p = np.asarray(power, dtype=np.float64)
    n_win = max(p.shape[0] - width + 1, 0)
    if n_win == 0:
        return np.zeros((s.shape[0], 0)), np.zeros(0)
    win_s = np.lib.stride_tricks.sliding_window_view(s, width, axis=1).sum(axis=2)
    win_p = np.lib.stride_tricks.sliding_window_view(p, width).sum(axis=1)
    return np.abs(win_s) ** 2, win_p


def sync_scores(
    energy: npt.NDArray[np.float64],
    band: npt.NDArray[np.float64],
    tones: npt.ArrayLike,
    delays: npt.ArrayLike,
    shifts: npt.ArrayLike,
    neighbour: int,
    reach: int,
    window_len: float,
    clip: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Same contract as ``ext._modem.sync_scores``: best-offset preamble match per start."""
    e = np.asarray(energy, dtype=np.float64)
    bd = np.asarray(band, dtype=np.float64)
    tn = np.asarray(tones, dtype=np.int64)
    dl = np.asarray(delays, dtype=np.int64)
    sh = np.asarray(shifts, dtype=np.int64)
    n_pos = max(e.shape[1] - int(dl.max()) - reach * neighbour, 0)
    starts = np.arange(n_pos)
    inv = np.where(bd > 0, 1.0 / (window_len * np.where(bd > 0, bd, 1.0)), 0.0)
    ratio = e * inv
    clipped = np.empty((sh.shape[0], n_pos))
    raw = np.empty((sh.shape[0], n_pos))
    for o in range(sh.shape[0]):
        cols = starts[None, :] + dl[o][:, None]
        rows = (tn + sh[o])[:, None]
        around = sum(
            ratio[rows, cols - q * neighbour] + ratio[rows, cols + q * neighbour]
            for q in range(1, reach + 1)
        )
        contrast = ratio[rows, cols] - (0.5 / reach) * around
        clipped[o] = np.minimum(contrast, clip).sum(axis=0)
        raw[o] = contrast.sum(axis=0)
    if n_pos == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    # argmax takes the first of equal maxima, as the kernel's strict '>' does.
    arg = np.argmax(raw, axis=0)
    n_sym = tn.shape[0]
    return clipped.max(axis=0) / n_sym, raw[arg, starts] / n_sym, arg.astype(np.int64)


def window_energies(
    xb: npt.NDArray[np.complex128],
    starts: npt.ArrayLike,
    freqs: npt.ArrayLike,
    length: int,
    rate: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Same contract as ``ext._modem.window_energies``: windowed DFT energies and powers."""
    x = np.asarray(xb, dtype=np.complex128)
    st = np.asarray(starts, dtype=np.int64)
    fq = np.asarray(freqs, dtype=np.float64)
    if st.size and (st.min() < 0 or st.max() + length > x.shape[0]):
        raise ValueError("a window falls outside the signal")
    seg = x[st[:, None] + np.arange(length)[None, :]]  # (w, n)
    basis = np.exp(-2j * np.pi * fq[:, :, None] * np.arange(length)[None, None, :] / rate)
    # einsum, not @: these are small, and BLAS would wake its thread pool.
    return np.abs(np.einsum("wn,wkn->wk", seg, basis)) ** 2, (np.abs(seg) ** 2).sum(axis=1)


def viterbi_symbols(
    metric: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint8]:
    """Same contract as ``ext._modem.viterbi_symbols``: terminated max-log symbol Viterbi."""
    mv = np.asarray(metric, dtype=np.float64)
    lb = np.asarray(labels, dtype=np.int64)
    n_states = lb.shape[0] // 4
    state_bits = n_states.bit_length() - 1
    top = state_bits - 2
    n_sym = mv.shape[0]
    states = np.arange(n_states)
    k = np.arange(4)[:, None]
    preds = (states[None, :] >> 2) | (k << top)  # (k, new state)
    regs = states[None, :] | (k << state_bits)
    acc = np.full(n_states, -1e300)
    acc[0] = 0.0
    decisions = np.zeros((n_sym, n_states), dtype=np.int64)
    for t in range(n_sym):
        cand = acc[preds] + mv[t, lb[regs]]
        # argmax takes the first of equal maxima, as the kernel's strict '>' does.
        decisions[t] = np.argmax(cand, axis=0)
        acc = cand[decisions[t], states]
    bits = np.zeros(2 * n_sym, dtype=np.uint8)
    st = 0
    for t in range(n_sym - 1, -1, -1):
        bits[2 * t] = (st >> 1) & 1
        bits[2 * t + 1] = st & 1
        st = (st >> 2) | (int(decisions[t, st]) << top)
    return bits
