"""Pure-NumPy twins of the ``ext._modem`` kernels: the same algorithms, vectorised, for tests."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import numpy.typing as npt

# Heap entries the list search may push before it gives up (ties on a flat metric would
# otherwise walk the tree breadth first); the compiled kernel stops at the same count.
MAX_LIST_PUSHES = 1 << 16


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


# A run of windows sharing one row of frequencies goes by prefix sums when its span
# (samples covered) times this is under its windows' total length: a prefix sum costs
# about two complex multiplies per sample and frequency, a direct window one per sample.
PREFIX_COST = 2
# Widest row of frequencies the kernel evaluates by prefix sums (its scratch size).
MAX_PREFIX_FREQS = 32


def window_plan(
    starts: npt.NDArray[np.int64], freqs: npt.NDArray[np.float64], length: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64],
           npt.NDArray[np.bool_]]:
    """How :func:`window_energies` (both backends) evaluates its windows.

    Returns run boundaries (windows ``edges[r] .. edges[r + 1] - 1`` share a row of
    frequencies), each run's first sample and span, and whether it goes by prefix sums.
    """
    n = starts.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(1, dtype=np.int64), empty, empty, np.zeros(0, dtype=bool)
    change = np.flatnonzero(np.any(freqs[1:] != freqs[:-1], axis=1)) + 1
    edges = np.concatenate([[0], change, [n]]).astype(np.int64)
    lows = np.minimum.reduceat(starts, edges[:-1]).astype(np.int64)
    spans = (np.maximum.reduceat(starts, edges[:-1]) - lows + length).astype(np.int64)
    counts = np.diff(edges)
    cheaper = spans * PREFIX_COST < counts * length
    return edges, lows, spans, cheaper & (freqs.shape[1] <= MAX_PREFIX_FREQS)


def _window_args(
    xb: npt.NDArray[np.complex128], starts: npt.ArrayLike, freqs: npt.ArrayLike, length: int
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The arrays of a window-energy call, checked that every window lies in ``xb``."""
    x = np.asarray(xb, dtype=np.complex128)
    st = np.asarray(starts, dtype=np.int64)
    fq = np.asarray(freqs, dtype=np.float64)
    if st.size and (st.min() < 0 or st.max() + length > x.shape[0]):
        raise ValueError("a window falls outside the signal")
    return x, st, fq


