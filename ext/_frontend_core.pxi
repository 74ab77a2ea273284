# The streaming sync front end's code, included by ext/_frontend.pyx (any CPU) and
# ext/_frontend_avx2.pyx (the same code compiled for x86-64 AVX2 + FMA).
import numpy as np

cimport numpy as cnp
from libc.math cimport M_PI, cos, fminf, sin
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, memmove, memset

cnp.import_array()

# Ring sizes (powers of two): sub-block sums (>= window width), normalised energies
# (>= 2 * reach * neighbour + 1), contrasts (>= max delay - min delay + 1), scores
# (>= 2 * peak half width + 1). The constructor checks the geometry fits.
DEF SUB_RING = 32
DEF RATIO_RING = 64
DEF CONTRAST_RING = 128
DEF SCORE_RING = 64
DEF FLT_MAX_ = 3.4028234663852886e38
DEF NFP = 40  # grid rows as laid out in the rings (the grid padded with silent rows)
DEF MAX_OFF = 8  # sync offsets scored side by side (SIMD lanes; spare lanes biased to lose)
# Window sums are re-added from their sub-blocks (not slid) every this many sub-blocks.
DEF WINDOW_RESYNC = 16
# Sub-block length and sync reach are compile-time here (edge.modem.frontend's HOP and
# SYNC_REACH; the constructor checks): the per-sub-block loops are then straight-line
# SIMD code with every accumulator in a register (the NumPy twin takes any value).
DEF SUB_HOP = 4
DEF REACH = 2
DEF N_PRE = 8  # preamble symbols (edge.modem.frame.N_PREAMBLE)
DEF TAB_COLS = 160  # >= the grid table's period + SUB_HOP at both rates (80 / 147 + 4)


cdef inline float _clean(float v) noexcept nogil:
    """np.nan_to_num for one float32: NaN -> 0, +/-inf -> +/-FLT_MAX (tests the bits)."""
    cdef uint32_t bits
    memcpy(&bits, &v, 4)
    if (bits & 0x7F800000u) != 0x7F800000u:
        return v
    if bits & 0x007FFFFFu:
        return 0.0
    return -FLT_MAX_ if bits & 0x80000000u else FLT_MAX_


cdef inline long long _floor_div(long long a, long long b) noexcept nogil:
    """Python's ``a // b`` for b > 0 (C division truncates towards zero)."""
    cdef long long q = a / b
    if q * b > a:
        q -= 1
    return q


