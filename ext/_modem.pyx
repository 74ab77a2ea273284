# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -O3 -ffast-math
# distutils: libraries = m
"""Modem hot loops: decimating mixer, sub-block DFT bank, sliding energies, sync scores, Viterbi.

Built with -ffast-math (the distutils line above): it lets GCC reassociate the sums
into SIMD lanes; no kernel here depends on NaN/Inf semantics (inputs are checked or
cleaned by the Python side) and results stay within 1e-9 of the NumPy twins.

Each public function validates its inputs and hands typed memoryviews to a private
``nogil`` kernel; ``ext.modem_reference`` implements the same algorithms in NumPy.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport M_PI, cos, fmax, log, log10, pow, rint, sin, sqrt

from ext.modem_reference import MAX_PREFIX_FREQS as _MAX_PREFIX_FREQS
from ext.modem_reference import PREFIX_COST as _PREFIX_COST
from ext.modem_reference import LOG_I0_KNEE, LOG_I0_LARGE, LOG_I0_SMALL

cnp.import_array()



cdef void _decimate(
    const float[::1] x,
    const float[::1] taps_re,
    const float[::1] taps_im,
    Py_ssize_t first,
    Py_ssize_t step,
    long long abs_first,
    long long carrier_hz,
    long long rate_hz,
    double[::1] out,
) noexcept nogil:
    """Complex FIR at decimated positions followed by the carrier rotation (see wrapper).

    ``taps_re`` / ``taps_im`` arrive reversed, so both arrays are walked forwards. The
    products run in float32 (the input's precision; the float32 sums are good to ~1e-6
    of the output, far below the input's own noise), which lets the compiler pack
    4 lanes per SIMD register instead of 2; the carrier rotation runs in double.
    """
    cdef Py_ssize_t n_out = out.shape[0] // 2
    cdef Py_ssize_t n_taps = taps_re.shape[0]
    cdef Py_ssize_t m, k
    cdef float acc_re, acc_im, v
    cdef const float* xp
    cdef double ang, c, s
    cdef long long num = (carrier_hz * (abs_first % rate_hz)) % rate_hz
    cdef long long inc = (carrier_hz * step) % rate_hz
    for m in range(n_out):
        xp = &x[first + m * step - (n_taps - 1)]
        acc_re = 0.0
        acc_im = 0.0
        for k in range(n_taps):
            v = xp[k]
            acc_re = acc_re + taps_re[k] * v
            acc_im = acc_im + taps_im[k] * v
        ang = -2.0 * M_PI * (<double> num) / (<double> rate_hz)
        c = cos(ang)
        s = sin(ang)
        out[2 * m] = acc_re * c - acc_im * s
        out[2 * m + 1] = acc_re * s + acc_im * c
        num = (num + inc) % rate_hz


def decimate(x, taps, Py_ssize_t first, Py_ssize_t step, long long abs_first,
             long long carrier_hz, long long rate_hz, Py_ssize_t n_out):
    """Mix a real float32 signal down by ``carrier_hz`` and low-pass it at decimated points.

    Parameters
    ----------
    x : ndarray of float32, shape (n,)
        Input history followed by new samples.
    taps : ndarray of complex128, shape (k,)
        ``h[k] * exp(+j w_c k)``: the real low-pass taps pre-rotated to the carrier, so
        the mixer runs once per output instead of once per input sample.
    first, step : int
        Output ``m`` is centred on ``x[first + m * step]`` (needs ``first >= k - 1``).
    abs_first : int
        Absolute stream index of ``x[first]`` (keeps the carrier phase continuous).
    carrier_hz, rate_hz : int
        Carrier and sample rate in whole hertz (the phase is computed exactly, modulo).
    n_out : int
        Number of outputs.

    Returns
    -------
    ndarray of complex128, shape (n_out,)
        ``exp(-j w_c p) * sum_k taps[k] x[p - k]`` for ``p = first + m * step``.
    """
    arr = np.asarray(x)
    if arr.dtype != np.float32 or arr.ndim != 1:
        raise TypeError(f"x must be a 1-D float32 array, got {arr.dtype} with shape {arr.shape}")
    tp = np.ascontiguousarray(taps, dtype=np.complex128)
    if tp.ndim != 1 or tp.shape[0] == 0:
        raise ValueError("taps must be a non-empty 1-D array")
    if n_out < 0 or step <= 0 or rate_hz <= 0:
        raise ValueError("n_out must be >= 0, step and rate_hz positive")
    if n_out and (first < tp.shape[0] - 1 or first + (n_out - 1) * step >= arr.shape[0]):
        raise ValueError("output positions fall outside the input history")
    arr = np.ascontiguousarray(arr)
    out = np.zeros(n_out, dtype=np.complex128)
    cdef const float[::1] xv = arr
    cdef const float[::1] tr = np.ascontiguousarray(tp.real[::-1], dtype=np.float32)
    cdef const float[::1] ti = np.ascontiguousarray(tp.imag[::-1], dtype=np.float32)
    cdef double[::1] ov = out.view(np.float64)
    with nogil:
        _decimate(xv, tr, ti, first, step, abs_first, carrier_hz, rate_hz, ov)
    return out


cdef void _subblock_dft(
    const double[::1] xb,
    const float[:, ::1] tab_re,
    const float[:, ::1] tab_im,
    Py_ssize_t period,
    Py_ssize_t phase0,
    Py_ssize_t hop,
    float[::1] acc_re,
    float[::1] acc_im,
    double[:, ::1] out,
    double[::1] power,
) noexcept nogil:
    """Per sub-block DFT sums at every grid frequency, and per sub-block power.

    Tables are laid out (column, frequency) with ``hop`` extra columns (a copy of the
    first ones), so a sub-block never wraps and the innermost loop runs over contiguous
    frequencies, which the compiler vectorises (float32: 4 lanes; the hop-sample sums
    keep ~1e-7 relative precision, and the power stays in double).
    """
    cdef Py_ssize_t n_freq = tab_re.shape[1]
    cdef Py_ssize_t n_sub = power.shape[0]
    cdef Py_ssize_t f, j, m, ph, col
    cdef double dr, di, pw
    cdef float xr, xi
    ph = phase0
    for j in range(n_sub):
        pw = 0.0
        for f in range(n_freq):
            acc_re[f] = 0.0
            acc_im[f] = 0.0
        for m in range(hop):
            dr = xb[2 * (j * hop + m)]
            di = xb[2 * (j * hop + m) + 1]
            pw = pw + dr * dr + di * di
            xr = <float> dr
            xi = <float> di
            col = ph + m
            for f in range(n_freq):
                acc_re[f] = acc_re[f] + xr * tab_re[col, f] - xi * tab_im[col, f]
                acc_im[f] = acc_im[f] + xr * tab_im[col, f] + xi * tab_re[col, f]
        power[j] = pw
        for f in range(n_freq):
            out[f, 2 * j] = acc_re[f]
            out[f, 2 * j + 1] = acc_im[f]
        ph = ph + hop
        if ph >= period:
            ph = ph - period


def subblock_dft(xb, table, Py_ssize_t phase0, Py_ssize_t hop):
    """DFT of each ``hop``-sample sub-block of a complex signal at a grid of frequencies.

    Parameters
    ----------
    xb : ndarray of complex128, shape (n,)
        Baseband samples; ``n // hop`` whole sub-blocks are used.
    table : ndarray of complex128, shape (f, period)
        ``exp(-j w_f i)`` for one full period of every grid frequency.
    phase0 : int
        Table column of ``xb[0]`` (its absolute index modulo the period).
    hop : int
        Sub-block length in samples.

    Returns
    -------
    sums : ndarray of complex128, shape (f, n // hop)
        ``sum_{i in block j} xb[i] * table[f, (phase0 + i) % period]``.
    power : ndarray of float64, shape (n // hop,)
        ``sum_{i in block j} |xb[i]|^2``.
    """
    x = np.ascontiguousarray(xb, dtype=np.complex128)
    tab = np.ascontiguousarray(table, dtype=np.complex128)
    if x.ndim != 1 or tab.ndim != 2 or tab.shape[1] == 0:
        raise ValueError("xb must be 1-D and table 2-D with at least one column")
    if hop <= 0 or not 0 <= phase0 < tab.shape[1]:
        raise ValueError("hop must be positive and phase0 a valid table column")
    if hop > tab.shape[1]:
        raise ValueError("hop must not exceed the table period")
    n_sub = x.shape[0] // hop
    sums = np.zeros((tab.shape[0], n_sub), dtype=np.complex128)
    power = np.zeros(n_sub, dtype=np.float64)
    wide = np.concatenate([tab, tab[:, :hop]], axis=1).T
    cdef Py_ssize_t period = tab.shape[1]
    cdef const double[::1] xv = x.view(np.float64)
    cdef const float[:, ::1] tr = np.ascontiguousarray(wide.real, dtype=np.float32)
    cdef const float[:, ::1] ti = np.ascontiguousarray(wide.imag, dtype=np.float32)
    cdef float[::1] scratch_re = np.zeros(tab.shape[0], dtype=np.float32)
    cdef float[::1] scratch_im = np.zeros(tab.shape[0], dtype=np.float32)
    cdef double[:, ::1] sv = sums.view(np.float64)
    cdef double[::1] pv = power
    with nogil:
        _subblock_dft(xv, tr, ti, period, phase0, hop, scratch_re, scratch_im, sv, pv)
    return sums, power


cdef void _sliding_energy(
    const double[:, ::1] sums,
    const double[::1] power,
    Py_ssize_t width,
    double[:, ::1] energy,
    double[::1] band,
) noexcept nogil:
    """|sum of ``width`` consecutive sub-block sums|^2 and the matching power sums."""
    cdef Py_ssize_t n_freq = sums.shape[0]
    cdef Py_ssize_t n_win = band.shape[0]
    cdef Py_ssize_t f, j, w
    cdef double ar, ai, pw
    # Running sums (add the entering block, drop the leaving one): O(1) per window.
    # Each call starts afresh, so rounding cannot build up over an unbounded stream.
    if n_win == 0:
        return
    pw = 0.0
    for w in range(width):
        pw = pw + power[w]
    band[0] = pw
    for j in range(1, n_win):
        pw = pw + power[j + width - 1] - power[j - 1]
        band[j] = pw
    for f in range(n_freq):
        ar = 0.0
        ai = 0.0
        for w in range(width):
            ar = ar + sums[f, 2 * w]
            ai = ai + sums[f, 2 * w + 1]
        energy[f, 0] = ar * ar + ai * ai
        for j in range(1, n_win):
            ar = ar + sums[f, 2 * (j + width - 1)] - sums[f, 2 * (j - 1)]
            ai = ai + sums[f, 2 * (j + width - 1) + 1] - sums[f, 2 * (j - 1) + 1]
            energy[f, j] = ar * ar + ai * ai


def sliding_energy(sums, power, Py_ssize_t width):
    """Energy of every window of ``width`` sub-blocks at every grid frequency.

    Parameters
    ----------
    sums : ndarray of complex128, shape (f, n)
        Sub-block DFT sums from :func:`subblock_dft`.
    power : ndarray of float64, shape (n,)
        Sub-block powers from :func:`subblock_dft`.
    width : int
        Window length in sub-blocks.

    Returns
    -------
    energy : ndarray of float64, shape (f, n - width + 1)
    band : ndarray of float64, shape (n - width + 1,)
        Time-domain energy of each window (Parseval's normaliser).
    """
    s = np.ascontiguousarray(sums, dtype=np.complex128)
    p = np.ascontiguousarray(power, dtype=np.float64)
    if s.ndim != 2 or p.ndim != 1 or s.shape[1] != p.shape[0]:
        raise ValueError("sums must be (f, n) and power (n,)")
    if width <= 0:
        raise ValueError("width must be positive")
    n_win = max(p.shape[0] - width + 1, 0)
    energy = np.zeros((s.shape[0], n_win), dtype=np.float64)
    band = np.zeros(n_win, dtype=np.float64)
    cdef const double[:, ::1] sv = s.view(np.float64)
    cdef const double[::1] pv = p
    cdef double[:, ::1] ev = energy
    cdef double[::1] bv = band
    with nogil:
        _sliding_energy(sv, pv, width, ev, bv)
    return energy, band


cdef void _sync_scores(
    const double[:, ::1] energy,
    const double[::1] band,
    const long[::1] tones,
    const long[:, ::1] delays,
    const long[::1] shifts,
    Py_ssize_t neighbour,
    Py_ssize_t reach,
    double window_len,
    double clip,
    double[::1] inv_band,
    double[:, ::1] contrast,
    double[::1] acc,
    double[::1] raw,
    double[::1] best,
    double[::1] best_raw,
    long[::1] best_offset,
) noexcept nogil:
    """Clipped and raw mean preamble energy contrast per start, best over offsets.

    Every loop runs along time (contiguous, so the compiler vectorises it): first the
    normalised energy and each cell's contrast with the same row ``reach`` symbols
    either side, then, per offset, the preamble symbols' contrasts summed for all
    starts at once, then the best offset per start.
    """
    cdef Py_ssize_t n_pos = best.shape[0]
    cdef Py_ssize_t n_sym = tones.shape[0]
    cdef Py_ssize_t n_off = shifts.shape[0]
    cdef Py_ssize_t n_row = energy.shape[0]
    cdef Py_ssize_t n_col = energy.shape[1]
    cdef Py_ssize_t lo = reach * neighbour
    cdef Py_ssize_t j, o, i, col, q, row, d, step
    cdef double r, weight = 0.5 / reach
    cdef const double* src
    for col in range(n_col):
        inv_band[col] = 1.0 / (window_len * band[col]) if band[col] > 0.0 else 0.0
    for row in range(n_row):
        # Contrast with the same tone ``reach`` symbols before and after: a preamble
        # tone lasts one symbol, a steady tone (music, hum) cancels itself.
        for col in range(lo, n_col - lo):
            contrast[row, col] = 0.0
        for q in range(1, reach + 1):
            step = q * neighbour
            for col in range(lo, n_col - lo):
                contrast[row, col] = contrast[row, col] + (
                    energy[row, col - step] * inv_band[col - step]
                    + energy[row, col + step] * inv_band[col + step]
                )
        for col in range(lo, n_col - lo):
            contrast[row, col] = (
                energy[row, col] * inv_band[col] - weight * contrast[row, col]
            )
    for j in range(n_pos):
        best[j] = -1e300
        best_raw[j] = -1e300
        best_offset[j] = 0
    for o in range(n_off):
        for j in range(n_pos):
            acc[j] = 0.0
            raw[j] = 0.0
        for i in range(n_sym):
            row = tones[i] + shifts[o]
            d = delays[o, i]
            src = &contrast[row, d]
            for j in range(n_pos):
                r = src[j]
                acc[j] = acc[j] + (r if r < clip else clip)
                raw[j] = raw[j] + r
        for j in range(n_pos):
            best[j] = acc[j] if acc[j] > best[j] else best[j]
            best_offset[j] = o if raw[j] > best_raw[j] else best_offset[j]
            best_raw[j] = raw[j] if raw[j] > best_raw[j] else best_raw[j]
    for j in range(n_pos):
        best[j] = best[j] / n_sym
        best_raw[j] = best_raw[j] / n_sym


def sync_scores(energy, band, tones, delays, shifts, Py_ssize_t neighbour, Py_ssize_t reach,
                double window_len, double clip):
    """Preamble match score at every start position, maximised over frequency offsets.

    Parameters
    ----------
    energy : ndarray of float64, shape (f, n)
        Window energies on the frequency grid (:func:`sliding_energy`).
    band : ndarray of float64, shape (n,)
        Window time-domain energies.
    tones : ndarray of int, shape (s,)
        Grid row of each preamble symbol's tone at zero offset.
    delays : ndarray of int, shape (o, s)
        Window index of each preamble symbol relative to the start, per offset (the
        Doppler/clock scale stretches time as well as frequency).
    shifts : ndarray of int, shape (o,)
        Grid rows added to every tone for each offset.
    neighbour : int
        Windows from one symbol to the next.
    reach : int
        Each symbol's normalised energy minus the mean of the same tone 1 .. ``reach``
        symbols (multiples of ``neighbour`` windows) before and after is what counts
        (needs ``reach * neighbour <= min(delays)``).
    window_len : float
        Samples per window; ``energy / (window_len * band)`` is 1 for a pure tone.
    clip : float
        Cap on each symbol's normalised energy, so one strong steady tone (music) that
        happens to sit on one preamble tone cannot pass the threshold by itself.

    Returns
    -------
    score : ndarray of float64, shape (n - max(delays) - reach * neighbour,)
        Mean over preamble symbols of the clipped energy contrast, best offset: the
        detection statistic.
    raw : ndarray of float64, shape like ``score``
        The same without clipping, best offset: sharper in time, used to locate a peak.
    offset : ndarray of int64, shape like ``score``
        Index into ``shifts`` of the offset that maximises ``raw``.
    """
    e = np.ascontiguousarray(energy, dtype=np.float64)
    bd = np.ascontiguousarray(band, dtype=np.float64)
    tn = np.ascontiguousarray(tones, dtype=np.int64)
    dl = np.ascontiguousarray(delays, dtype=np.int64)
    sh = np.ascontiguousarray(shifts, dtype=np.int64)
    if e.ndim != 2 or bd.shape[0] != e.shape[1] or dl.shape != (sh.shape[0], tn.shape[0]):
        raise ValueError("inconsistent shapes for energy, band, tones, delays, shifts")
    if tn.size == 0 or sh.size == 0 or window_len <= 0:
        raise ValueError("need at least one tone and offset, and a positive window_len")
    rows = tn[None, :] + sh[:, None]
    if rows.min() < 0 or rows.max() >= e.shape[0] or dl.min() < 0:
        raise ValueError("tone + shift outside the grid, or a negative delay")
    if neighbour < 0 or reach < 1 or dl.min() < reach * neighbour:
        raise ValueError("need neighbour >= 0, reach >= 1 and reach * neighbour <= min(delays)")
    n_pos = max(e.shape[1] - int(dl.max()) - reach * neighbour, 0)
    best = np.zeros(n_pos, dtype=np.float64)
    best_raw = np.zeros(n_pos, dtype=np.float64)
    arg = np.zeros(n_pos, dtype=np.int64)
    cdef const double[:, ::1] ev = e
    cdef const double[::1] bv = bd
    cdef const long[::1] tv = tn
    cdef const long[:, ::1] dv = dl
    cdef const long[::1] shv = sh
    cdef double[::1] out = best
    cdef double[::1] out_raw = best_raw
    cdef long[::1] av = arg
    cdef double[::1] ib = np.zeros(bd.shape[0], dtype=np.float64)
    cdef double[:, ::1] ct = np.empty_like(e)
    cdef double[::1] acc = np.empty(n_pos, dtype=np.float64)
    cdef double[::1] rw = np.empty(n_pos, dtype=np.float64)
    with nogil:
        _sync_scores(ev, bv, tv, dv, shv, neighbour, reach, window_len, clip, ib, ct, acc, rw,
                     out, out_raw, av)
    return best, best_raw, arg


cdef void _window_energies(
    const double[::1] xb,
    const long[::1] starts,
    const double[:, ::1] freqs,
    Py_ssize_t i0,
    Py_ssize_t i1,
    Py_ssize_t length,
    double rate,
    double[:, ::1] basis_re,
    double[:, ::1] basis_im,
    double[::1] basis_freq,
    double[:, ::1] energy,
    double[::1] power,
) noexcept nogil:
    """|DFT|^2 of windows ``i0 .. i1 - 1`` at their frequencies, one window at a time.

    The basis of frequency column ``k`` is rebuilt (rotating phasor) only when that
    column's frequency changes from the previous window, so windows that share
    frequencies (all symbols of a frame, every timing shift of one symbol) pay for the
    trigonometry once and run a plain multiply-add loop the compiler vectorises.
    """
    cdef Py_ssize_t n_freq = freqs.shape[1]
    cdef Py_ssize_t i, k, n, base
    cdef double ang, cr, ci, pr, pi_, tr, ar, ai, xr, xi, pw, f
    for i in range(i0, i1):
        base = 2 * starts[i]
        pw = 0.0
        for n in range(length):
            xr = xb[base + 2 * n]
            xi = xb[base + 2 * n + 1]
            pw = pw + xr * xr + xi * xi
        power[i] = pw
        for k in range(n_freq):
            f = freqs[i, k]
            if i == i0 or f != basis_freq[k]:
                basis_freq[k] = f
                ang = -2.0 * M_PI * f / rate
                cr = cos(ang)
                ci = sin(ang)
                pr = 1.0
                pi_ = 0.0
                for n in range(length):
                    basis_re[k, n] = pr
                    basis_im[k, n] = pi_
                    tr = pr * cr - pi_ * ci
                    pi_ = pr * ci + pi_ * cr
                    pr = tr
            ar = 0.0
            ai = 0.0
            for n in range(length):
                xr = xb[base + 2 * n]
                xi = xb[base + 2 * n + 1]
                ar = ar + xr * basis_re[k, n] - xi * basis_im[k, n]
                ai = ai + xr * basis_im[k, n] + xi * basis_re[k, n]
            energy[i, k] = ar * ar + ai * ai


# Exact phasors every this many samples of a prefix-sum run (the rotation's rounding
# cannot drift further than this many steps).
DEF PHASOR_RESYNC = 128
DEF MAX_PREFIX_FREQS = 32


cdef void _window_energies_prefix(
    const double[::1] xb,
    const long[::1] starts,
    const double[:, ::1] freqs,
    Py_ssize_t i0,
    Py_ssize_t i1,
    Py_ssize_t lo,
    Py_ssize_t span,
    Py_ssize_t length,
    double rate,
    double[::1] pre,
    double[::1] ph,
    double[:, ::1] energy,
    double[::1] power,
    double* power_cache,
    long cache_lo,
) noexcept nogil:
    """|DFT|^2 of windows ``i0 .. i1 - 1`` that share one row of frequencies, by prefix sums.

    ``P_f[m] = sum_{n < m} xb[lo + n] exp(-j w_f n)`` over the run's span; a window's
    DFT is ``P_f[s + L] - P_f[s]`` up to a phase factor its magnitude drops. Costs
    ``span`` multiply-adds per frequency instead of ``L`` per window: far fewer when
    many windows overlap (every timing shift of every symbol of a frame).
    """
    cdef Py_ssize_t nk = freqs.shape[1]
    cdef Py_ssize_t stride = 2 * nk
    cdef Py_ssize_t m, k, i, s, n
    cdef double xr, xi, pr, pi_, tr, ang, dr, di, pw
    cdef double* P = &pre[0]
    # Phasors and their per-sample steps in local arrays (nothing aliases them, so the
    # per-frequency loop vectorises); frequency rows are at most MAX_PREFIX_FREQS wide.
    cdef double ph_re[MAX_PREFIX_FREQS]
    cdef double ph_im[MAX_PREFIX_FREQS]
    cdef double st_re[MAX_PREFIX_FREQS]
    cdef double st_im[MAX_PREFIX_FREQS]
    cdef double a_re[MAX_PREFIX_FREQS]
    cdef double a_im[MAX_PREFIX_FREQS]
    cdef double* cur
    cdef double* nxt
    for k in range(nk):
        ang = -2.0 * M_PI * freqs[i0, k] / rate
        st_re[k] = cos(ang)
        st_im[k] = sin(ang)
    for k in range(stride):
        P[k] = 0.0
    for k in range(nk):
        a_re[k] = 0.0
        a_im[k] = 0.0
    for m in range(span):
        if m % PHASOR_RESYNC == 0:
            for k in range(nk):
                ang = -2.0 * M_PI * freqs[i0, k] * m / rate
                ph_re[k] = cos(ang)
                ph_im[k] = sin(ang)
        xr = xb[2 * (lo + m)]
        xi = xb[2 * (lo + m) + 1]
        for k in range(nk):
            pr = ph_re[k]
            pi_ = ph_im[k]
            a_re[k] = a_re[k] + xr * pr - xi * pi_
            a_im[k] = a_im[k] + xr * pi_ + xi * pr
            tr = pr * st_re[k] - pi_ * st_im[k]
            ph_im[k] = pr * st_im[k] + pi_ * st_re[k]
            ph_re[k] = tr
        nxt = P + (m + 1) * stride
        for k in range(nk):
            nxt[k] = a_re[k]
            nxt[nk + k] = a_im[k]
    for i in range(i0, i1):
        s = starts[i] - lo
        cur = P + s * stride
        nxt = P + (s + length) * stride
        for k in range(nk):
            dr = nxt[k] - cur[k]
            di = nxt[nk + k] - cur[nk + k]
            energy[i, k] = dr * dr + di * di
        # A window's power depends only on its start: with a cache (``power_cache[start -
        # cache_lo]``, negative until known) runs that revisit starts sum each once.
        if power_cache != NULL and power_cache[starts[i] - cache_lo] >= 0.0:
            power[i] = power_cache[starts[i] - cache_lo]
            continue
        pw = 0.0
        for n in range(length):
            xr = xb[2 * (starts[i] + n)]
            xi = xb[2 * (starts[i] + n) + 1]
            pw = pw + xr * xr + xi * xi
        power[i] = pw
        if power_cache != NULL:
            power_cache[starts[i] - cache_lo] = pw


cdef Py_ssize_t _window_plan(
    const long[::1] starts,
    const double[:, ::1] freqs,
    Py_ssize_t length,
    long[::1] edges,
    long[::1] lows,
    long[::1] spans,
    unsigned char[::1] prefix,
    Py_ssize_t cost,
    Py_ssize_t max_freqs,
) noexcept nogil:
    """Fill the run plan (see :func:`window_plan`); returns the number of runs."""
    cdef Py_ssize_t n = starts.shape[0], nk = freqs.shape[1]
    cdef Py_ssize_t i, k, r = 0, a = 0
    cdef long lo, hi
    cdef bint same
    if n == 0:
        edges[0] = 0
        return 0
    lo = starts[0]
    hi = starts[0]
    for i in range(1, n + 1):
        same = i < n
        if same:
            for k in range(nk):
                if freqs[i, k] != freqs[i - 1, k]:
                    same = False
                    break
        if same:
            lo = starts[i] if starts[i] < lo else lo
            hi = starts[i] if starts[i] > hi else hi
            continue
        edges[r] = a
        lows[r] = lo
        spans[r] = hi - lo + length
        prefix[r] = spans[r] * cost < (i - a) * length and nk <= max_freqs
        r += 1
        a = i
        if i < n:
            lo = starts[i]
            hi = starts[i]
    edges[r] = n
    return r


def window_plan(starts, freqs, Py_ssize_t length):
    """Same contract as ``ext.modem_reference.window_plan`` (the plan both backends use)."""
    st = np.ascontiguousarray(starts, dtype=np.int64)
    fq = np.ascontiguousarray(freqs, dtype=np.float64)
    n = st.shape[0]
    edges = np.zeros(n + 1, dtype=np.int64)
    lows = np.zeros(n, dtype=np.int64)
    spans = np.zeros(n, dtype=np.int64)
    prefix = np.zeros(n, dtype=bool)
    cdef const long[::1] sv = st
    cdef const double[:, ::1] fv = fq
    cdef long[::1] ev = edges
    cdef long[::1] lv = lows
    cdef long[::1] spv = spans
    cdef unsigned char[::1] pv = prefix.view(np.uint8)
    cdef Py_ssize_t cost = _PREFIX_COST, max_freqs = _MAX_PREFIX_FREQS, n_runs
    with nogil:
        n_runs = _window_plan(sv, fv, length, ev, lv, spv, pv, cost, max_freqs)
    return edges[: n_runs + 1], lows[:n_runs], spans[:n_runs], prefix[:n_runs]


def _window_args(xb, starts, freqs, Py_ssize_t length, double rate):
    """The checked, contiguous arrays of a window-energy call and its zeroed outputs."""
    x = np.ascontiguousarray(xb, dtype=np.complex128)
    st = np.ascontiguousarray(starts, dtype=np.int64)
    fq = np.ascontiguousarray(freqs, dtype=np.float64)
    if x.ndim != 1 or st.ndim != 1 or fq.ndim != 2 or fq.shape[0] != st.shape[0]:
        raise ValueError("xb must be 1-D, starts (w,) and freqs (w, k)")
    if length <= 0 or rate <= 0:
        raise ValueError("length and rate must be positive")
    if st.size and (st.min() < 0 or st.max() + length > x.shape[0]):
        raise ValueError("a window falls outside the signal")
    energy = np.zeros((st.shape[0], fq.shape[1]), dtype=np.float64)
    power = np.zeros(st.shape[0], dtype=np.float64)
    return x, st, fq, energy, power


def window_energies(xb, starts, freqs, Py_ssize_t length, double rate):
    """Energy of windows of a complex signal at given frequencies, and each window's power.

    Parameters
    ----------
    xb : ndarray of complex128, shape (n,)
        Baseband samples.
    starts : ndarray of int, shape (w,)
        First sample of each window (``0 <= start <= n - length``).
    freqs : ndarray of float64, shape (w, k)
        Frequencies (Hz, baseband) to evaluate in each window.
    length : int
        Window length in samples.
    rate : float
        Sample rate of ``xb`` in Hz.

    Returns
    -------
    energy : ndarray of float64, shape (w, k)
        ``|sum_n xb[start + n] exp(-j 2 pi f n / rate)|^2``.
    power : ndarray of float64, shape (w,)
        ``sum_n |xb[start + n]|^2``.
    """
    x, st, fq, energy, power = _window_args(xb, starts, freqs, length, rate)
    # Runs of windows sharing a row of frequencies, and which of them go by prefix sums
    # (the same plan as the NumPy twin's).
    edges, lows, spans, by_prefix = window_plan(st, fq, length)
    cdef Py_ssize_t max_span = 0
    cdef Py_ssize_t r
    cdef const long[::1] spv = spans
    cdef const unsigned char[::1] bpv = by_prefix.view(np.uint8)
    for r in range(bpv.shape[0]):
        if bpv[r] and spv[r] > max_span:
            max_span = spv[r]
    cdef const double[::1] xv = x.view(np.float64)
    cdef const long[::1] sv = st
    cdef const double[:, ::1] fv = fq
    cdef double[:, ::1] ev = energy
    cdef double[::1] pv = power
    cdef double[:, ::1] b_re = np.zeros((fq.shape[1], length), dtype=np.float64)
    cdef double[:, ::1] b_im = np.zeros((fq.shape[1], length), dtype=np.float64)
    cdef double[::1] b_f = np.zeros(fq.shape[1], dtype=np.float64)
    cdef double[::1] pre = np.empty((max_span + 1) * 2 * max(fq.shape[1], 1), dtype=np.float64)
    cdef double[::1] ph = np.empty(4 * max(fq.shape[1], 1), dtype=np.float64)
    cdef const long[::1] ed = edges
    cdef const long[::1] lw = lows
    cdef const long[::1] sp = spans
    cdef const unsigned char[::1] bp = bpv
    with nogil:
        for r in range(bp.shape[0]):
            if bp[r]:
                _window_energies_prefix(xv, sv, fv, ed[r], ed[r + 1], lw[r], sp[r], length,
                                        rate, pre, ph, ev, pv, NULL, 0)
            else:
                _window_energies(xv, sv, fv, ed[r], ed[r + 1], length, rate, b_re, b_im, b_f,
                                 ev, pv)
    return energy, power


def window_energies_direct(xb, starts, freqs, Py_ssize_t length, double rate):
    """:func:`window_energies` with every window summed on its own (no prefix sums).

    Same contract as ``ext.modem_reference.window_energies_direct``. A basis is built
    once per run of windows with the same frequencies, so a caller that lists the
    windows sharing a frequency together (every timing shift of a symbol) pays for the
    trigonometry once per run; with one frequency per window (fine_refine's case) the
    runs' bases are built side by side and each run's windows summed 4 per loop. Each
    window's energy and power are the same numbers, bit for bit at even lengths (the
    modem's), as :func:`window_energies` gives it on its direct path.
    """
    x, st, fq, energy, power = _window_args(xb, starts, freqs, length, rate)
    cdef const double[::1] xv = x.view(np.float64)
    cdef const long[::1] sv = st
    cdef const double[:, ::1] fv = fq
    cdef double[:, ::1] ev = energy
    cdef double[::1] pv = power
    cdef double[:, ::1] b_re = np.zeros((fq.shape[1], length), dtype=np.float64)
    cdef double[:, ::1] b_im = np.zeros((fq.shape[1], length), dtype=np.float64)
    cdef double[::1] b_f = np.zeros(fq.shape[1], dtype=np.float64)
    cdef Py_ssize_t n = st.shape[0]
    if n and fq.shape[1] != 1:
        with nogil:
            _window_energies(xv, sv, fv, 0, n, length, rate, b_re, b_im, b_f, ev, pv)
        return energy, power
    # One frequency per window (fine_refine's case): the bases of all runs of equal
    # frequencies built side by side, then each run's windows 4 at a time.
    cdef Py_ssize_t i, r, n_runs = 0
    run_of = np.empty(n + 1, dtype=np.int64)
    run_freq = np.empty(n + 1, dtype=np.float64)
    cdef long[::1] rov = run_of
    cdef double[::1] rfv = run_freq
    for i in range(n):
        if i == 0 or fv[i, 0] != fv[i - 1, 0]:
            rov[n_runs] = i
            rfv[n_runs] = fv[i, 0]
            n_runs += 1
    rov[n_runs] = n
    cdef double[:, ::1] bre = np.empty((max(n_runs, 1), length), dtype=np.float64)
    cdef double[:, ::1] bim = np.empty((max(n_runs, 1), length), dtype=np.float64)
    if n:
        with nogil:
            _bases(&rfv[0], n_runs, rate, length, &bre[0, 0], &bim[0, 0], length)
            for r in range(n_runs):
                _direct_run(&xv[0], &sv[0], rov[r], rov[r + 1], &bre[r, 0], &bim[r, 0],
                            length, &ev[0, 0], &pv[0])
    return energy, power


cdef void _direct_run(
    const double* xb, const long* starts, Py_ssize_t i0, Py_ssize_t i1, const double* re,
    const double* im, Py_ssize_t length, double* energy, double* power,
) noexcept nogil:
    """Energies (one frequency each) and powers of windows ``i0 .. i1 - 1`` on one basis.

    :func:`_window_energies`' sums, bit for bit at even lengths, 4 windows per loop so
    their chains of dependent adds overlap.
    """
    cdef Py_ssize_t i = i0, n, q
    cdef double ar0, ai0, ar1, ai1, ar2, ai2, ar3, ai3, xr, xi, pw
    cdef const double* x0
    cdef const double* x1
    cdef const double* x2
    cdef const double* x3
    while i + 4 <= i1:
        x0 = xb + 2 * starts[i]
        x1 = xb + 2 * starts[i + 1]
        x2 = xb + 2 * starts[i + 2]
        x3 = xb + 2 * starts[i + 3]
        ar0 = 0.0
        ai0 = 0.0
        ar1 = 0.0
        ai1 = 0.0
        ar2 = 0.0
        ai2 = 0.0
        ar3 = 0.0
        ai3 = 0.0
        for n in range(length):
            ar0 = ar0 + x0[2 * n] * re[n] - x0[2 * n + 1] * im[n]
            ai0 = ai0 + x0[2 * n] * im[n] + x0[2 * n + 1] * re[n]
            ar1 = ar1 + x1[2 * n] * re[n] - x1[2 * n + 1] * im[n]
            ai1 = ai1 + x1[2 * n] * im[n] + x1[2 * n + 1] * re[n]
            ar2 = ar2 + x2[2 * n] * re[n] - x2[2 * n + 1] * im[n]
            ai2 = ai2 + x2[2 * n] * im[n] + x2[2 * n + 1] * re[n]
            ar3 = ar3 + x3[2 * n] * re[n] - x3[2 * n + 1] * im[n]
            ai3 = ai3 + x3[2 * n] * im[n] + x3[2 * n + 1] * re[n]
        energy[i] = ar0 * ar0 + ai0 * ai0
        energy[i + 1] = ar1 * ar1 + ai1 * ai1
        energy[i + 2] = ar2 * ar2 + ai2 * ai2
        energy[i + 3] = ar3 * ar3 + ai3 * ai3
        i = i + 4
    while i < i1:
        x0 = xb + 2 * starts[i]
        ar0 = 0.0
        ai0 = 0.0
        for n in range(length):
            ar0 = ar0 + x0[2 * n] * re[n] - x0[2 * n + 1] * im[n]
            ai0 = ai0 + x0[2 * n] * im[n] + x0[2 * n + 1] * re[n]
        energy[i] = ar0 * ar0 + ai0 * ai0
        i = i + 1
    i = i0
    while i + 4 <= i1:
        x0 = xb + 2 * starts[i]
        x1 = xb + 2 * starts[i + 1]
        x2 = xb + 2 * starts[i + 2]
        x3 = xb + 2 * starts[i + 3]
        ar0 = 0.0
        ar1 = 0.0
        ar2 = 0.0
        ar3 = 0.0
        for n in range(length):
            ar0 = ar0 + x0[2 * n] * x0[2 * n] + x0[2 * n + 1] * x0[2 * n + 1]
            ar1 = ar1 + x1[2 * n] * x1[2 * n] + x1[2 * n + 1] * x1[2 * n + 1]
            ar2 = ar2 + x2[2 * n] * x2[2 * n] + x2[2 * n + 1] * x2[2 * n + 1]
            ar3 = ar3 + x3[2 * n] * x3[2 * n] + x3[2 * n + 1] * x3[2 * n + 1]
        power[i] = ar0
        power[i + 1] = ar1
        power[i + 2] = ar2
        power[i + 3] = ar3
        i = i + 4
    while i < i1:
        x0 = xb + 2 * starts[i]
        pw = 0.0
        for n in range(length):
            xr = x0[2 * n]
            xi = x0[2 * n + 1]
            pw = pw + xr * xr + xi * xi
        power[i] = pw
        i = i + 1


cdef void _branch_table(
    const double* row, const long[::1] labels, const long[::1] combo, bint linear,
    double* bm,
) noexcept nogil:
    """One step's branch metrics, laid out for :func:`_acs_step`.

    Linear labels (XOR of a label per bit field, as any parity-mask code has): 16 rows
    ``bm[v * 16 + k * 4 + b] = row[v ^ combo[k * 4 + b]]``, one per label ``v`` of a state
    block; 256 lookups instead of one per register. Otherwise every register's metric,
    ``bm[k * S + ns] = row[labels[ns | k << state_bits]]`` (4 S lookups).
    """
    cdef Py_ssize_t v, kb, r
    if linear:
        for v in range(16):
            for kb in range(16):
                bm[v * 16 + kb] = row[v ^ combo[kb]]
    else:
        for r in range(labels.shape[0]):
            bm[r] = row[labels[r]]


cdef void _acs_step(
    const double* acc, double* out, unsigned char* dec, const double* bm,
    const long[::1] block_label, bint linear, Py_ssize_t n_states, Py_ssize_t n_blocks,
) noexcept nogil:
    """One add-compare-select step of the 4-predecessor trellis (see _viterbi_symbols).

    States 4h .. 4h + 3 share their 4 predecessors h + k * S / 4 (k = the two oldest
    input bits); predecessor k's branch into state 4h + b is register
    (4h + b) | (k << state_bits). The 4 states of a block run side by side (SIMD lanes).
    The first of equal candidates wins (strict '>'), as the NumPy twin's argmax.
    ``dec`` may be NULL (forward metrics only). Only blocks ``h < n_blocks`` are
    computed (see :func:`_step_blocks`).
    """
    cdef Py_ssize_t quarter = n_states >> 2
    cdef Py_ssize_t h, b
    cdef double a0, a1, a2, a3, c0, c1, c2, c3, m01, m23
    cdef int g1, g3, g
    cdef const double* b0
    cdef const double* b1
    cdef const double* b2
    cdef const double* b3
    cdef Py_ssize_t stride = 4 if linear else n_states
    for h in range(n_blocks):
        a0 = acc[h]
        a1 = acc[h + quarter]
        a2 = acc[h + 2 * quarter]
        a3 = acc[h + 3 * quarter]
        if linear:
            b0 = bm + 16 * block_label[h]
        else:
            b0 = bm + 4 * h
        b1 = b0 + stride
        b2 = b1 + stride
        b3 = b2 + stride
        # Branch-free tournament (pairs, then their winners; a tie goes to the earlier,
        # as the twin's argmax): which predecessor wins is data, and on real frames'
        # metrics the branchy form mispredicted enough to double the step's time.
        for b in range(4):
            c0 = a0 + b0[b]
            c1 = a1 + b1[b]
            c2 = a2 + b2[b]
            c3 = a3 + b3[b]
            g1 = c1 > c0
            g3 = c3 > c2
            m01 = fmax(c0, c1)
            m23 = fmax(c2, c3)
            g = m23 > m01
            out[4 * h + b] = fmax(m01, m23)
            if dec != NULL:
                dec[4 * h + b] = <unsigned char> (g * (2 + g3) + (1 - g) * g1)


cdef void _acs_tail(
    const double* acc, double* out, unsigned char* dec, const double* bm,
    const long[::1] block_label, bint linear, Py_ssize_t n_states, Py_ssize_t n_blocks,
    Py_ssize_t h_step,
) noexcept nogil:
    """:func:`_acs_step` for states ``4h`` only, ``h`` a multiple of ``h_step`` below
    ``n_blocks``: the only states of a tail step from which the zero tail still reaches
    state 0. Same arithmetic as lane ``b = 0`` of the full step."""
    cdef Py_ssize_t quarter = n_states >> 2
    cdef Py_ssize_t h = 0
    cdef double c0, c1, c2, c3, m01, m23
    cdef int g1, g3, g
    cdef const double* b0
    cdef Py_ssize_t stride = 4 if linear else n_states
    while h < n_blocks:
        if linear:
            b0 = bm + 16 * block_label[h]
        else:
            b0 = bm + 4 * h
        c0 = acc[h] + b0[0]
        c1 = acc[h + quarter] + b0[stride]
        c2 = acc[h + 2 * quarter] + b0[2 * stride]
        c3 = acc[h + 3 * quarter] + b0[3 * stride]
        g1 = c1 > c0
        g3 = c3 > c2
        m01 = fmax(c0, c1)
        m23 = fmax(c2, c3)
        g = m23 > m01
        out[4 * h] = fmax(m01, m23)
        if dec != NULL:
            dec[4 * h] = <unsigned char> (g * (2 + g3) + (1 - g) * g1)
        h += h_step


cdef inline Py_ssize_t _step_blocks(
    Py_ssize_t t, Py_ssize_t n_sym, Py_ssize_t state_bits, Py_ssize_t* h_step,
) noexcept nogil:
    """State blocks step ``t`` (of ``n_sym``) needs, for a trellis from and to state 0.

    After ``t + 1`` steps from state 0 only states below ``4**(t + 1)`` are reachable
    (blocks ``h < 4**t``); the others hold -1e300 and cannot win. With ``r = n_sym - t - 1``
    steps left, the zero tail reaches state 0 only from states whose low
    ``state_bits - 2 r`` bits are zero: lane 0 of every ``h_step``-th block (``h_step``
    0 when every state counts). Skipping the rest leaves the kept states' metrics and
    decisions bit for bit the same (9 of 37 steps' work at 1024 states).
    """
    cdef Py_ssize_t quarter = (<Py_ssize_t> 1) << (state_bits - 2)
    cdef Py_ssize_t n_blocks = quarter, z
    if 2 * t < state_bits - 2:
        n_blocks = (<Py_ssize_t> 1) << (2 * t)
    z = state_bits - 2 * (n_sym - t - 1)
    h_step[0] = (<Py_ssize_t> 1) << (z - 2) if z >= 2 else 0
    return n_blocks


# The last read-only label table checked (the decoder passes the same one every time).
_checked = [None, None]


def _check_labels(labels):
    """(labels as int64, states, linear, block labels, combos), validated.

    A read-only int64 table (``edge.modem.fec.SYMBOL_LABELS``) is checked once and then
    recognised by identity: it cannot have changed since.
    """
    if labels is _checked[0]:
        return _checked[1]
    lb = np.ascontiguousarray(labels, dtype=np.int64)
    n_states = lb.shape[0] // 4
    if lb.ndim != 1 or n_states < 4 or n_states & (n_states - 1) or lb.shape[0] != 4 * n_states:
        raise ValueError("labels must have 4 * S entries, S a power of two >= 4")
    if lb.min() < 0 or lb.max() > 15:
        raise ValueError("labels must be in 0..15")
    out = (lb, n_states) + _label_structure(lb, n_states)
    if isinstance(labels, np.ndarray) and labels is lb and not labels.flags.writeable:
        _checked[0] = labels
        _checked[1] = out
    return out


def _label_structure(lb, Py_ssize_t n_states):
    """(linear, label of each state block 4h, combos k*4+b) for the ACS step's table.

    Linear when every register's label is the XOR of its block's label (register 4h),
    its new bits' (register b) and its oldest bits' (register k << state_bits).
    """
    quarter = n_states // 4
    by = lb.reshape(4, quarter, 4)  # [k, h, b]
    block = np.ascontiguousarray(by[0, :, 0], dtype=np.int64)
    combo = np.ascontiguousarray(by[:, 0, :].ravel(), dtype=np.int64)  # [k * 4 + b]
    linear = bool(np.array_equal(by, block[None, :, None] ^ by[:, :1, :]))
    return linear, block, combo


cdef void _viterbi_symbols(
    const double[:, ::1] metric,
    const long[::1] labels,
    const long[::1] block_label,
    const long[::1] combo,
    bint linear,
    Py_ssize_t state_bits,
    double[::1] acc,
    double[::1] nxt,
    double[::1] bm,
    unsigned char[:, ::1] decisions,
    unsigned char[::1] bits,
) noexcept nogil:
    """Max-log Viterbi, one 16-ary symbol and two input bits per step, ends in state 0."""
    cdef Py_ssize_t n_sym = metric.shape[0]
    cdef Py_ssize_t n_states = acc.shape[0]
    cdef Py_ssize_t top = state_bits - 2
    cdef Py_ssize_t t, st
    cdef double* cur = &acc[0]
    cdef double* new = &nxt[0]
    cdef double* swap
    cdef Py_ssize_t n_blocks, h_step
    # Both buffers start at -1e300: the first steps fill only their reachable states,
    # and every state a later step reads has been written by then (see _step_blocks).
    for st in range(n_states):
        cur[st] = -1e300
        new[st] = -1e300
    cur[0] = 0.0
    for t in range(n_sym):
        _branch_table(&metric[t, 0], labels, combo, linear, &bm[0])
        n_blocks = _step_blocks(t, n_sym, state_bits, &h_step)
        if h_step:
            _acs_tail(cur, new, &decisions[t, 0], &bm[0], block_label, linear, n_states,
                      n_blocks, h_step)
        else:
            _acs_step(cur, new, &decisions[t, 0], &bm[0], block_label, linear, n_states,
                      n_blocks)
        swap = cur
        cur = new
        new = swap
    st = 0
    for t in range(n_sym - 1, -1, -1):
        bits[2 * t] = (st >> 1) & 1
        bits[2 * t + 1] = st & 1
        st = (st >> 2) | (<Py_ssize_t> decisions[t, st] << top)


def viterbi_symbols(metric, labels):
    """Decode a terminated rate-2/4 code whose 4-bit labels are scored per symbol.

    Parameters
    ----------
    metric : ndarray of float64, shape (n, 16)
        Log-likelihood of every 4-bit label at each trellis step.
    labels : ndarray of int, shape (4 * S,)
        Label of every register value ``state << 2 | two new input bits`` for a
        trellis of ``S`` states (a power of two, at least 4).

    Returns
    -------
    ndarray of uint8, shape (2 n,)
        The most likely input bits, two per step (the trellis starts and ends in state 0).
    """
    mv = np.ascontiguousarray(metric, dtype=np.float64)
    if mv.ndim != 2 or mv.shape[1] != 16:
        raise ValueError("metric must have shape (n, 16)")
    lb, n_states, linear, block, combo = _check_labels(labels)
    if not np.isfinite(mv).all():
        raise ValueError("metric must be finite")
    n_sym = mv.shape[0]
    bits = np.zeros(2 * n_sym, dtype=np.uint8)
    decisions = np.zeros((max(n_sym, 1), n_states), dtype=np.uint8)
    cdef Py_ssize_t state_bits = n_states.bit_length() - 1
    cdef const double[:, ::1] mtv = mv
    cdef const long[::1] lv = lb
    cdef double[::1] acc = np.empty(n_states, dtype=np.float64)
    cdef double[::1] nxt = np.empty(n_states, dtype=np.float64)
    cdef double[::1] bm = np.empty(max(4 * n_states, 256), dtype=np.float64)
    cdef unsigned char[:, ::1] dv = decisions
    cdef unsigned char[::1] bv = bits
    cdef const long[::1] blk = block
    cdef const long[::1] cmb = combo
    cdef bint lin = linear
    with nogil:
        _viterbi_symbols(mtv, lv, blk, cmb, lin, state_bits, acc, nxt, bm, dv, bv)
    return bits


# The last read-only (interleave, whitening) pair viterbi_tones checked.
_checked_order = [None, None]


def viterbi_tones(loglik, interleave, whitening, labels):
    """Viterbi decode straight from per-symbol tone log-likelihoods: the bits and the tones.

    Same contract as ``ext.modem_reference.viterbi_tones``. Trellis step ``t``'s metric
    for label ``c`` is ``loglik[interleave[t], whitening[t] ^ c]`` (the symbols as sent:
    interleaved, each label whitened by a nibble); the decoded path's labels come out of
    the traceback (each step's register), re-whitened and put back in sending order, so
    the caller needs no re-encoding: ``tones[interleave[t]] = label_t ^ whitening[t]``.

    Parameters
    ----------
    loglik : ndarray of float64, shape (n, 16)
        Every sent symbol's tone log-likelihoods (finite).
    interleave : ndarray of int, shape (n,)
        A permutation of 0 .. n - 1: where trellis step ``t``'s symbol was sent.
    whitening : ndarray of int, shape (n,)
        The nibble (0 .. 15) XORed onto each step's label.
    labels : ndarray of int, shape (4 * S,)
        As :func:`viterbi_symbols`.

    Returns
    -------
    bits : ndarray of uint8, shape (2 n,)
        As :func:`viterbi_symbols` on the gathered metric.
    tones : ndarray of int64, shape (n,)
        The path's tone for every sent symbol.
    """
    ll = np.ascontiguousarray(loglik, dtype=np.float64)
    il = np.ascontiguousarray(interleave, dtype=np.int64)
    wh = np.ascontiguousarray(whitening, dtype=np.int64)
    if ll.ndim != 2 or ll.shape[1] != 16:
        raise ValueError("loglik must have shape (n, 16)")
    cdef Py_ssize_t n_sym = ll.shape[0]
    if il.shape != (n_sym,) or wh.shape != (n_sym,):
        raise ValueError("interleave and whitening need one entry per symbol")
    if not (interleave is _checked_order[0] and whitening is _checked_order[1]):
        if n_sym and (wh.min() < 0 or wh.max() > 15
                      or not np.array_equal(np.sort(il), np.arange(n_sym))):
            raise ValueError("interleave must be a permutation and whitening in 0..15")
        # Read-only tables (edge.modem.fec's) are checked once, then known by identity.
        if (il is interleave and wh is whitening and not il.flags.writeable
                and not wh.flags.writeable):
            _checked_order[0] = interleave
            _checked_order[1] = whitening
    lb, n_states, linear, block, combo = _check_labels(labels)
    if not np.isfinite(ll).all():
        raise ValueError("loglik must be finite")
    metric = np.empty((n_sym, 16), dtype=np.float64)
    bits = np.zeros(2 * n_sym, dtype=np.uint8)
    tones = np.zeros(n_sym, dtype=np.int64)
    decisions = np.zeros((max(n_sym, 1), n_states), dtype=np.uint8)
    cdef Py_ssize_t state_bits = n_states.bit_length() - 1
    cdef const double[:, ::1] llv = ll
    cdef const long[::1] ilv = il
    cdef const long[::1] whv = wh
    cdef double[:, ::1] mtv = metric
    cdef const long[::1] lv = lb
    cdef double[::1] acc = np.empty(n_states, dtype=np.float64)
    cdef double[::1] nxt = np.empty(n_states, dtype=np.float64)
    cdef double[::1] bm = np.empty(max(4 * n_states, 256), dtype=np.float64)
    cdef unsigned char[:, ::1] dv = decisions
    cdef unsigned char[::1] bv = bits
    cdef long[::1] tv = tones
    cdef const long[::1] blk = block
    cdef const long[::1] cmb = combo
    cdef bint lin = linear
    cdef Py_ssize_t t, c, st, top = state_bits - 2
    with nogil:
        for t in range(n_sym):
            for c in range(16):
                mtv[t, c] = llv[ilv[t], whv[t] ^ c]
        _viterbi_symbols(mtv, lv, blk, cmb, lin, state_bits, acc, nxt, bm, dv, bv)
        # The same traceback again, reading each step's register: label, then tone.
        st = 0
        for t in range(n_sym - 1, -1, -1):
            tv[ilv[t]] = lv[st | (<Py_ssize_t> dv[t, st] << state_bits)] ^ whv[t]
            st = (st >> 2) | (<Py_ssize_t> dv[t, st] << top)
    return bits, tones


# Heap entries the list search may push before it gives up (ties on a flat metric would
# otherwise walk the tree breadth first); the NumPy twin stops at the same count.
DEF MAX_LIST_PUSHES = 1 << 16


cdef inline bint _heap_before(const double* pri, const long* cnt, long a, long b) noexcept nogil:
    """Entry a pops before entry b: higher priority, then the earlier push."""
    return pri[a] > pri[b] or (pri[a] == pri[b] and cnt[a] < cnt[b])


cdef Py_ssize_t _list_paths(
    const double[:, ::1] metric,
    const long[::1] labels,
    const long[::1] block_label,
    const long[::1] combo,
    bint linear,
    double[::1] bm,
    Py_ssize_t state_bits,
    Py_ssize_t max_paths,
    double[:, ::1] acc,
    double[::1] e_pri,
    long[::1] e_cnt,
    long[::1] e_t,
    long[::1] e_state,
    double[::1] e_suf,
    long[::1] e_node,
    long[::1] heap,
    long[::1] node_state,
    long[::1] node_next,
    double[::1] out_metric,
    unsigned char[:, ::1] out_bits,
) noexcept nogil:
    """Forward Viterbi metrics, then the tree-trellis best-first search (see the wrapper)."""
    cdef Py_ssize_t n = metric.shape[0], n_states = acc.shape[1]
    cdef Py_ssize_t top = state_bits - 2
    cdef Py_ssize_t t, ns, k, half, pred, st, step
    cdef double best, c, s2
    cdef const double* row
    cdef double* before
    # Unreachable states hold -1e300 (the twin's -inf): a sum with one stays below
    # -1e299, and is reset to -1e300 so nothing drifts. Steps skip the states
    # _step_blocks leaves out (unreachable, or in the tail unused: the search below
    # reads only states from which the zero tail reaches state 0), which keep -1e300.
    cdef Py_ssize_t n_blocks, h_step
    for t in range(n + 1):
        for st in range(n_states):
            acc[t, st] = -1e300
    acc[0, 0] = 0.0
    for t in range(n):
        _branch_table(&metric[t, 0], labels, combo, linear, &bm[0])
        n_blocks = _step_blocks(t, n, state_bits, &h_step)
        if h_step:
            _acs_tail(&acc[t, 0], &acc[t + 1, 0], NULL, &bm[0], block_label, linear,
                      n_states, n_blocks, h_step)
        else:
            _acs_step(&acc[t, 0], &acc[t + 1, 0], NULL, &bm[0], block_label, linear,
                      n_states, n_blocks)
        for st in range(n_states):
            if acc[t + 1, st] <= -1e299:
                acc[t + 1, st] = -1e300
    cdef long size = 1, pushed = 1, e, child, parent, node, found = 0, tmp
    e_pri[0] = acc[n, 0]
    e_cnt[0] = 0
    e_t[0] = n
    e_state[0] = 0
    e_suf[0] = 0.0
    e_node[0] = -1
    heap[0] = 0
    cdef long n_nodes = 0
    cdef double* pri = &e_pri[0]
    cdef long* cnt = &e_cnt[0]
    while size > 0 and found < max_paths:
        e = heap[0]
        size -= 1
        if size > 0:
            # Sift the last entry down from the root.
            tmp = heap[size]
            parent = 0
            while True:
                child = 2 * parent + 1
                if child >= size:
                    break
                if child + 1 < size and _heap_before(pri, cnt, heap[child + 1], heap[child]):
                    child += 1
                if _heap_before(pri, cnt, heap[child], tmp):
                    heap[parent] = heap[child]
                    parent = child
                else:
                    break
            heap[parent] = tmp
        t = e_t[e]
        st = e_state[e]
        if t == 0:
            out_metric[found] = e_pri[e]
            node = e_node[e]
            step = 0
            while node >= 0:
                out_bits[found, 2 * step] = (node_state[node] >> 1) & 1
                out_bits[found, 2 * step + 1] = node_state[node] & 1
                node = node_next[node]
                step += 1
            found += 1
            continue
        if pushed + 4 > e_pri.shape[0]:
            return -1 if e_pri.shape[0] < MAX_LIST_PUSHES else found
        # One chain node (this state, then the later ones) shared by the 4 children.
        node_state[n_nodes] = st
        node_next[n_nodes] = e_node[e]
        node = n_nodes
        n_nodes += 1
        before = &acc[t - 1, 0]
        row = &metric[t - 1, 0]
        for k in range(4):
            pred = (st >> 2) | (k << top)
            if before[pred] <= -1e299:
                continue
            s2 = e_suf[e] + row[labels[st | (k << state_bits)]]
            e_pri[pushed] = before[pred] + s2
            e_cnt[pushed] = pushed
            e_t[pushed] = t - 1
            e_state[pushed] = pred
            e_suf[pushed] = s2
            e_node[pushed] = node
            # Sift up.
            child = size
            size += 1
            while child > 0:
                parent = (child - 1) >> 1
                if _heap_before(pri, cnt, pushed, heap[parent]):
                    heap[child] = heap[parent]
                    child = parent
                else:
                    break
            heap[child] = pushed
            pushed += 1
    return found


def list_paths(metric, labels, Py_ssize_t max_paths):
    """The ``max_paths`` best terminated paths of the trellis, best first.

    Same contract as ``ext.modem_reference.list_paths`` (the tree-trellis search: forward
    Viterbi metrics, then a best-first search backwards from the terminal state whose
    priority is exactly the best full path through each suffix).

    Parameters
    ----------
    metric : ndarray of float64, shape (n, 16)
        Log-likelihood of every 4-bit label at each trellis step (finite).
    labels : ndarray of int, shape (4 * S,)
        Label of every register value ``state << 2 | two new input bits``.
    max_paths : int
        How many paths to return at most.

    Returns
    -------
    list of (float, ndarray of uint8 shape (2 n,))
        Each path's metric and input bits, best first.
    """
    mv = np.ascontiguousarray(metric, dtype=np.float64)
    if mv.ndim != 2 or mv.shape[1] != 16:
        raise ValueError("metric must have shape (n, 16)")
    lb, n_states, linear, block, combo = _check_labels(labels)
    if not np.isfinite(mv).all():
        raise ValueError("metric must be finite")
    if max_paths < 1:
        return []
    n = mv.shape[0]
    cdef Py_ssize_t cap
    cdef Py_ssize_t state_bits = n_states.bit_length() - 1
    acc = np.empty((n + 1, n_states), dtype=np.float64)
    out_metric = np.zeros(max_paths, dtype=np.float64)
    out_bits = np.zeros((max_paths, 2 * n), dtype=np.uint8)
    cdef const double[:, ::1] mtv = mv
    cdef const long[::1] lv = lb
    cdef double[:, ::1] av = acc
    cdef double[::1] e_pri, e_suf
    cdef long[::1] e_cnt, e_t, e_state, e_node, heap, node_state, node_next
    cdef double[::1] om = out_metric
    cdef unsigned char[:, ::1] ob = out_bits
    cdef Py_ssize_t found = -1
    cdef const long[::1] blk = block
    cdef const long[::1] cmb = combo
    cdef bint lin = linear
    cdef double[::1] bm = np.empty(max(4 * n_states, 256), dtype=np.float64)
    # A small heap serves almost every search; one that runs out starts over with the
    # full budget (the search is deterministic, so the answer is the same).
    cap = min(MAX_LIST_PUSHES, 64 * max_paths * (n + 1))
    while found < 0:
        e_pri = np.empty(cap, dtype=np.float64)
        e_suf = np.empty(cap, dtype=np.float64)
        e_cnt = np.empty(cap, dtype=np.int64)
        e_t = np.empty(cap, dtype=np.int64)
        e_state = np.empty(cap, dtype=np.int64)
        e_node = np.empty(cap, dtype=np.int64)
        heap = np.empty(cap, dtype=np.int64)
        node_state = np.empty(cap, dtype=np.int64)
        node_next = np.empty(cap, dtype=np.int64)
        with nogil:
            found = _list_paths(mtv, lv, blk, cmb, lin, bm, state_bits, max_paths, av, e_pri,
                                e_cnt, e_t, e_state, e_suf, e_node, heap, node_state,
                                node_next, om, ob)
        cap = MAX_LIST_PUSHES
    return [(float(out_metric[i]), out_bits[i].copy()) for i in range(found)]


cdef void _basis(double f, double rate, Py_ssize_t length, double* re, double* im) noexcept nogil:
    """exp(-j 2 pi f n / rate) for n < length, by a rotating phasor (as _window_energies)."""
    cdef double ang = -2.0 * M_PI * f / rate
    cdef double cr = cos(ang), ci = sin(ang), pr = 1.0, pi_ = 0.0, tr
    cdef Py_ssize_t n
    for n in range(length):
        re[n] = pr
        im[n] = pi_
        tr = pr * cr - pi_ * ci
        pi_ = pr * ci + pi_ * cr
        pr = tr


DEF BASIS_CHAINS = 8


cdef void _bases(
    const double* freqs, Py_ssize_t count, double rate, Py_ssize_t length, double* re,
    double* im, Py_ssize_t stride,
) noexcept nogil:
    """:func:`_basis` of ``count`` frequencies, basis ``b`` at ``re/im + b * stride``.

    The same rotating phasor, bit for bit, for up to BASIS_CHAINS frequencies side by
    side: each phasor is a chain of dependent multiply-adds, so one at a time left the
    CPU waiting on each step.
    """
    cdef double cr[BASIS_CHAINS]
    cdef double ci[BASIS_CHAINS]
    cdef double pr[BASIS_CHAINS]
    cdef double pi_[BASIS_CHAINS]
    cdef double ang, tr
    cdef Py_ssize_t b0, q, n, nq
    b0 = 0
    while b0 < count:
        nq = count - b0 if count - b0 < BASIS_CHAINS else BASIS_CHAINS
        for q in range(nq):
            ang = -2.0 * M_PI * freqs[b0 + q] / rate
            cr[q] = cos(ang)
            ci[q] = sin(ang)
            pr[q] = 1.0
            pi_[q] = 0.0
        for n in range(length):
            for q in range(nq):
                re[(b0 + q) * stride + n] = pr[q]
                im[(b0 + q) * stride + n] = pi_[q]
                tr = pr[q] * cr[q] - pi_[q] * ci[q]
                pi_[q] = pr[q] * ci[q] + pi_[q] * cr[q]
                pr[q] = tr
        b0 = b0 + nq


cdef double _window_energy(
    const double* xb, long start, const double* re, const double* im, Py_ssize_t length,
    double* power,
) noexcept nogil:
    """|sum_n xb[start + n] basis[n]|^2; the window's power into ``power``."""
    cdef double ar = 0.0, ai = 0.0, pw = 0.0, xr, xi
    cdef Py_ssize_t n
    for n in range(length):
        xr = xb[2 * (start + n)]
        xi = xb[2 * (start + n) + 1]
        ar = ar + xr * re[n] - xi * im[n]
        ai = ai + xr * im[n] + xi * re[n]
        pw = pw + xr * xr + xi * xi
    power[0] = pw
    return ar * ar + ai * ai


cdef void _window_energy_4(
    const double* xr, const double* xi, const double* re, const double* im,
    Py_ssize_t stride, Py_ssize_t length, double* out,
) noexcept nogil:
    """:func:`_window_energy` of one window on 4 bases (``re/im + q * stride``), no power.

    The window comes split into real and imaginary parts (the tones' loops shared that
    shuffle) and the 4 sums run in one loop: each sum is a chain of dependent adds, and
    one tone at a time left the CPU waiting on it. The same sums, bit for bit, at even
    lengths (the modem's 36 and 40: the compiler splits each sum into even and odd
    samples either way; an odd length's last sample may be added in another order,
    within rounding): coarse_frame 39 -> 33 us.
    """
    cdef double ar0 = 0.0, ai0 = 0.0, ar1 = 0.0, ai1 = 0.0
    cdef double ar2 = 0.0, ai2 = 0.0, ar3 = 0.0, ai3 = 0.0
    cdef const double* r0 = re
    cdef const double* i0 = im
    cdef const double* r1 = re + stride
    cdef const double* i1 = im + stride
    cdef const double* r2 = re + 2 * stride
    cdef const double* i2 = im + 2 * stride
    cdef const double* r3 = re + 3 * stride
    cdef const double* i3 = im + 3 * stride
    cdef Py_ssize_t n
    for n in range(length):
        ar0 = ar0 + xr[n] * r0[n] - xi[n] * i0[n]
        ai0 = ai0 + xr[n] * i0[n] + xi[n] * r0[n]
        ar1 = ar1 + xr[n] * r1[n] - xi[n] * i1[n]
        ai1 = ai1 + xr[n] * i1[n] + xi[n] * r1[n]
        ar2 = ar2 + xr[n] * r2[n] - xi[n] * i2[n]
        ai2 = ai2 + xr[n] * i2[n] + xi[n] * r2[n]
        ar3 = ar3 + xr[n] * r3[n] - xi[n] * i3[n]
        ai3 = ai3 + xr[n] * i3[n] + xi[n] * r3[n]
    out[0] = ar0 * ar0 + ai0 * ai0
    out[1] = ar1 * ar1 + ai1 * ai1
    out[2] = ar2 * ar2 + ai2 * ai2
    out[3] = ar3 * ar3 + ai3 * ai3


DEF MAX_WIN = 128  # longest window the candidate kernel takes (40 at 48 kHz)


# The last read-only (preamble tones, tone frequencies, symbol starts) checked.
_checked_frame = [None, None, None, None]


def _grid_arrays(xb, shifts, shift_dtype, scales, preamble_tones, tone_freqs, t_s):
    """The search grid's inputs as contiguous arrays, checked (coarse_frame, wide_scores).

    The frame tables (demod's read-only constants, the same objects every call) are
    checked once and then recognised by identity, as the label table is.
    """
    x = np.ascontiguousarray(xb, dtype=np.complex128)
    sh = np.ascontiguousarray(shifts, dtype=shift_dtype)
    sc = np.ascontiguousarray(scales, dtype=np.float64)
    if x.ndim != 1 or sh.ndim != 1 or sc.ndim != 1 or sh.size == 0 or sc.size == 0:
        raise ValueError("xb, shifts and scales must be non-empty 1-D arrays")
    if (preamble_tones is _checked_frame[0] and tone_freqs is _checked_frame[1]
            and t_s is _checked_frame[2]):
        return (x, sh, sc) + _checked_frame[3]
    pt = np.ascontiguousarray(preamble_tones, dtype=np.int64)
    tf = np.ascontiguousarray(tone_freqs, dtype=np.float64)
    ts = np.ascontiguousarray(t_s, dtype=np.float64)
    if tf.shape != (16,) or pt.ndim != 1 or ts.ndim != 1 or ts.shape[0] < pt.shape[0]:
        raise ValueError("tone_freqs must have 16 entries and t_s cover the preamble")
    if pt.size and (pt.min() < 0 or pt.max() > 15):
        raise ValueError("preamble tones must be in 0..15")
    if all(isinstance(a, np.ndarray) and a is b and not a.flags.writeable
           for a, b in ((preamble_tones, pt), (tone_freqs, tf), (t_s, ts))):
        _checked_frame[:] = [preamble_tones, tone_freqs, t_s, (pt, tf, ts)]
    return x, sh, sc, pt, tf, ts


def coarse_frame(xb, double frame_start, double scale0, scale_steps, shifts, preamble_tones,
                 tone_freqs, t_s, double carrier_hz, Py_ssize_t length, double rate):
    """Coarse time/scale refinement of a sync candidate, then its frame's tone energies.

    Same contract as ``ext.modem_reference.coarse_frame``.

    Parameters
    ----------
    xb : ndarray of complex128
        Baseband samples.
    frame_start : float
        The candidate's frame start (baseband samples into ``xb``).
    scale0 : float
        The candidate's Doppler/clock scale (observed frequency = f * (1 + scale)).
    scale_steps : ndarray of float64, shape (a,)
        Scales to try, relative: ``scale0 + scale_steps``.
    shifts : ndarray of int, shape (b,)
        Timing shifts to try, in samples.
    preamble_tones : ndarray of int, shape (p,)
        The tone of each preamble symbol.
    tone_freqs : ndarray of float64, shape (16,)
        Absolute tone frequencies in Hz.
    t_s : ndarray of float64, shape (s,)
        Start of each symbol's integration window after the frame start, in seconds
        (the first p are the preamble).
    carrier_hz, length, rate :
        Baseband centre, window length (samples), baseband rate.

    Returns
    -------
    start, scale : float
        The best ``(frame_start + shifts[j], scale0 + scale_steps[i])``, or
        ``(frame_start, scale0)`` if a window of the search leaves ``xb``.
    energy : ndarray of float64, shape (s, 16), or None
        Every symbol's 16 tone energies at (start, scale); None if a window leaves ``xb``.
        The search scores each (scale, shift) by the energy at the preamble's tones over
        the windows' power; the first best wins.
    """
    x, sh, sc, pt, tf, ts = _grid_arrays(
        xb, shifts, np.int64, scale0 + np.asarray(scale_steps, dtype=np.float64),
        preamble_tones, tone_freqs, t_s)
    if not 0 < length <= MAX_WIN or rate <= 0:
        raise ValueError(f"length must be 1 .. {MAX_WIN} and rate positive")
    cdef const double[::1] xv = x.view(np.float64)
    cdef const double[::1] scv = sc
    cdef const long[::1] shv = sh
    cdef const long[::1] ptv = pt
    cdef const double[::1] tfv = tf
    cdef const double[::1] tsv = ts
    cdef Py_ssize_t n_sc = sc.shape[0], n_sh = sh.shape[0], n_pre = pt.shape[0]
    cdef Py_ssize_t n_sym = ts.shape[0], n_bb = x.shape[0]
    cdef Py_ssize_t i, j, s, k
    cdef long st, lo = 0, hi = 0
    cdef double pw, e_sum, p_sum, score, best = -1.0, start, scale, ratio
    cdef bint inside = True
    cdef Py_ssize_t bi = 0, bj = 0
    cdef const double* xp = &xv[0]
    # Every search window inside xb? (the same test as the NumPy path's min/max)
    for i in range(n_sc):
        for j in range(n_sh):
            for s in range(n_pre):
                st = <long> rint(frame_start + shv[j] + tsv[s] * rate / (1.0 + scv[i]))
                if st < 0 or st + length > n_bb:
                    inside = False
    # One basis per (scale, preamble symbol), shared by every shift.
    scratch = np.empty((n_sc * max(n_pre, 1), 2, length), dtype=np.float64)
    cdef double[:, :, ::1] bases = scratch
    freq_list = np.empty(max(n_sc * n_pre, 16), dtype=np.float64)
    cdef double[::1] fl = freq_list
    if inside and n_pre:
        with nogil:
            for i in range(n_sc):
                for s in range(n_pre):
                    fl[i * n_pre + s] = tfv[ptv[s]] * (1.0 + scv[i]) - carrier_hz
            _bases(&fl[0], n_sc * n_pre, rate, length, &bases[0, 0, 0], &bases[0, 1, 0],
                   2 * length)
            for i in range(n_sc):
                for j in range(n_sh):
                    e_sum = 0.0
                    p_sum = 0.0
                    for s in range(n_pre):
                        st = <long> rint(frame_start + shv[j] + tsv[s] * rate / (1.0 + scv[i]))
                        e_sum = e_sum + _window_energy(xp, st, &bases[i * n_pre + s, 0, 0],
                                                       &bases[i * n_pre + s, 1, 0], length, &pw)
                        p_sum = p_sum + pw
                    score = e_sum / (p_sum if p_sum > 1e-300 else 1e-300)
                    if score > best:
                        best = score
                        bi = i
                        bj = j
        start = frame_start + shv[bj]
        scale = scv[bi]
    else:
        start = frame_start
        scale = scale0
    return start, scale, _frame_energies(x, start, scale, tf, ts, carrier_hz, length, rate)


cdef void _tone_energies(
    const double* xp, double start, double scale, const double* tf, const double* ts,
    Py_ssize_t n_sym, double carrier_hz, Py_ssize_t length, double rate, double* out,
) noexcept nogil:
    """Every symbol's 16 tone energies at (start, scale) into ``out`` (n_sym x 16)."""
    cdef double bre[16 * MAX_WIN]
    cdef double bim[16 * MAX_WIN]
    cdef double wre[MAX_WIN]
    cdef double wim[MAX_WIN]
    cdef double fl[16]
    cdef Py_ssize_t k, s
    cdef long st
    for k in range(16):
        fl[k] = tf[k] * (1.0 + scale) - carrier_hz
    _bases(fl, 16, rate, length, bre, bim, MAX_WIN)
    for s in range(n_sym):
        st = <long> rint(start + ts[s] * rate / (1.0 + scale))
        for k in range(length):
            wre[k] = xp[2 * (st + k)]
            wim[k] = xp[2 * (st + k) + 1]
        for k in range(0, 16, 4):
            _window_energy_4(wre, wim, &bre[k * MAX_WIN], &bim[k * MAX_WIN], MAX_WIN,
                             length, &out[16 * s + k])


def _frame_energies(x, double start, double scale, tf, ts, double carrier_hz,
                    Py_ssize_t length, double rate):
    """Checked arrays in: the (symbols, 16) tone energies, or None if out of ``x``."""
    cdef const double[::1] xv = x.view(np.float64)
    cdef const double[::1] tfv = tf
    cdef const double[::1] tsv = ts
    cdef Py_ssize_t n_sym = ts.shape[0]
    if n_sym == 0:
        return np.zeros((0, 16), dtype=np.float64)
    cdef long first = <long> rint(start + tsv[0] * rate / (1.0 + scale))
    cdef long last = <long> rint(start + tsv[n_sym - 1] * rate / (1.0 + scale))
    if first < 0 or last + length > x.shape[0]:
        return None
    energy = np.empty((n_sym, 16), dtype=np.float64)
    cdef double[:, ::1] ev = energy
    with nogil:
        _tone_energies(&xv[0], start, scale, &tfv[0], &tsv[0], n_sym, carrier_hz, length,
                       rate, &ev[0, 0])
    return energy


def frame_energies(xb, double frame_start, double scale, tone_freqs, t_s, double carrier_hz,
                   Py_ssize_t length, double rate):
    """Every symbol's 16 tone energies of a frame at (start, scale), or None if out of ``xb``.

    Same contract as ``ext.modem_reference.frame_energies``: window ``s`` starts at
    ``rint(frame_start + t_s[s] * rate / (1 + scale))``, tone ``k`` is at
    ``tone_freqs[k] * (1 + scale) - carrier_hz``; None unless the first and last windows
    lie inside ``xb``. At even window lengths (the modem's) the numbers are bit for bit
    those :func:`window_energies` gives the same windows (and the last stage of
    :func:`coarse_frame`), in half the time.
    """
    x = np.ascontiguousarray(xb, dtype=np.complex128)
    tf = np.ascontiguousarray(tone_freqs, dtype=np.float64)
    ts = np.ascontiguousarray(t_s, dtype=np.float64)
    if x.ndim != 1 or tf.shape != (16,) or ts.ndim != 1:
        raise ValueError("xb and t_s must be 1-D and tone_freqs have 16 entries")
    if not 0 < length <= MAX_WIN or rate <= 0:
        raise ValueError(f"length must be 1 .. {MAX_WIN} and rate positive")
    return _frame_energies(x, frame_start, scale, tf, ts, carrier_hz, length, rate)


def wide_scores(xb, double frame_start, shifts, scales, preamble_tones, tone_freqs, t_s,
                double carrier_hz, Py_ssize_t length, double rate):
    """Decision-free timing/scale scores of a frame on a grid (the wide refinement's search).

    Same contract as ``ext.modem_reference.wide_scores``. Window ``(scale i, shift j,
    symbol s)`` starts at ``rint(frame_start + shifts[j] + t_s[s] * rate / (1 + scales[i]))``;
    its 16 tone energies are taken at ``tone_freqs * (1 + scales[i]) - carrier_hz``. The
    score of ``(i, j)`` is the energy at each preamble symbol's tone plus the strongest
    tone of every later symbol, over the windows' total power.

    Returns
    -------
    ndarray of float64, shape (len(scales), len(shifts)), or None
        The scores; None if a window leaves ``xb``.
    """
    x, sh, sc, pt, tf, ts = _grid_arrays(
        xb, shifts, np.float64, scales, preamble_tones, tone_freqs, t_s)
    if length <= 0 or rate <= 0:
        raise ValueError("length and rate must be positive")
    # [scale, shift, symbol], as the NumPy twin computes them.
    starts = np.rint(
        frame_start + sh[None, :, None] + ts[None, None, :] * rate / (1.0 + sc[:, None, None])
    ).astype(np.int64)
    if starts.min() < 0 or starts.max() + length > x.shape[0]:
        return None
    cdef Py_ssize_t n_sc = sc.shape[0], n_sh = sh.shape[0], n_sym = ts.shape[0]
    cdef Py_ssize_t n_pre = pt.shape[0], count = n_sh * n_sym
    offs = np.ascontiguousarray(tf[None, :] * (1.0 + sc[:, None]) - carrier_hz)  # (scale, tone)
    energy = np.empty((count, 16), dtype=np.float64)
    power = np.empty(count, dtype=np.float64)
    score = np.empty((n_sc, n_sh), dtype=np.float64)
    flat = starts.reshape(n_sc, count)
    lows = flat.min(axis=1)
    spans = flat.max(axis=1) - lows + length
    # The window-energy plan's rule (ext.modem_reference.window_plan): prefix sums when
    # the run's span is short against its windows' total length.
    by_prefix = spans * _PREFIX_COST < count * length
    cdef Py_ssize_t max_span = int(spans.max())
    cdef double[::1] pre = np.empty((max_span + 1) * 32, dtype=np.float64)
    # Every scale's windows start within a few samples of the others': their powers are
    # summed once per start (shared by the prefix-sum runs; measured: 3,645 windows, ~780
    # starts in a first-stage grid; 405 and ~145 in a second; stage 1 0.50 -> 0.44 ms).
    cdef long cache_lo = int(lows.min())
    cdef double[::1] pcache = np.full(int(flat.max()) - cache_lo + 1, -1.0)
    cdef double[::1] ph = np.empty(64, dtype=np.float64)
    cdef double[:, ::1] b_re = np.zeros((16, length), dtype=np.float64)
    cdef double[:, ::1] b_im = np.zeros((16, length), dtype=np.float64)
    cdef double[::1] b_f = np.zeros(16, dtype=np.float64)
    cdef const double[::1] xv = x.view(np.float64)
    cdef double[:, ::1] ev = energy
    cdef double[::1] pv = power
    cdef double[:, ::1] out = score
    cdef const long[::1] ptv = pt
    cdef const long[::1] run
    cdef const double[:, ::1] frow
    cdef Py_ssize_t i, j, s, k
    cdef double known, strongest, top, pw
    cdef Py_ssize_t lo_i, span_i
    for i in range(n_sc):
        run = np.ascontiguousarray(flat[i])
        lo_i = int(lows[i])
        span_i = int(spans[i])
        if by_prefix[i]:
            frow = offs[i : i + 1]
            with nogil:
                _window_energies_prefix(xv, run, frow, 0, count, lo_i, span_i, length,
                                        rate, pre, ph, ev, pv, &pcache[0], cache_lo)
        else:
            frow = np.ascontiguousarray(np.broadcast_to(offs[i], (count, 16)))
            with nogil:
                _window_energies(xv, run, frow, 0, count, length, rate, b_re, b_im, b_f, ev, pv)
        with nogil:
            for j in range(n_sh):
                known = 0.0
                strongest = 0.0
                pw = 0.0
                for s in range(n_sym):
                    pw = pw + pv[j * n_sym + s]
                    if s < n_pre:
                        known = known + ev[j * n_sym + s, ptv[s]]
                    else:
                        top = ev[j * n_sym + s, 0]
                        for k in range(1, 16):
                            if ev[j * n_sym + s, k] > top:
                                top = ev[j * n_sym + s, k]
                        strongest = strongest + top
                out[i, j] = (known + strongest) / (pw if pw > 1e-300 else 1e-300)
    return score


# ------------------------------------------------------------ soft symbol information

cdef double _LN2 = 0.6931471805599453
# The twin's ln I0 polynomials (Abramowitz & Stegun 9.8.1 / 9.8.2), copied once at import.
cdef double _I0_SMALL[7]
cdef double _I0_LARGE[9]
cdef double _I0_KNEE = LOG_I0_KNEE
for _i, _c in enumerate(LOG_I0_SMALL):
    _I0_SMALL[_i] = _c
for _i, _c in enumerate(LOG_I0_LARGE):
    _I0_LARGE[_i] = _c
assert len(LOG_I0_SMALL) == 7 and len(LOG_I0_LARGE) == 9


cdef inline double _log_i0(double x) noexcept nogil:
    """ln I0(x), x >= 0: the polynomials of ``ext.modem_reference.log_i0``, same order."""
    cdef double t, acc
    cdef int i
    if x < _I0_KNEE:
        t = (x / _I0_KNEE) * (x / _I0_KNEE)
        acc = _I0_SMALL[6]
        for i in range(5, -1, -1):
            acc = _I0_SMALL[i] + t * acc
        return log(acc)
    t = _I0_KNEE / x
    acc = _I0_LARGE[8]
    for i in range(7, -1, -1):
        acc = _I0_LARGE[i] + t * acc
    return x + log(acc) - 0.5 * log(x)


cdef void _dbfit(const double* values, const double* x, const double* w, Py_ssize_t n,
                 double max_tilt_db, double* out) noexcept nogil:
    """Weighted dB straight-line fit of ``values`` at ``x``, evaluated at the 16 tones."""
    cdef double vdb[16]
    cdef double sw = 0.0, swx = 0.0, swv = 0.0, xm, vm, xc, den = 0.0, num = 0.0, slope
    cdef double max_slope = max_tilt_db / 15.0
    cdef Py_ssize_t i
    for i in range(n):
        vdb[i] = 10.0 * log10(values[i] if values[i] > 1e-300 else 1e-300)
        sw = sw + w[i]
    for i in range(n):
        swx = swx + w[i] * x[i]
        swv = swv + w[i] * vdb[i]
    xm = swx / sw
    vm = swv / sw
    for i in range(n):
        xc = x[i] - xm
        den = den + w[i] * xc * xc
        num = num + w[i] * xc * (vdb[i] - vm)
    slope = num / den if den > 0 else 0.0
    slope = max_slope if slope > max_slope else (-max_slope if slope < -max_slope else slope)
    for i in range(16):
        out[i] = pow(10.0, (vm + slope * (i - xm)) / 10.0)


cdef void _soft_symbols(
    const double[:, ::1] e, const long[::1] pre_tones, double max_tilt_db, double floor_rel,
    double min_signal_ratio, double[::1] n0, double[:, ::1] ll,
) noexcept nogil:
    """Noise per tone, signal per tone, then every data symbol's tone log-likelihoods."""
    cdef Py_ssize_t n_pre = pre_tones.shape[0], n_sym = e.shape[0], n_data = n_sym - n_pre
    cdef Py_ssize_t r, c, i, j, m, tone
    cdef long top[256]
    cdef double col[256]
    cdef double med[16]
    cdef double xs[16]
    cdef double ws[16]
    cdef double vals[16]
    cdef double fit[16]
    cdef double sums[16]
    cdef double counts[16]
    cdef double signal[16]
    cdef double big = e[n_pre, 0], floor, v, lo, hi, x, sfloor
    # Each data symbol's strongest tone (the first of equal maxima, as np.argmax).
    for r in range(n_data):
        top[r] = 0
        for c in range(1, 16):
            if e[n_pre + r, c] > e[n_pre + r, top[r]]:
                top[r] = c
            if e[n_pre + r, c] > big:
                big = e[n_pre + r, c]
        if e[n_pre + r, 0] > big:
            big = e[n_pre + r, 0]
    floor = floor_rel * big
    if floor < 1e-30:
        floor = 1e-30
    # Noise: each tone's median over the symbols where it is not the strongest, / ln 2.
    for c in range(16):
        m = 0
        for r in range(n_data):
            if top[r] != c:
                v = e[n_pre + r, c]
                j = m
                while j > 0 and col[j - 1] > v:  # insertion sort: at most 37 values
                    col[j] = col[j - 1]
                    j = j - 1
                col[j] = v
                m = m + 1
        if m > 0:
            lo = col[(m - 1) // 2]
            hi = col[m // 2]
            med[c] = 0.5 * (lo + hi) / _LN2
            if med[c] < floor:
                med[c] = floor
        else:
            med[c] = floor
        xs[c] = c
        ws[c] = 1.0
    _dbfit(med, xs, ws, 16, max_tilt_db, fit)
    for c in range(16):
        n0[c] = fit[c] if fit[c] > floor else floor
        sums[c] = 0.0
        counts[c] = 0.0
    # Signal: mean energy over the noise at each symbol's tone (known in the preamble,
    # the strongest in the data), dB-fitted over the tones seen, weighted by their count.
    for r in range(n_sym):
        tone = pre_tones[r] if r < n_pre else top[r - n_pre]
        sums[tone] = sums[tone] + (e[r, tone] - n0[tone])
        counts[tone] = counts[tone] + 1.0
    m = 0
    for c in range(16):
        if counts[c] > 0:
            v = sums[c] / counts[c]
            sfloor = min_signal_ratio * n0[c]
            vals[m] = v if v > sfloor else sfloor
            xs[m] = c
            ws[m] = counts[c]
            m = m + 1
    _dbfit(vals, xs, ws, m, max_tilt_db, fit)
    for c in range(16):
        sfloor = min_signal_ratio * n0[c]
        signal[c] = fit[c] if fit[c] > sfloor else sfloor
    for r in range(n_data):
        for c in range(16):
            x = 2.0 * sqrt(e[n_pre + r, c] * signal[c]) / n0[c]
            ll[r, c] = -signal[c] / n0[c] + _log_i0(x)


def soft_symbols(energy, preamble_tones, double max_tilt_db, double floor_rel,
                 double min_signal_ratio):
    """Noise per tone and the data symbols' tone log-likelihoods of a frame's energies.

    Same contract as ``ext.modem_reference.soft_symbols`` (its ``noise_levels``,
    ``signal_levels`` and ``symbol_loglik`` in one nogil pass).

    Parameters
    ----------
    energy : ndarray of float64, shape (s, 16)
        Every symbol's 16 tone energies, the preamble's first (finite, >= 0).
    preamble_tones : ndarray of int, shape (p,)
        The tone of each preamble symbol (p < s, p + data symbols <= 256).
    max_tilt_db, floor_rel, min_signal_ratio : float
        Largest fitted roll-off across the tones; the noise floor relative to the
        strongest data energy; the signal floor relative to the noise.

    Returns
    -------
    n0 : ndarray of float64, shape (16,)
    loglik : ndarray of float64, shape (s - p, 16)
    """
    e = np.ascontiguousarray(energy, dtype=np.float64)
    pt = np.ascontiguousarray(preamble_tones, dtype=np.int64)
    if e.ndim != 2 or e.shape[1] != 16 or pt.ndim != 1 or e.shape[0] <= pt.shape[0]:
        raise ValueError("energy must have shape (symbols, 16) with data after the preamble")
    if e.shape[0] - pt.shape[0] > 256:
        raise ValueError("at most 256 data symbols")
    if pt.size and (pt.min() < 0 or pt.max() > 15):
        raise ValueError("preamble tones must be in 0..15")
    n0 = np.empty(16, dtype=np.float64)
    loglik = np.empty((e.shape[0] - pt.shape[0], 16), dtype=np.float64)
    cdef const double[:, ::1] ev = e
    cdef const long[::1] ptv = pt
    cdef double[::1] nv = n0
    cdef double[:, ::1] lv = loglik
    with nogil:
        _soft_symbols(ev, ptv, max_tilt_db, floor_rel, min_signal_ratio, nv, lv)
    return n0, loglik
