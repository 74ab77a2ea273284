# The streaming sync front end's code, included by ext/_frontend.pyx (any CPU) and
# ext/_frontend_avx2.pyx (the same code compiled for x86-64 AVX2 + FMA).
import numpy as np

cimport numpy as cnp
from libc.math cimport M_PI, cos, sin
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, memmove

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
DEF MAX_OFF = 8  # sync offsets scored side by side (SIMD lanes; unused lanes repeat offset 0)
# Window sums are re-added from their sub-blocks (not slid) every this many sub-blocks.
DEF WINDOW_RESYNC = 16


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
    cdef float[:, ::1] tab_re, tab_im
    cdef long[:, ::1] rows, delays
    cdef float[::1] xbuf
    cdef Py_ssize_t n_hist
    cdef long long abs_in, m_next
    cdef double carry[16]
    cdef Py_ssize_t n_carry
    cdef long long sub_next, first_sub
    cdef Py_ssize_t ph_next  # (sub_next * hop) mod period, kept by a running counter
    cdef float[:, ::1] sub_re, sub_im
    cdef double[::1] sub_pw
    cdef float[:, ::1] ratio
    cdef float[:, ::1] contrast
    cdef float* p_tab_re
    cdef float* p_tab_im
    cdef float* p_sub_re
    cdef float* p_sub_im
    cdef float* p_ratio
    cdef float* p_contrast
    cdef long* p_rows
    cdef long* p_delays
    # Per preamble symbol: contrast cells (delay * NFP + grid row of offset 0) at its
    # two possible delays, and per lane whether that offset uses the second one.
    cdef long[::1] cell_a, cell_b
    cdef unsigned char[::1] lane_b
    cdef long* p_cell_a
    cdef long* p_cell_b
    cdef unsigned char* p_lane_b
    cdef bint one_delay  # every offset reads each preamble symbol at the same delay
    cdef float[::1] win_re, win_im
    cdef float* p_win_re
    cdef float* p_win_im
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
        self.tab_re = pad_re
        self.tab_im = pad_im
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
        self.sub_re = np.zeros((SUB_RING, NFP), dtype=np.float32)
        self.sub_im = np.zeros((SUB_RING, NFP), dtype=np.float32)
        self.sub_pw = np.zeros(SUB_RING, dtype=np.float64)
        self.ratio = np.zeros((RATIO_RING, NFP), dtype=np.float32)
        # Each row is stored twice (slots c and c + CONTRAST_RING), so the sync score
        # reads any position's preamble windows at fixed offsets with no wrap.
        self.contrast = np.zeros((2 * CONTRAST_RING, NFP), dtype=np.float32)
        # Raw pointers for the per-sub-block code (the memoryviews above own the memory).
        self.p_tab_re = &self.tab_re[0, 0]
        self.p_tab_im = &self.tab_im[0, 0]
        self.p_sub_re = &self.sub_re[0, 0]
        self.p_sub_im = &self.sub_im[0, 0]
        self.p_ratio = &self.ratio[0, 0]
        self.p_contrast = &self.contrast[0, 0]
        self.p_rows = &self.rows[0, 0]
        self.p_delays = &self.delays[0, 0]
        d0 = dl[0]
        alt = other
        self.cell_a = np.ascontiguousarray((d0 - self.d_min) * NFP + rows[0], dtype=np.int64)
        self.cell_b = np.ascontiguousarray((alt - self.d_min) * NFP + rows[0], dtype=np.int64)
        lanes = np.zeros((tn.shape[0], MAX_OFF), dtype=np.uint8)
        lanes[:, : sh.shape[0]] = (dl != d0[None, :]).T
        self.lane_b = lanes.ravel()
        self.p_cell_a = &self.cell_a[0]
        self.p_cell_b = &self.cell_b[0]
        self.p_lane_b = &self.lane_b[0]
        self.one_delay = not lanes.any()
        self.win_re = np.zeros(NFP, dtype=np.float32)
        self.win_im = np.zeros(NFP, dtype=np.float32)
        self.p_win_re = &self.win_re[0]
        self.p_win_im = &self.win_im[0]
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
        for i in range(n):
            buf[self.n_hist + i] = _clean(x[i])
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
        compile-time count, into local arrays: the compiler turns each into straight
        SIMD code with no remainder or aliasing checks.
        """
        cdef Py_ssize_t f, i, col, slot, o, s_i
        cdef Py_ssize_t ph = self.ph_next
        cdef float xr, xi
        cdef double pw = 0.0, dr, di
        cdef float ar[NFP]
        cdef float ai[NFP]
        cdef const float* tre
        cdef const float* tim
        self.ph_next = ph + self.hop
        if self.ph_next >= self.period:
            self.ph_next -= self.period
        # The first sample initialises the sums (no zeroing pass).
        dr = xb[0]
        di = xb[1]
        pw = dr * dr + di * di
        xr = <float> dr
        xi = <float> di
        tre = self.p_tab_re + ph * NFP
        tim = self.p_tab_im + ph * NFP
        for f in range(NFP):
            ar[f] = xr * tre[f] - xi * tim[f]
            ai[f] = xr * tim[f] + xi * tre[f]
        for i in range(1, self.hop):
            dr = xb[2 * i]
            di = xb[2 * i + 1]
            pw = pw + dr * dr + di * di
            xr = <float> dr
            xi = <float> di
            col = ph + i
            tre = self.p_tab_re + col * NFP
            tim = self.p_tab_im + col * NFP
            for f in range(NFP):
                ar[f] = ar[f] + xr * tre[f] - xi * tim[f]
                ai[f] = ai[f] + xr * tim[f] + xi * tre[f]
        slot = self.sub_next & (SUB_RING - 1)
        cdef float* sr = self.p_sub_re + slot * NFP
        cdef float* si = self.p_sub_im + slot * NFP
        for f in range(NFP):
            sr[f] = ar[f]
            si[f] = ai[f]
        self.sub_pw[slot] = pw
        cdef long long j = self.sub_next
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
        cdef float* wr = self.p_win_re
        cdef float* wi = self.p_win_im
        cdef const float* orr
        cdef const float* oi
        if w == self.first_sub or (j & (WINDOW_RESYNC - 1)) == 0:
            slot = w & (SUB_RING - 1)
            sr = self.p_sub_re + slot * NFP
            si = self.p_sub_im + slot * NFP
            for f in range(NFP):
                wr[f] = sr[f]
                wi[f] = si[f]
            for b in range(w + 1, j + 1):
                slot = b & (SUB_RING - 1)
                sr = self.p_sub_re + slot * NFP
                si = self.p_sub_im + slot * NFP
                for f in range(NFP):
                    wr[f] = wr[f] + sr[f]
                    wi[f] = wi[f] + si[f]
        else:
            slot = (w - 1) & (SUB_RING - 1)
            orr = self.p_sub_re + slot * NFP
            oi = self.p_sub_im + slot * NFP
            for f in range(NFP):
                wr[f] = wr[f] + (ar[f] - orr[f])
                wi[f] = wi[f] + (ai[f] - oi[f])
        for f in range(NFP):
            ar[f] = wr[f]
            ai[f] = wi[f]
        # Two interleaved sums: half the add-latency chain.
        cdef double band2 = 0.0
        b = w
        while b < j:
            band = band + self.sub_pw[b & (SUB_RING - 1)]
            band2 = band2 + self.sub_pw[(b + 1) & (SUB_RING - 1)]
            b += 2
        if b == j:
            band = band + self.sub_pw[b & (SUB_RING - 1)]
        band = band + band2
        inv = 1.0 / (self.window_len * band) if band > 0.0 else 0.0
        finv = <float> inv
        cdef float* rt = self.p_ratio + (w & (RATIO_RING - 1)) * NFP
        for f in range(NFP):
            e = ar[f] * ar[f] + ai[f] * ai[f]
            esum = esum + e
            rt[f] = e * finv
        if w >= 0:
            self.floor_sum += esum
            self.floor_n += 1
        # Contrast of window c = w - lead (it needs the ratios up to lead windows on).
        cdef long long c = w - self.lead
        if c < self.first_sub + self.lead:
            return
        cdef float weight = 0.5 / self.reach
        cdef const float* ra
        cdef const float* rb
        cdef Py_ssize_t q
        ra = self.p_ratio + ((c - self.neighbour) & (RATIO_RING - 1)) * NFP
        rb = self.p_ratio + ((c + self.neighbour) & (RATIO_RING - 1)) * NFP
        for f in range(NFP):
            ar[f] = ra[f] + rb[f]
        for q in range(2, self.reach + 1):
            ra = self.p_ratio + ((c - q * self.neighbour) & (RATIO_RING - 1)) * NFP
            rb = self.p_ratio + ((c + q * self.neighbour) & (RATIO_RING - 1)) * NFP
            for f in range(NFP):
                ar[f] = ar[f] + (ra[f] + rb[f])
        ra = self.p_ratio + (c & (RATIO_RING - 1)) * NFP
        cdef float* ct = self.p_contrast + (c & (CONTRAST_RING - 1)) * NFP
        cdef float* ct2 = ct + CONTRAST_RING * NFP
        cdef float v
        for f in range(NFP):
            v = ra[f] - weight * ar[f]
            ct[f] = v
            ct2[f] = v
        # Sync score of position s = c - d_max (its last preamble window is c).
        cdef long long s = c - self.d_max
        if s < self.first_sub:
            return
        cdef double best = -1e300, best_raw = -1e300
        cdef double acc[MAX_OFF]
        cdef double rw[MAX_OFF]
        cdef float r
        cdef long best_off = 0
        cdef float clip = <float> self.clip
        cdef const float* pa
        cdef const float* pb
        cdef const unsigned char* lane_b
        cdef float va, vb
        # Windows s + d_min .. s + d_max sit contiguously from this row (doubled ring).
        cdef const float* base = self.p_contrast + ((s + self.d_min) & (CONTRAST_RING - 1)) * NFP
        # All offsets side by side, one SIMD lane each: offset o reads grid row
        # rows[0, i] + o (consecutive shifts), at one of two delays per symbol (Doppler
        # moves a late preamble symbol by at most one window), so each symbol is two
        # contiguous loads and a blend instead of a gather. Spare lanes are ignored.
        for o in range(MAX_OFF):
            acc[o] = 0.0
            rw[o] = 0.0
        if self.one_delay:
            # Every offset at one delay per symbol (48 kHz): one contiguous load each.
            for s_i in range(self.n_sym):
                pa = base + self.p_cell_a[s_i]
                for o in range(MAX_OFF):
                    r = pa[o]
                    acc[o] = acc[o] + (r if r < clip else clip)
                    rw[o] = rw[o] + r
        else:
            for s_i in range(self.n_sym):
                pa = base + self.p_cell_a[s_i]
                pb = base + self.p_cell_b[s_i]
                lane_b = self.p_lane_b + s_i * MAX_OFF
                for o in range(MAX_OFF):
                    va = pa[o]
                    vb = pb[o]
                    r = vb if lane_b[o] else va
                    acc[o] = acc[o] + (r if r < clip else clip)
                    rw[o] = rw[o] + r
        for o in range(self.n_off):
            if acc[o] > best:
                best = acc[o]
            if rw[o] > best_raw:
                best_raw = rw[o]
                best_off = o
        slot = s & (SCORE_RING - 1)
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