cdef class SyncFrontEnd:
    """Constant-memory streaming sync front end (see the module docstring).

    Stream indices: baseband sample ``m`` describes input sample ``m * decimation``;
    sub-block ``j`` is baseband ``[j * hop, (j + 1) * hop)``; window ``w`` is sub-blocks
    ``w .. w + width - 1``; sync position ``s`` has preamble symbol ``i`` of offset ``o``
    at window ``s + delays[o, i]``. The stream starts at baseband index ``start_bb``
    (negative: the detector feeds a silent lead first).
    """

    cdef Py_ssize_t n_taps, decimation, hop, width, n_freq, period, n_off, n_sym
    cdef Py_ssize_t neighbour, reach, lead, d_min, d_max, peak_w
    cdef long long rate_hz, rot_period, rot_step, rot_idx
    cdef double window_len, clip, threshold, inv_sym
    cdef float[::1] taps_re, taps_im
    cdef double[::1] rot_re, rot_im
    # The tables and rings are C arrays inside the object, not NumPy buffers behind
    # pointers: GCC then knows that a store to one never changes another, and the
    # per-row loops need no run-time overlap checks (they cost ~150 instructions a
    # sub-block when the rings were separate buffers).
    cdef float tab_re[TAB_COLS * NFP]
    cdef float tab_im[TAB_COLS * NFP]
    cdef long[:, ::1] rows, delays
    cdef float[::1] xbuf
    cdef Py_ssize_t n_hist
    cdef long long abs_in, m_next
    cdef double carry[16]
    cdef Py_ssize_t n_carry
    cdef long long sub_next, first_sub
    cdef Py_ssize_t ph_next  # (sub_next * hop) mod period, kept by a running counter
    cdef float sub_re[SUB_RING * NFP]
    cdef float sub_im[SUB_RING * NFP]
    # Sub-block powers, each stored twice (slots j and j + SUB_RING): a window's
    # powers are then contiguous and one SIMD loop sums them.
    cdef double sub_pw[2 * SUB_RING]
    cdef float ratio[RATIO_RING * NFP]
    # Each row is stored twice (slots c and c + CONTRAST_RING), so the sync score
    # reads any position's preamble windows at fixed offsets with no wrap.
    cdef float contrast[2 * CONTRAST_RING * NFP]
    cdef long* p_rows
    cdef long* p_delays
    # Per preamble symbol: contrast cells (delay * NFP + grid row of offset 0) at its
    # two possible delays, and per lane whether that offset uses the second one.
    cdef Py_ssize_t cell_a[N_PRE]
    cdef Py_ssize_t cell_b[N_PRE]
    cdef float lane_b[N_PRE * MAX_OFF]
    cdef float lane_bias[MAX_OFF]  # 0 on the n_off live lanes, -1e30 on spare ones
    cdef float lane_acc[MAX_OFF]
    cdef float lane_rw[MAX_OFF]
    cdef float win_re[NFP]
    cdef float win_im[NFP]
    cdef double[::1] score, raw
    cdef long[::1] offset
    cdef long[::1] cand_pos, cand_off
    cdef double[::1] cand_raw
    cdef Py_ssize_t n_cand
    cdef double floor_sum
    cdef long long floor_n

    def __init__(self, taps, table, Py_ssize_t hop, Py_ssize_t width, preamble_rows, delays,
                 shifts, Py_ssize_t neighbour, Py_ssize_t reach, double window_len, double clip,
                 double threshold, Py_ssize_t peak_w, Py_ssize_t decimation, long long carrier_hz,
                 long long rate_hz, long long start_bb):
        """Set up the rings for one stream starting at baseband index ``start_bb``.

        ``taps`` are the complex decimation taps (pre-rotated to the carrier), ``table``
        one period of ``exp(-j w_f i)`` per grid frequency; the rest is the sync geometry
        of :func:`ext._modem.sync_scores` plus its threshold and the peak half width.
        """
        tp = np.ascontiguousarray(taps, dtype=np.complex128)
        tab = np.ascontiguousarray(table, dtype=np.complex128)
        tn = np.ascontiguousarray(preamble_rows, dtype=np.int64)
        dl = np.ascontiguousarray(delays, dtype=np.int64)
        sh = np.ascontiguousarray(shifts, dtype=np.int64)
        if tp.ndim != 1 or tp.shape[0] == 0 or tab.ndim != 2 or tab.shape[1] < hop:
            raise ValueError("taps must be a non-empty 1-D array, table (f, period >= hop)")
        if dl.shape != (sh.shape[0], tn.shape[0]) or tn.size == 0:
            raise ValueError("delays must be (offsets, preamble symbols)")
        rows = tn[None, :] + sh[:, None]
        if rows.min() < 0 or rows.max() >= tab.shape[0]:
            raise ValueError("tone + shift outside the grid")
        if not 0 < hop <= 8:
            raise ValueError("hop must be 1 .. 8 samples")
        if hop != SUB_HOP or reach != REACH or tn.shape[0] != N_PRE:
            raise ValueError(
                f"this build runs hop {SUB_HOP}, reach {REACH} and {N_PRE} preamble symbols only"
            )
        if tab.shape[1] + SUB_HOP > TAB_COLS:
            raise ValueError(f"grid table period over {TAB_COLS - SUB_HOP} samples")
        if width <= 0 or decimation <= 0 or reach < 1 or neighbour < 0:
            raise ValueError("width, decimation must be positive, reach >= 1")
        if dl.min() < reach * neighbour or start_bb % hop:
            raise ValueError("need reach * neighbour <= min(delays) and start_bb on a sub-block")
        if tab.shape[0] > NFP:
            raise ValueError(f"at most {NFP} grid frequencies")
        if sh.shape[0] > MAX_OFF or np.any(np.diff(sh) != 1):
            raise ValueError(f"shifts must be at most {MAX_OFF} consecutive grid steps")
        if rows[0].max() + MAX_OFF > NFP:
            raise ValueError("preamble rows too close to the top of the grid")
        # The second delay of each symbol: any that differs from offset 0's.
        other = np.where(dl != dl[0][None, :], dl, dl[0][None, :]).max(axis=0)
        lo_other = np.where(dl != dl[0][None, :], dl, dl[0][None, :]).min(axis=0)
        other = np.where(other != dl[0], other, lo_other)
        if np.any((dl != dl[0][None, :]) & (dl != other[None, :])):
            raise ValueError("at most two distinct delays per preamble symbol")
        if (width > SUB_RING or 2 * reach * neighbour + 1 > RATIO_RING
                or dl.max() - dl.min() + 1 > CONTRAST_RING or 2 * peak_w + 1 > SCORE_RING):
            raise ValueError("sync geometry larger than the front end's rings")
        self.n_taps = tp.shape[0]
        self.decimation = decimation
        self.hop = hop
        self.width = width
        self.n_freq = tab.shape[0]
        self.period = tab.shape[1]
        self.n_off = sh.shape[0]
        self.n_sym = tn.shape[0]
        self.inv_sym = 1.0 / self.n_sym
        self.neighbour = neighbour
        self.reach = reach
        self.lead = reach * neighbour
        self.d_min = dl.min()
        self.d_max = dl.max()
        self.peak_w = peak_w
        self.rate_hz = rate_hz
        self.window_len = window_len
        self.clip = clip
        self.threshold = threshold
        # Reversed taps, so the FIR walks input and taps forwards.
        self.taps_re = np.ascontiguousarray(tp.real[::-1], dtype=np.float32)
        self.taps_im = np.ascontiguousarray(tp.imag[::-1], dtype=np.float32)
        # The carrier phase of output m is -2 pi (carrier * decimation * m mod rate) / rate:
        # it takes rate / g values (g = gcd), so a table replaces a cos/sin per output.
        g = int(np.gcd(carrier_hz * decimation, rate_hz))
        self.rot_period = rate_hz // g
        self.rot_step = (carrier_hz * decimation // g) % self.rot_period
        nums = np.arange(self.rot_period, dtype=np.float64) * g
        self.rot_re = np.cos(-2.0 * np.pi * nums / rate_hz)
        self.rot_im = np.sin(-2.0 * np.pi * nums / rate_hz)
        self.rot_idx = ((carrier_hz * decimation * start_bb) % rate_hz) // g
        # Table laid out (column, frequency) with hop extra columns: no wrap in a sub-block.
        wide = np.concatenate([tab, tab[:, :hop]], axis=1).T
        pad_re = np.zeros((wide.shape[0], NFP), dtype=np.float32)
        pad_im = np.zeros((wide.shape[0], NFP), dtype=np.float32)
        pad_re[:, : self.n_freq] = wide.real
        pad_im[:, : self.n_freq] = wide.imag
        cdef float[::1] flat_re = pad_re.ravel()
        cdef float[::1] flat_im = pad_im.ravel()
        cdef Py_ssize_t q
        memset(self.tab_re, 0, sizeof(self.tab_re))
        memset(self.tab_im, 0, sizeof(self.tab_im))
        for q in range(flat_re.shape[0]):
            self.tab_re[q] = flat_re[q]
            self.tab_im[q] = flat_im[q]
        self.rows = np.ascontiguousarray(rows, dtype=np.int64)
        self.delays = dl
        self.n_hist = self.n_taps - 1
        self.xbuf = np.zeros(self.n_hist + 4096, dtype=np.float32)
        self.abs_in = start_bb * decimation
        self.m_next = start_bb
        self.n_carry = 0
        self.sub_next = start_bb // hop
        self.first_sub = self.sub_next
        self.ph_next = int(self.sub_next * hop) % int(self.period)  # Python mod: >= 0
        memset(self.sub_re, 0, sizeof(self.sub_re))
        memset(self.sub_im, 0, sizeof(self.sub_im))
        memset(self.sub_pw, 0, sizeof(self.sub_pw))
        memset(self.ratio, 0, sizeof(self.ratio))
        memset(self.contrast, 0, sizeof(self.contrast))
        self.p_rows = &self.rows[0, 0]
        self.p_delays = &self.delays[0, 0]
        d0 = dl[0]
        alt = other
        ca = (d0 - self.d_min) * NFP + rows[0]
        cb = (alt - self.d_min) * NFP + rows[0]
        lanes = np.zeros((tn.shape[0], MAX_OFF), dtype=np.float32)
        lanes[:, : sh.shape[0]] = (dl != d0[None, :]).T
        flat = lanes.ravel()
        for q in range(N_PRE):
            self.cell_a[q] = ca[q]
            self.cell_b[q] = cb[q]
        for q in range(N_PRE * MAX_OFF):
            self.lane_b[q] = flat[q]
        for q in range(MAX_OFF):
            self.lane_bias[q] = 0.0 if q < self.n_off else -1e30
        memset(self.win_re, 0, sizeof(self.win_re))
        memset(self.win_im, 0, sizeof(self.win_im))
        self.score = np.zeros(SCORE_RING, dtype=np.float64)
        self.raw = np.zeros(SCORE_RING, dtype=np.float64)
        self.offset = np.zeros(SCORE_RING, dtype=np.int64)
        self.cand_pos = np.zeros(64, dtype=np.int64)
        self.cand_off = np.zeros(64, dtype=np.int64)
        self.cand_raw = np.zeros(64, dtype=np.float64)

    def process(self, x):
        """Run the next input samples (1-D float32) through the front end.

        NaN becomes 0 and +/-inf +/-FLT_MAX (as ``np.nan_to_num``).

        Returns
        -------
        bb : ndarray of complex128
            The new baseband samples (stream indices continue from the previous call).
        candidates : list of (int, int, float)
            Sync peaks decided in this call: (score position, offset index, raw score).
        floor : (float, int)
            Sum of the window energies over every grid row, and the number of windows,
            for windows at stream index >= 0 decided in this call (the silent lead is
            not the room).
        """
        arr = np.asarray(x)
        if arr.dtype != np.float32 or arr.ndim != 1:
            raise TypeError(f"x must be a 1-D float32 array, got {arr.dtype} with shape {arr.shape}")
        arr = np.ascontiguousarray(arr)
        cdef Py_ssize_t n = arr.shape[0]
        if self.n_hist + n > self.xbuf.shape[0]:
            grown = np.zeros(self.n_hist + n, dtype=np.float32)
            grown[: self.n_hist] = self.xbuf[: self.n_hist]
            self.xbuf = grown
        cdef long long end_abs = self.abs_in + n
        # Last output at or before the last input sample (floor division, any sign).
        cdef long long last = _floor_div(end_abs - 1, self.decimation)
        cdef Py_ssize_t n_out = <Py_ssize_t> max(0, last - self.m_next + 1)
        bb = np.empty(n_out, dtype=np.complex128)
        cdef double[::1] bv = bb.view(np.float64)
        cdef const float[::1] xv = arr
        # Sub-blocks this call can complete: at most (carry + n_out) // hop, so windows,
        # scores and peaks are bounded too (one candidate per peak half width at most).
        cdef Py_ssize_t max_cand = (self.n_carry + n_out) // self.hop // (self.peak_w + 1) + 2
        if max_cand > self.cand_pos.shape[0]:
            self.cand_pos = np.zeros(max_cand, dtype=np.int64)
            self.cand_off = np.zeros(max_cand, dtype=np.int64)
            self.cand_raw = np.zeros(max_cand, dtype=np.float64)
        self.n_cand = 0
        self.floor_sum = 0.0
        self.floor_n = 0
        with nogil:
            self._run(xv, n, n_out, bv)
            self.abs_in = end_abs
        cands = [(int(self.cand_pos[i]), int(self.cand_off[i]), float(self.cand_raw[i]))
                 for i in range(self.n_cand)]
        return bb, cands, (self.floor_sum, int(self.floor_n))

    cdef void _run(self, const float[::1] x, Py_ssize_t n, Py_ssize_t n_out,
                   double[::1] bb) noexcept nogil:
        """Decimate into ``bb``, then every completed sub-block through the sync chain."""
        cdef Py_ssize_t i, m
        cdef float* buf = &self.xbuf[0]
        # One branch-free pass finds any NaN/inf (exponent bits all set; SIMD), then a
        # plain copy; only a block that holds one is cleaned sample by sample.
        cdef const uint32_t* bits = <const uint32_t*> &x[0] if n else NULL
        cdef uint32_t bad = 0
        for i in range(n):
            bad = bad | ((bits[i] & 0x7F800000u) == 0x7F800000u)
        if bad:
            for i in range(n):
                buf[self.n_hist + i] = _clean(x[i])
        elif n:
            memcpy(buf + self.n_hist, &x[0], n * sizeof(float))
        # Output m is centred on stream index m * D, i.e. buf[m * D - (abs_in - n_hist)].
        cdef Py_ssize_t first = <Py_ssize_t> (self.m_next * self.decimation - self.abs_in) + self.n_hist
        if n_out:
            self._decimate(buf, first, n_out, &bb[0])
        self.m_next += n_out
        memmove(buf, buf + n, self.n_hist * sizeof(float))
        # Sub-blocks from the carried tail plus the new samples.
        cdef Py_ssize_t hop = self.hop
        cdef double blk[16]
        cdef Py_ssize_t used = 0, k
        if self.n_carry + n_out < hop:
            for k in range(n_out):
                self.carry[2 * (self.n_carry + k)] = bb[2 * k]
                self.carry[2 * (self.n_carry + k) + 1] = bb[2 * k + 1]
            self.n_carry += n_out
            return
        if self.n_carry:
            for k in range(2 * self.n_carry):
                blk[k] = self.carry[k]
            used = hop - self.n_carry
            for k in range(used):
                blk[2 * (self.n_carry + k)] = bb[2 * k]
                blk[2 * (self.n_carry + k) + 1] = bb[2 * k + 1]
            self._subblock(blk)
        while used + hop <= n_out:
            self._subblock(&bb[2 * used])
            used += hop
        self.n_carry = n_out - used
        for k in range(self.n_carry):
            self.carry[2 * k] = bb[2 * (used + k)]
            self.carry[2 * k + 1] = bb[2 * (used + k) + 1]

    cdef void _decimate(self, const float* buf, Py_ssize_t first, Py_ssize_t n_out,
                        double* out) noexcept nogil:
        """Complex FIR at every D-th position, four outputs at a time, then the carrier.

        Four outputs share each tap load and give the compiler eight independent sums
        (a single dot product is bound by its add latency, not by arithmetic).
        """
        cdef Py_ssize_t nt = self.n_taps, d = self.decimation, m, k
        cdef const float* tr = &self.taps_re[0]
        cdef const float* ti = &self.taps_im[0]
        cdef const float* x0
        cdef const float* x1
        cdef const float* x2
        cdef const float* x3
        cdef float r0, r1, r2, r3, i0, i1, i2, i3, v, a, b
        cdef double re[4]
        cdef double im[4]
        cdef Py_ssize_t q, nq
        m = 0
        while m < n_out:
            nq = n_out - m if n_out - m < 4 else 4
            x0 = buf + first + m * d - (nt - 1)
            x1 = x0 + d if nq > 1 else x0
            x2 = x0 + 2 * d if nq > 2 else x0
            x3 = x0 + 3 * d if nq > 3 else x0
            r0 = 0.0; r1 = 0.0; r2 = 0.0; r3 = 0.0
            i0 = 0.0; i1 = 0.0; i2 = 0.0; i3 = 0.0
            for k in range(nt):
                a = tr[k]
                b = ti[k]
                v = x0[k]
                r0 = r0 + a * v
                i0 = i0 + b * v
                v = x1[k]
                r1 = r1 + a * v
                i1 = i1 + b * v
                v = x2[k]
                r2 = r2 + a * v
                i2 = i2 + b * v
                v = x3[k]
                r3 = r3 + a * v
                i3 = i3 + b * v
            re[0] = r0; re[1] = r1; re[2] = r2; re[3] = r3
            im[0] = i0; im[1] = i1; im[2] = i2; im[3] = i3
            for q in range(nq):
                out[2 * (m + q)] = re[q] * self.rot_re[self.rot_idx] - im[q] * self.rot_im[self.rot_idx]
                out[2 * (m + q) + 1] = re[q] * self.rot_im[self.rot_idx] + im[q] * self.rot_re[self.rot_idx]
                self.rot_idx = self.rot_idx + self.rot_step
                if self.rot_idx >= self.rot_period:
                    self.rot_idx = self.rot_idx - self.rot_period
            m += nq

    cdef void _subblock(self, const double* xb) noexcept nogil:
        """One sub-block: DFT sums on the grid, then its window, contrast, score, peak.

        Every per-row loop runs over NFP rows (the grid padded with silent rows), a
        compile-time count, with the sub-block's SUB_HOP samples, the contrast's REACH
        neighbours and the N_PRE preamble symbols unrolled inside it, on C arrays of
        the object: the compiler turns each into straight SIMD code with its sums in
        registers and no overlap checks (~450 instructions a sub-block; the first form,
        samples outermost on NumPy buffers, ran ~1,000).
        """
        cdef Py_ssize_t f, o
        cdef Py_ssize_t ph = self.ph_next * NFP
        self.ph_next += SUB_HOP
        if self.ph_next >= self.period:
            self.ph_next -= self.period
        # DFT of the SUB_HOP samples at every grid row: table columns ph .. ph + 3 (the
        # table repeats its first columns, so they never wrap).
        cdef float x0r = <float> xb[0], x0i = <float> xb[1]
        cdef float x1r = <float> xb[2], x1i = <float> xb[3]
        cdef float x2r = <float> xb[4], x2i = <float> xb[5]
        cdef float x3r = <float> xb[6], x3i = <float> xb[7]
        cdef double pw = (xb[0] * xb[0] + xb[1] * xb[1]) + (xb[2] * xb[2] + xb[3] * xb[3]) + (
            (xb[4] * xb[4] + xb[5] * xb[5]) + (xb[6] * xb[6] + xb[7] * xb[7]))
        cdef long long j = self.sub_next
        cdef Py_ssize_t sj = (j & (SUB_RING - 1)) * NFP
        for f in range(NFP):
            self.sub_re[sj + f] = (
                (x0r * self.tab_re[ph + f] - x0i * self.tab_im[ph + f])
                + (x1r * self.tab_re[ph + NFP + f] - x1i * self.tab_im[ph + NFP + f])
            ) + (
                (x2r * self.tab_re[ph + 2 * NFP + f] - x2i * self.tab_im[ph + 2 * NFP + f])
                + (x3r * self.tab_re[ph + 3 * NFP + f] - x3i * self.tab_im[ph + 3 * NFP + f])
            )
            self.sub_im[sj + f] = (
                (x0r * self.tab_im[ph + f] + x0i * self.tab_re[ph + f])
                + (x1r * self.tab_im[ph + NFP + f] + x1i * self.tab_re[ph + NFP + f])
            ) + (
                (x2r * self.tab_im[ph + 2 * NFP + f] + x2i * self.tab_re[ph + 2 * NFP + f])
                + (x3r * self.tab_im[ph + 3 * NFP + f] + x3i * self.tab_re[ph + 3 * NFP + f])
            )
        self.sub_pw[j & (SUB_RING - 1)] = pw
        self.sub_pw[(j & (SUB_RING - 1)) + SUB_RING] = pw
        self.sub_next += 1
        cdef long long w = j - self.width + 1
        if w < self.first_sub:
            return
        # Window w = sub-blocks w .. j: the previous window's sums plus sub-block j minus
        # sub-block w - 1 (a sliding DFT), summed afresh at the stream's first window and
        # whenever j is a multiple of WINDOW_RESYNC, so float32 rounding (or an inf from
        # a full-scale burst) carries over at most that many windows. Block-size
        # invariant: the resync points are absolute sub-block indices.
        cdef double band = 0.0, inv
        cdef float e, finv, esum = 0.0
        cdef long long b
        cdef Py_ssize_t so
        if w == self.first_sub or (j & (WINDOW_RESYNC - 1)) == 0:
            so = (w & (SUB_RING - 1)) * NFP
            for f in range(NFP):
                self.win_re[f] = self.sub_re[so + f]
                self.win_im[f] = self.sub_im[so + f]
            for b in range(w + 1, j + 1):
                so = (b & (SUB_RING - 1)) * NFP
                for f in range(NFP):
                    self.win_re[f] = self.win_re[f] + self.sub_re[so + f]
                    self.win_im[f] = self.win_im[f] + self.sub_im[so + f]
        else:
            so = ((w - 1) & (SUB_RING - 1)) * NFP
            for f in range(NFP):
                self.win_re[f] = self.win_re[f] + (self.sub_re[sj + f] - self.sub_re[so + f])
                self.win_im[f] = self.win_im[f] + (self.sub_im[sj + f] - self.sub_im[so + f])
        # The band power is summed afresh (not slid): in silence after a sound it must
        # be exactly 0 (no ratio then), where a slid sum keeps a rounding residue that
        # the window sums' own residue, divided by it, turns into a ratio far over 1.
        cdef const double* pws = &self.sub_pw[w & (SUB_RING - 1)]
        cdef int nw = <int> self.width, q8
        for q8 in range(nw):
            band = band + pws[q8]
        inv = 1.0 / (self.window_len * band) if band > 0.0 else 0.0
        finv = <float> inv
        cdef Py_ssize_t rw_ = (w & (RATIO_RING - 1)) * NFP
        for f in range(NFP):
            e = self.win_re[f] * self.win_re[f] + self.win_im[f] * self.win_im[f]
            esum = esum + e
            self.ratio[rw_ + f] = e * finv
        if w >= 0:
            self.floor_sum += esum
            self.floor_n += 1
        # Contrast of window c = w - lead (it needs the ratios up to lead windows on):
        # its ratio less the mean of the same row 1 .. REACH symbols before and after.
        cdef long long c = w - self.lead
        if c < self.first_sub + self.lead:
            return
        cdef float weight = 0.5 / REACH
        cdef long long nb = self.neighbour
        cdef Py_ssize_t r0 = (c & (RATIO_RING - 1)) * NFP
        cdef Py_ssize_t ra1 = ((c - nb) & (RATIO_RING - 1)) * NFP
        cdef Py_ssize_t rb1 = ((c + nb) & (RATIO_RING - 1)) * NFP
        cdef Py_ssize_t ra2 = ((c - 2 * nb) & (RATIO_RING - 1)) * NFP
        cdef Py_ssize_t rb2 = ((c + 2 * nb) & (RATIO_RING - 1)) * NFP
        cdef Py_ssize_t ct = (c & (CONTRAST_RING - 1)) * NFP
        cdef Py_ssize_t ct2 = ct + CONTRAST_RING * NFP
        cdef float v
        for f in range(NFP):
            v = self.ratio[r0 + f] - weight * (
                (self.ratio[ra1 + f] + self.ratio[rb1 + f])
                + (self.ratio[ra2 + f] + self.ratio[rb2 + f])
            )
            self.contrast[ct + f] = v
            self.contrast[ct2 + f] = v
        # Sync score of position s = c - d_max (its last preamble window is c).
        cdef long long s = c - self.d_max
        if s < self.first_sub:
            return
        cdef double best = -1e300, best_raw = -1e300
        # Float sums (of N_PRE values in [-1, 1]: a ratio is <= 1 by Cauchy-Schwarz):
        # the eight lanes are one SIMD register.
        cdef float acc[MAX_OFF]
        cdef float rw[MAX_OFF]
        cdef float r
        cdef long best_off = 0
        cdef float clip = <float> self.clip
        cdef float va, vb
        # Windows s + d_min .. s + d_max sit contiguously from this row (doubled ring).
        cdef Py_ssize_t base = ((s + self.d_min) & (CONTRAST_RING - 1)) * NFP
        # All offsets side by side, one SIMD lane each: offset o reads grid row
        # rows[0, i] + o (consecutive shifts), at one of two delays per symbol (Doppler
        # moves a late preamble symbol by at most one window), so each symbol is two
        # contiguous loads and a blend instead of a gather.
        for o in range(MAX_OFF):
            acc[o] = 0.0
            rw[o] = 0.0
        # The lane's delay is picked arithmetically, va + m * (vb - va) with m 0 or 1
        # (va exactly, or vb within an ulp), on int loop counters, and every lane is
        # used after the loop (spare lanes carry a -1e30 bias, so they never win): in
        # any other form tried (a select between two loads, a second loop for the
        # one-delay case, pointer loads, Py_ssize_t counters, only the live lanes read
        # afterwards) GCC left some or all of the eight lanes scalar.
        cdef int si8, o8
        cdef Py_ssize_t pa8, pb8
        for si8 in range(N_PRE):
            pa8 = base + self.cell_a[si8]
            pb8 = base + self.cell_b[si8]
            for o8 in range(MAX_OFF):
                va = self.contrast[pa8 + o8]
                vb = self.contrast[pb8 + o8]
                r = va + self.lane_b[si8 * MAX_OFF + o8] * (vb - va)
                acc[o8] = acc[o8] + fminf(r, clip)
                rw[o8] = rw[o8] + r
        for o8 in range(MAX_OFF):
            acc[o8] = acc[o8] + self.lane_bias[o8]
            rw[o8] = rw[o8] + self.lane_bias[o8]
        # The lanes go out through the object's arrays (one vector store each), read
        # back as scalars: reduced in registers, GCC assembled them on the stack from
        # 8-byte pieces and read them back 16 bytes at a time, a store-forwarding stall
        # (~12% of the sub-block's time in a profile).
        for o8 in range(MAX_OFF):
            self.lane_acc[o8] = acc[o8]
            self.lane_rw[o8] = rw[o8]
        cdef float top_acc = self.lane_acc[0], top_rw = self.lane_rw[0]
        for o8 in range(1, MAX_OFF):
            if self.lane_acc[o8] > top_acc:
                top_acc = self.lane_acc[o8]
            if self.lane_rw[o8] > top_rw:
                top_rw = self.lane_rw[o8]
                best_off = o8
        best = top_acc
        best_raw = top_rw
        cdef Py_ssize_t slot = s & (SCORE_RING - 1)
        self.score[slot] = best * self.inv_sym
        self.raw[slot] = best_raw * self.inv_sym
        self.offset[slot] = best_off
        # Peak test of position p = s - peak_w (its neighbourhood is now scored).
        cdef Py_ssize_t pw_ = self.peak_w
        cdef long long p = s - pw_
        if p < self.first_sub + pw_:
            return
        cdef double sp = self.score[p & (SCORE_RING - 1)]
        if sp < self.threshold:
            return
        cdef long long t
        # First maximum wins: p must beat every earlier neighbour and tie no later one.
        for t in range(p - pw_, p):
            if self.score[t & (SCORE_RING - 1)] >= sp:
                return
        for t in range(p + 1, s + 1):
            if self.score[t & (SCORE_RING - 1)] > sp:
                return
        cdef long long arg = p - pw_
        cdef double top = self.raw[arg & (SCORE_RING - 1)]
        for t in range(p - pw_ + 1, s + 1):
            if self.raw[t & (SCORE_RING - 1)] > top:
                top = self.raw[t & (SCORE_RING - 1)]
                arg = t
        self.cand_pos[self.n_cand] = arg
        self.cand_off[self.n_cand] = self.offset[arg & (SCORE_RING - 1)]
        self.cand_raw[self.n_cand] = top
        self.n_cand += 1