def window_energies(
    xb: npt.NDArray[np.complex128],
    starts: npt.ArrayLike,
    freqs: npt.ArrayLike,
    length: int,
    rate: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Same contract as ``ext._modem.window_energies``: windowed DFT energies and powers.

    Same plan as the kernel: runs of overlapping windows that share frequencies go by
    prefix sums (a cumulative sum over the run's span), the rest window by window.
    """
    x, st, fq = _window_args(xb, starts, freqs, length)
    energy = np.zeros((st.shape[0], fq.shape[1]))
    power = np.zeros(st.shape[0])
    edges, lows, spans, by_prefix = window_plan(st, fq, length)
    direct = np.zeros(st.shape[0], dtype=bool)
    for r in np.flatnonzero(by_prefix).tolist():
        a, b, lo, span = int(edges[r]), int(edges[r + 1]), int(lows[r]), int(spans[r])
        basis = np.exp(-2j * np.pi * fq[a][:, None] * np.arange(span)[None, :] / rate)
        prefix = np.zeros((fq.shape[1], span + 1), dtype=np.complex128)
        np.cumsum(x[lo : lo + span][None, :] * basis, axis=1, out=prefix[:, 1:])
        s = st[a:b] - lo
        energy[a:b] = (np.abs(prefix[:, s + length] - prefix[:, s]) ** 2).T
    for r in np.flatnonzero(~by_prefix).tolist():
        direct[int(edges[r]) : int(edges[r + 1])] = True
    if direct.any():
        energy[direct] = _direct_energies(x, st[direct], fq[direct], length, rate)
    seg_all = x[st[:, None] + np.arange(length)[None, :]]
    power[:] = (np.abs(seg_all) ** 2).sum(axis=1)
    return energy, power


def window_energies_direct(
    xb: npt.NDArray[np.complex128],
    starts: npt.ArrayLike,
    freqs: npt.ArrayLike,
    length: int,
    rate: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Same contract as ``ext._modem.window_energies_direct``: every window on its own."""
    x, st, fq = _window_args(xb, starts, freqs, length)
    seg = x[st[:, None] + np.arange(length)[None, :]]  # (w, n)
    return _direct_energies(x, st, fq, length, rate), (np.abs(seg) ** 2).sum(axis=1)


def _direct_energies(
    x: npt.NDArray[np.complex128],
    st: npt.NDArray[np.int64],
    fq: npt.NDArray[np.float64],
    length: int,
    rate: float,
) -> npt.NDArray[np.float64]:
    """Each window's DFT energies summed on its own: shape (windows, frequencies)."""
    seg = x[st[:, None] + np.arange(length)[None, :]]  # (w, n)
    basis = np.exp(-2j * np.pi * fq[:, :, None] * np.arange(length)[None, None, :] / rate)
    # einsum, not @: these are small, and BLAS would wake its thread pool.
    return np.abs(np.einsum("wn,wkn->wk", seg, basis)) ** 2  # type: ignore[no-any-return]


def _trellis(metric: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[Any, ...]:
    """The symbol trellis both twins walk: metric and labels as arrays, the state width,
    the shift of a predecessor's top symbol, the states, and for each (k, new state) its
    predecessor and its 2-symbol register (the label index)."""
    mv = np.asarray(metric, dtype=np.float64)
    lb = np.asarray(labels, dtype=np.int64)
    n_states = lb.shape[0] // 4
    state_bits = n_states.bit_length() - 1
    top = state_bits - 2
    states = np.arange(n_states)
    k = np.arange(4)[:, None]
    preds = (states[None, :] >> 2) | (k << top)  # (k, new state)
    regs = states[None, :] | (k << state_bits)
    return mv, lb, state_bits, top, states, preds, regs


def viterbi_symbols(
    metric: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint8]:
    """Same contract as ``ext._modem.viterbi_symbols``: terminated max-log symbol Viterbi."""
    mv, lb, state_bits, top, states, preds, regs = _trellis(metric, labels)
    n_states, n_sym = states.shape[0], mv.shape[0]
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


def viterbi_tones(
    loglik: npt.NDArray[np.float64], interleave: npt.ArrayLike, whitening: npt.ArrayLike,
    labels: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Same contract as ``ext._modem.viterbi_tones``: Viterbi from tone log-likelihoods,
    the decoded bits and the path's tone for every sent symbol."""
    ll = np.asarray(loglik, dtype=np.float64)
    il = np.asarray(interleave, dtype=np.int64)
    wh = np.asarray(whitening, dtype=np.int64)
    lb = np.asarray(labels, dtype=np.int64)
    metric = np.take_along_axis(ll[il], wh[:, None] ^ np.arange(16)[None, :], axis=1)
    bits = viterbi_symbols(metric, lb)
    # Walk the path forward: each step's register is the previous state and 2 new bits.
    mask = lb.shape[0] // 4 - 1
    state = 0
    tones = np.zeros(il.shape[0], dtype=np.int64)
    for t in range(il.shape[0]):
        reg = (state << 2) | (int(bits[2 * t]) << 1) | int(bits[2 * t + 1])
        tones[il[t]] = lb[reg] ^ wh[t]
        state = reg & mask
    return bits, tones


class SyncFrontEnd:
    """Same contract as ``ext._frontend.SyncFrontEnd``: the streaming sync front end.

    Each call runs the kernels above vectorised over the whole block, keeping between
    calls only the tails the next block needs (input history, sub-block sums, window
    energies, scores).
    """

    def __init__(
        self, taps: npt.ArrayLike, table: npt.ArrayLike, hop: int, width: int,
        preamble_rows: npt.ArrayLike, delays: npt.ArrayLike, shifts: npt.ArrayLike,
        neighbour: int, reach: int, window_len: float, clip: float, threshold: float,
        peak_w: int, decimation: int, carrier_hz: int, rate_hz: int, start_bb: int,
    ) -> None:
        """Same parameters as the compiled front end."""
        self.taps = np.asarray(taps, dtype=np.complex128)
        self.table = np.asarray(table, dtype=np.complex128)
        self.hop, self.width, self.neighbour, self.reach = hop, width, neighbour, reach
        self.rows = np.asarray(preamble_rows, dtype=np.int64)
        self.delays = np.asarray(delays, dtype=np.int64)
        self.shifts = np.asarray(shifts, dtype=np.int64)
        self.window_len, self.clip = window_len, clip
        self.threshold, self.peak_w = threshold, peak_w
        self.decimation, self.carrier_hz, self.rate_hz = decimation, carrier_hz, rate_hz
        if start_bb % hop:
            raise ValueError("start_bb must fall on a sub-block")
        n_freq = self.table.shape[0]
        self._hist = np.zeros(self.taps.shape[0] - 1, dtype=np.float32)
        self._abs_in = start_bb * decimation  # stream index of the next input sample
        self._m_next = start_bb  # next baseband output index
        self._bb_tail = np.zeros(0, dtype=np.complex128)  # baseband not yet in a sub-block
        self._tail_start = start_bb
        self._sums = np.zeros((n_freq, 0), dtype=np.complex128)
        self._power = np.zeros(0)
        self._sub_next = start_bb // hop  # absolute index of the first sub-block in _sums
        self._energy = np.zeros((n_freq, 0))
        self._band = np.zeros(0)
        self._win_start = self._sub_next  # absolute window index of _energy[:, 0]
        self._score = np.zeros(0)
        self._raw = np.zeros(0)
        self._offset = np.zeros(0, dtype=np.int64)
        self._score_start = self._sub_next  # absolute position of _score[0]
        self._peak_next = self._sub_next  # next position to test for a peak

    def process(
        self, x: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.complex128], list[tuple[int, int, float]], tuple[float, int]]:
        """Same contract as the compiled ``process``: (new baseband, candidates, floor)."""
        arr = np.asarray(x)
        if arr.dtype != np.float32 or arr.ndim != 1:
            raise TypeError(f"x must be a 1-D float32 array, got {arr.dtype}, shape {arr.shape}")
        bb = self._downconvert(np.nan_to_num(arr))
        floor = self._advance_subblocks(bb)
        return bb, self._advance_sync(), floor

    def _downconvert(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.complex128]:
        """The block's new baseband samples."""
        d = self.decimation
        buf = np.concatenate([self._hist, x])
        buf_abs0 = self._abs_in - self._hist.shape[0]
        end_abs = self._abs_in + x.shape[0]
        n_out = max(0, (end_abs - 1) // d - self._m_next + 1)
        first = self._m_next * d - buf_abs0
        out = decimate(buf, self.taps, first, d, self._m_next * d, self.carrier_hz,
                       self.rate_hz, n_out)
        self._m_next += n_out
        self._abs_in = end_abs
        self._hist = buf[buf.shape[0] - self._hist.shape[0]:].copy()
        return out

    def _advance_subblocks(self, bb: npt.NDArray[np.complex128]) -> tuple[float, int]:
        """Sub-block DFTs of the completed sub-blocks, then the new window energies."""
        hop = self.hop
        xb = np.concatenate([self._bb_tail, bb])
        n_new = xb.shape[0] // hop
        self._bb_tail = xb[n_new * hop:]
        sub_end = self._sub_next + self._sums.shape[1]  # next sub-block not yet computed
        if n_new == 0:
            return 0.0, 0
        period = self.table.shape[1]
        sums, power = subblock_dft(xb[: n_new * hop], self.table, (sub_end * hop) % period, hop)
        self._sums = np.concatenate([self._sums, sums], axis=1)
        self._power = np.concatenate([self._power, power])
        energy, band = sliding_energy(self._sums, self._power, self.width)
        floor = (0.0, 0)
        if energy.shape[1] == 0:
            return floor
        first_real = max(0, -self._sub_next)  # windows over the silent lead are not the room
        if energy.shape[1] > first_real:
            floor = (float(energy[:, first_real:].sum()), energy.shape[1] - first_real)
        if self._energy.shape[1] == 0:
            self._win_start = self._sub_next
        self._energy = np.concatenate([self._energy, energy], axis=1)
        self._band = np.concatenate([self._band, band])
        drop = self._sums.shape[1] - (self.width - 1)
        self._sums = self._sums[:, drop:]
        self._power = self._power[drop:]
        self._sub_next += drop
        return floor

    def _advance_sync(self) -> list[tuple[int, int, float]]:
        """Score new start positions, then the sync peaks whose neighbourhood is known."""
        d_max = int(self.delays.max()) + self.reach * self.neighbour
        if self._energy.shape[1] > d_max:
            score, raw, off = sync_scores(
                self._energy, self._band, self.rows, self.delays, self.shifts,
                self.neighbour, self.reach, float(self.window_len), self.clip,
            )
            if self._score.shape[0] == 0:
                self._score_start = self._win_start
            self._score = np.concatenate([self._score, score])
            self._raw = np.concatenate([self._raw, raw])
            self._offset = np.concatenate([self._offset, off])
            drop = score.shape[0]  # the next start needs windows from here on
            self._energy = self._energy[:, drop:]
            self._band = self._band[drop:]
            self._win_start += drop
        w = self.peak_w
        found: list[tuple[int, int, float]] = []
        s_end = self._score_start + self._score.shape[0]
        lo = max(self._peak_next, self._score_start + w)
        hi = s_end - w
        if hi > lo:
            s, base = self._score, self._score_start
            # Every position at the threshold whose neighbourhood has it first at the top
            # (first maximum wins, so a flat top yields one candidate), vectorised.
            pos = np.arange(lo, hi)
            win = np.lib.stride_tricks.sliding_window_view(s, 2 * w + 1)[pos - w - base]
            peaks = pos[(s[pos - base] >= self.threshold) & (np.argmax(win, axis=1) == w)]
            if peaks.size:
                # The unclipped score, sharper in time, says where in the neighbourhood.
                raw_win = np.lib.stride_tricks.sliding_window_view(self._raw, 2 * w + 1)
                best = peaks - w + np.argmax(raw_win[peaks - w - base], axis=1)
                found = [(int(b), int(self._offset[b - base]), float(self._raw[b - base]))
                         for b in best.tolist()]
            self._peak_next = hi
        drop = max(0, (self._peak_next - w) - self._score_start)
        if drop:
            self._score = self._score[drop:]
            self._raw = self._raw[drop:]
            self._offset = self._offset[drop:]
            self._score_start += drop
        return found


def list_paths(
    metric: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], max_paths: int
) -> list[tuple[float, npt.NDArray[np.uint8]]]:
    """Same contract as ``ext._modem.list_paths``: the best terminated paths, best first.

    Tree-trellis search: a best-first search backwards from the terminal state whose
    priority, a suffix's metric plus the forward Viterbi metric of the state it reaches,
    is exactly the best full path through that suffix, so complete paths come out in
    order of metric (the first is the Viterbi path) after expanding only nodes on them.
    Ties pop in push order.
    """
    mv, lb, state_bits, top, states, preds, regs = _trellis(metric, labels)
    n_states, n = states.shape[0], mv.shape[0]
    acc = np.full((n + 1, n_states), -np.inf)
    acc[0, 0] = 0.0
    branch = mv[:, lb[regs]]  # (step, predecessor k, state)
    for t in range(n):
        acc[t + 1] = (acc[t][preds] + branch[t]).max(axis=0)
    acc_rows = acc.tolist()
    rows = mv.tolist()
    label_of = lb.tolist()
    # (-priority, push count, step, state, suffix metric, chain of later states)
    heap: list[tuple[float, int, int, int, float, tuple | None]] = [
        (-float(acc[n, 0]), 0, n, 0, 0.0, None)
    ]
    pushed = 1
    out: list[tuple[float, npt.NDArray[np.uint8]]] = []
    while heap and len(out) < max_paths:
        neg, _, t, state, suffix, chain = heapq.heappop(heap)
        if t == 0:
            bits = np.zeros(2 * n, dtype=np.uint8)
            step, link = 0, chain
            while link is not None:
                st, link = link
                bits[2 * step] = (st >> 1) & 1
                bits[2 * step + 1] = st & 1
                step += 1
            out.append((-neg, bits))
            continue
        if pushed + 4 > MAX_LIST_PUSHES:
            break
        before = acc_rows[t - 1]
        row = rows[t - 1]
        for k in range(4):
            pred = (state >> 2) | (k << top)
            if before[pred] == -np.inf:
                continue
            s2 = suffix + row[label_of[state | (k << state_bits)]]
            heapq.heappush(heap, (-(before[pred] + s2), pushed, t - 1, pred, s2, (state, chain)))
            pushed += 1
    return out


def coarse_frame(
    xb: npt.NDArray[np.complex128], frame_start: float, scale0: float,
    scale_steps: npt.ArrayLike, shifts: npt.ArrayLike, preamble_tones: npt.ArrayLike,
    tone_freqs: npt.ArrayLike, t_s: npt.ArrayLike, carrier_hz: float, length: int, rate: float,
) -> tuple[float, float, npt.NDArray[np.float64] | None]:
    """Same contract as ``ext._modem.coarse_frame``: coarse refinement, then tone energies.

    Every (scale, shift) is scored by the energy at the preamble's tones over the windows'
    power (first best wins); then every symbol's 16 tone energies at the best estimate.
    """
    x = np.asarray(xb, dtype=np.complex128)
    scales = scale0 + np.asarray(scale_steps, dtype=np.float64)
    sh = np.asarray(shifts, dtype=np.int64)
    tones = np.asarray(preamble_tones, dtype=np.int64)
    tf = np.asarray(tone_freqs, dtype=np.float64)
    t = np.asarray(t_s, dtype=np.float64)
    pre_t = t[: tones.shape[0]]
    # [scale, shift, symbol]
    # (t * rate) / (1 + scale), in the kernel's order of operations.
    offset = pre_t[None, None, :] * rate / (1.0 + scales[:, None, None])
    starts = np.rint(frame_start + sh[None, :, None] + offset).astype(np.int64)
    start, scale = frame_start, scale0
    if starts.size and starts.min() >= 0 and starts.max() + length <= x.shape[0]:
        offs = tf[tones][None, :] * (1.0 + scales[:, None]) - carrier_hz  # (scale, symbol)
        freqs = np.broadcast_to(offs[:, None, :], starts.shape)
        energy, power = window_energies(x, starts.ravel(), freqs.reshape(-1, 1), length, rate)
        score = energy.reshape(starts.shape).sum(axis=2) / np.maximum(
            power.reshape(starts.shape).sum(axis=2), 1e-300
        )
        i, j = np.unravel_index(int(np.argmax(score)), score.shape)
        start, scale = frame_start + float(sh[j]), float(scales[i])
    at = np.rint(start + t * rate / (1.0 + scale)).astype(np.int64)
    if at[0] < 0 or at[-1] + length > x.shape[0]:
        return start, scale, None
    offsets = np.broadcast_to(tf * (1.0 + scale) - carrier_hz, (at.shape[0], tf.shape[0]))
    energy, _ = window_energies(x, at, offsets, length, rate)
    return start, scale, energy


def frame_energies(
    xb: npt.NDArray[np.complex128], frame_start: float, scale: float, tone_freqs: npt.ArrayLike,
    t_s: npt.ArrayLike, carrier_hz: float, length: int, rate: float,
) -> npt.NDArray[np.float64] | None:
    """Same contract as ``ext._modem.frame_energies``: every symbol's tone energies at
    (start, scale), None unless the first and last windows lie inside ``xb``."""
    x = np.asarray(xb, dtype=np.complex128)
    tf = np.asarray(tone_freqs, dtype=np.float64)
    t = np.asarray(t_s, dtype=np.float64)
    at = np.rint(frame_start + t * rate / (1.0 + scale)).astype(np.int64)
    if at.size and (at[0] < 0 or at[-1] + length > x.shape[0]):
        return None
    offsets = np.broadcast_to(tf * (1.0 + scale) - carrier_hz, (at.shape[0], tf.shape[0]))
    return window_energies(x, at, offsets, length, rate)[0]


def wide_scores(
    xb: npt.NDArray[np.complex128], frame_start: float, shifts: npt.ArrayLike,
    scales: npt.ArrayLike, preamble_tones: npt.ArrayLike, tone_freqs: npt.ArrayLike,
    t_s: npt.ArrayLike, carrier_hz: float, length: int, rate: float,
) -> npt.NDArray[np.float64] | None:
    """Same contract as ``ext._modem.wide_scores``: decision-free scores on a (scale, shift) grid.

    Each (scale, shift): energy at each preamble symbol's tone plus the strongest tone of
    every later symbol, over the windows' total power; None if a window leaves ``xb``.
    """
    x = np.asarray(xb, dtype=np.complex128)
    sh = np.asarray(shifts, dtype=np.float64)
    sc = np.asarray(scales, dtype=np.float64)
    tones = np.asarray(preamble_tones, dtype=np.int64)
    tf = np.asarray(tone_freqs, dtype=np.float64)
    t = np.asarray(t_s, dtype=np.float64)
    # [scale, shift, symbol]
    starts = np.rint(
        frame_start + sh[None, :, None] + t[None, None, :] * rate / (1.0 + sc[:, None, None])
    ).astype(np.int64)
    if starts.min() < 0 or starts.max() + length > x.shape[0]:
        return None
    offs = tf[None, :] * (1.0 + sc[:, None]) - carrier_hz  # (scale, tone)
    freqs = np.broadcast_to(offs[:, None, None, :], (*starts.shape, tf.shape[0]))
    energy, power = window_energies(
        x, starts.ravel(), np.ascontiguousarray(freqs.reshape(-1, tf.shape[0])), length, rate
    )
    energy = energy.reshape(*starts.shape, tf.shape[0])
    n_pre = tones.shape[0]
    known = energy[:, :, np.arange(n_pre), tones].sum(axis=2)
    strongest = energy[:, :, n_pre:, :].max(axis=3).sum(axis=2)
    return (known + strongest) / np.maximum(power.reshape(starts.shape).sum(axis=2), 1e-300)


# ------------------------------------------------------------ soft symbol information

_LN2 = float(np.log(2.0))


def dbfit(
    values: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64] | None,
    max_tilt_db: float,
) -> npt.NDArray[np.float64]:
    """Weighted straight-line fit in dB of positive ``values`` at tone indices ``x``,
    evaluated at the 16 tones; the slope is clipped to ``max_tilt_db`` over 15 tones."""
    v_db = 10.0 * np.log10(np.maximum(values, 1e-300))
    w = np.ones_like(v_db) if weights is None else weights
    # Closed-form least squares (np.polyfit's general solver costs 50x more here).
    xm = float(np.dot(w, x) / w.sum())
    vm = float(np.dot(w, v_db) / w.sum())
    xc = x - xm
    den = float(np.dot(w, xc * xc))
    slope = float(np.dot(w, xc * (v_db - vm)) / den) if den > 0 else 0.0
    max_slope = max_tilt_db / 15.0
    slope = float(np.clip(slope, -max_slope, max_slope))
    return 10.0 ** ((vm + slope * (np.arange(16) - xm)) / 10.0)  # type: ignore[no-any-return]


def noise_levels(
    data: npt.NDArray[np.float64], max_tilt_db: float, floor_rel: float
) -> npt.NDArray[np.float64]:
    """Per-tone noise energy: per-tone medians without each symbol's strongest tone, dB-fitted."""
    masked = data.copy()
    masked[np.arange(data.shape[0]), np.argmax(data, axis=1)] = np.inf
    # Column medians over the finite entries (sorting puts the masked ones last).
    count = np.isfinite(masked).sum(axis=0)
    ordered = np.sort(masked, axis=0)
    cols = np.arange(data.shape[1])
    lo = ordered[np.maximum((count - 1) // 2, 0), cols]
    hi = ordered[np.maximum(count // 2, 0), cols]
    med = np.where(count > 0, 0.5 * (lo + hi), np.nan) / _LN2
    # In digital silence the noise is zero; a floor far below the signal keeps the
    # likelihoods finite (an ideal channel, decoded as such).
    floor = max(floor_rel * float(data.max()), 1e-30)
    med = np.maximum(np.nan_to_num(med, nan=floor), floor)
    return np.maximum(dbfit(med, np.arange(16, dtype=float), None, max_tilt_db), floor)


def signal_levels(
    pre: npt.NDArray[np.float64],
    data: npt.NDArray[np.float64],
    n0: npt.NDArray[np.float64],
    preamble_tones: npt.NDArray[np.int64],
    max_tilt_db: float,
    min_signal_ratio: float,
) -> npt.NDArray[np.float64]:
    """Per-tone signal energy: a dB-line fit over every symbol's tone (roll-off)."""
    tones = np.concatenate([np.asarray(preamble_tones, dtype=np.int64), np.argmax(data, axis=1)])
    energy = np.concatenate([pre, data])
    excess = energy[np.arange(energy.shape[0]), tones] - n0[tones]
    counts = np.bincount(tones, minlength=16).astype(np.float64)
    seen = counts > 0
    means = np.bincount(tones, weights=excess, minlength=16)[seen] / counts[seen]
    floor = min_signal_ratio * n0
    fit = dbfit(np.maximum(means, floor[seen]), np.flatnonzero(seen).astype(float),
                counts[seen], max_tilt_db)
    return np.maximum(fit, floor)


# ln I0(x) by the polynomials of Abramowitz & Stegun 9.8.1 (x < 3.75, |error| < 1.6e-7
# relative) and 9.8.2 (x >= 3.75, < 1.9e-7): a 2e-7 error in a log-likelihood moves no
# decision, and unlike scipy's i0e (~37 ns a value, and a build dependency for the
# kernel) it costs a few ns. The kernel evaluates the same polynomials.
LOG_I0_SMALL = (1.0, 3.5156229, 3.0899424, 1.2067492, 0.2659732, 0.0360768, 0.0045813)
LOG_I0_LARGE = (0.39894228, 0.01328592, 0.00225319, -0.00157565, 0.00916281, -0.02057706,
                0.02635537, -0.01647633, 0.00392377)
LOG_I0_KNEE = 3.75


def _horner(coeffs: tuple[float, ...], t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """sum(coeffs[i] * t**i), innermost term first (the kernel's order)."""
    acc = np.full_like(t, coeffs[-1])
    for c in coeffs[-2::-1]:
        acc = c + t * acc
    return acc


def log_i0(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """ln I0(x) for x >= 0 (modified Bessel function of the first kind, order 0)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    small = x < LOG_I0_KNEE
    out[small] = np.log(_horner(LOG_I0_SMALL, (x[small] / LOG_I0_KNEE) ** 2))
    big = x[~small]
    out[~small] = big + np.log(_horner(LOG_I0_LARGE, LOG_I0_KNEE / big)) - 0.5 * np.log(big)
    return out


def symbol_loglik(
    energy: npt.NDArray[np.float64], signal: npt.NDArray[np.float64], n0: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Noncoherent Rician log-likelihood ratio of each tone vs noise, per symbol."""
    x = 2.0 * np.sqrt(energy * signal[None, :]) / n0[None, :]
    return -signal[None, :] / n0[None, :] + log_i0(x)


def soft_symbols(
    energy: npt.ArrayLike,
    preamble_tones: npt.ArrayLike,
    max_tilt_db: float,
    floor_rel: float,
    min_signal_ratio: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Same contract as ``ext._modem.soft_symbols``: (noise per tone, data log-likelihoods).

    ``energy`` holds every symbol's 16 tone energies, the preamble's first.
    """
    e = np.asarray(energy, dtype=np.float64)
    pt = np.asarray(preamble_tones, dtype=np.int64)
    n_pre = pt.shape[0]
    if e.ndim != 2 or e.shape[1] != 16 or e.shape[0] <= n_pre:
        raise ValueError("energy must have shape (symbols, 16) with data after the preamble")
    if pt.size and (pt.min() < 0 or pt.max() > 15):
        raise ValueError("preamble tones must be in 0..15")
    pre, data = e[:n_pre], e[n_pre:]
    n0 = noise_levels(data, max_tilt_db, floor_rel)
    signal = signal_levels(pre, data, n0, pt, max_tilt_db, min_signal_ratio)
    return n0, symbol_loglik(data, signal, n0)
