"""The symbol code and the candidate decoder's estimators, without the detector around them."""

from __future__ import annotations

import numpy as np

from edge.modem import demod, fec, frame
from edge.modem.frontend import build_front_end
from ext import load_kernel

fast = load_kernel("_modem")


def _perfect_loglik(tones: np.ndarray) -> np.ndarray:
    """Log-likelihoods that say exactly which tone each symbol carried."""
    ll = np.zeros((tones.size, fec.N_TONES))
    ll[np.arange(tones.size), tones] = 5.0
    return ll


def test_symbols_round_trip_and_crc(rng: np.random.Generator) -> None:
    for _ in range(20):
        payload = int(rng.integers(0, 1 << 48))
        tones = fec.encode_symbols(payload)
        assert tones.shape == (fec.N_SYMBOLS,) and tones.min() >= 0 and tones.max() < 16
        got, crc_ok, path = fec.decode_symbols(_perfect_loglik(tones), fast.viterbi_symbols)
        assert (got, crc_ok) == (payload, True)
        np.testing.assert_array_equal(path, tones)


def test_two_wrong_symbols_are_corrected(rng: np.random.Generator) -> None:
    payload = int(rng.integers(0, 1 << 48))
    tones = fec.encode_symbols(payload)
    ll = _perfect_loglik(tones)
    for s in rng.choice(fec.N_SYMBOLS, size=2, replace=False):
        ll[s] = 0.0
        ll[s, (tones[s] + 7) % 16] = 5.0
    assert fec.decode_symbols(ll, fast.viterbi_symbols)[:2] == (payload, True)


def test_code_free_distance_is_six_symbols() -> None:
    """Shortest detour from the all-zero path: 6 symbols with a non-zero label."""
    n_states = 1 << fec.STATE_BITS
    top = fec.STATE_BITS - 2
    weight = (fec.SYMBOL_LABELS != 0).astype(np.int64)
    ns = np.arange(n_states)
    preds = np.stack([(ns >> 2) | (k << top) for k in range(4)])
    regs = np.stack([ns | (k << fec.STATE_BITS) for k in range(4)])
    big = 10**6
    cost = np.full(n_states, big)
    cost[1:4] = weight[1:4]  # leave state 0 with a non-zero input
    best = big
    for _ in range(40):
        step = (cost[preds] + weight[regs]).min(axis=0)
        best = min(best, int(step[0]))
        step[0] = big
        cost = step
    assert best == 6
    assert cost.min() > best  # no long detour stays light (the code is not catastrophic)


def test_whitening_keeps_constant_payloads_off_one_tone() -> None:
    for payload in (0, (1 << 48) - 1):
        assert np.bincount(fec.encode_symbols(payload), minlength=16).max() <= 8


def test_signal_levels_follow_a_roll_off(rng: np.random.Generator) -> None:
    """Tone energies falling 9 dB across the band are fitted as such from all symbols."""
    true = 10.0 ** (-np.linspace(0, 9, 16) / 10.0) * 20.0
    n0 = np.ones(16)
    tones = rng.integers(0, 16, size=frame.N_SYMBOLS)
    tones[: frame.N_PREAMBLE] = frame.PREAMBLE_TONES
    energy = rng.exponential(size=(frame.N_SYMBOLS, 16))
    energy[np.arange(frame.N_SYMBOLS), tones] += true[tones]
    fit = demod.signal_levels(energy[: frame.N_PREAMBLE], energy[frame.N_PREAMBLE :], n0)
    ratio_db = 10 * np.log10(fit[0] / fit[-1])
    assert 6.0 < ratio_db < 12.0


def test_data_evidence_separates_noise_from_a_frame(rng: np.random.Generator) -> None:
    noise = rng.exponential(size=(200, frame.N_SYMBOLS, 16))
    quiet = np.array([demod.data_evidence(e) for e in noise])
    assert 3.2 < np.median(quiet) < 3.5  # the mean largest of 16 exponentials, ~3.38
    assert np.mean(quiet >= demod.MIN_EVIDENCE) < 0.15
    tones = rng.integers(0, 16, size=(200, frame.N_SYMBOLS))
    framed = noise.copy()
    np.put_along_axis(framed, tones[..., None], np.take_along_axis(noise, tones[..., None], 2)
                      + 4.0, axis=2)  # 6 dB per-symbol SNR: a frame at about -7 dB
    loud = np.array([demod.data_evidence(e) for e in framed])
    assert np.mean(loud >= demod.MIN_EVIDENCE) > 0.95


def _path_metric(metric: np.ndarray, bits: np.ndarray) -> float:
    """Metric of the terminated path that ``bits`` (inputs incl. tail) take, recomputed."""
    state, total = 0, 0.0
    for t in range(metric.shape[0]):
        reg = (state << 2) | int(bits[2 * t]) << 1 | int(bits[2 * t + 1])
        total += metric[t, fec.SYMBOL_LABELS[reg]]
        state = reg & ((1 << fec.STATE_BITS) - 1)
    assert state == 0  # every listed path ends in the terminating state
    return total


def test_list_paths_enumerates_a_short_trellis_in_order(rng: np.random.Generator) -> None:
    """9 steps, the last 5 the zero tail: all 4**4 paths, best first, metrics exact."""
    metric = rng.normal(size=(9, fec.N_TONES))
    listed = list(fec.list_paths(metric, 1000))
    assert len(listed) == 4**4
    assert len({bits.tobytes() for _, bits in listed}) == len(listed)
    for met, bits in listed:
        assert not bits[8:].any()  # tail inputs are zero
        assert abs(met - _path_metric(metric, bits)) < 1e-9
    metrics = np.array([met for met, _ in listed])
    assert np.all(np.diff(metrics) <= 1e-12)
    # The brute-force best of all 256 paths is the first listed.
    brute = max(
        _path_metric(metric, np.array([(i >> (7 - j)) & 1 for j in range(8)] + [0] * 10))
        for i in range(256)
    )
    assert abs(metrics[0] - brute) < 1e-12


def test_list_paths_starts_with_the_viterbi_path(rng: np.random.Generator) -> None:
    for _ in range(5):
        metric = rng.normal(size=(fec.N_SYMBOLS, fec.N_TONES))
        listed = list(fec.list_paths(metric, 6))
        np.testing.assert_array_equal(
            listed[0][1], fast.viterbi_symbols(metric, fec.SYMBOL_LABELS)
        )
        assert len(listed) == 6
        assert all(a[0] >= b[0] for a, b in zip(listed, listed[1:], strict=False))


def test_list_decoding_recovers_frames_the_viterbi_path_gets_wrong(
    rng: np.random.Generator,
) -> None:
    """Noisy soft input: when the best path fails the CRC, a listed path often is right."""
    failed = recovered = wrong = 0
    for _ in range(300):
        payload = int(rng.integers(0, 1 << 48))
        tones = fec.encode_symbols(payload)
        ll = rng.normal(size=(fec.N_SYMBOLS, fec.N_TONES))
        ll[np.arange(fec.N_SYMBOLS), tones] += 2.0  # Viterbi path right ~80%
        got, crc_ok, _ = fec.decode_symbols(ll, fast.viterbi_symbols)
        if crc_ok:
            continue
        failed += 1
        listed = fec.decode_list(ll, 8)
        if listed is None:
            continue
        got, path, rank = listed
        assert rank > 0  # the Viterbi path itself failed the CRC
        if got == payload:
            recovered += 1
            np.testing.assert_array_equal(path, tones)
        else:
            wrong += 1
    assert failed >= 30
    assert recovered >= failed // 2  # measured: 40 of 58
    assert wrong == 0


def test_path_gates_reject_noise_and_pass_a_clear_path(rng: np.random.Generator) -> None:
    tones = fec.encode_symbols(int(rng.integers(0, 1 << 48)))
    n0 = np.ones(16)
    noise = rng.exponential(size=(fec.N_SYMBOLS, 16))
    framed = noise.copy()
    framed[np.arange(fec.N_SYMBOLS), tones] += 6.0
    signal = np.full(16, 6.0)
    assert demod.path_gates(demod.symbol_loglik(framed, signal, n0), framed, n0, tones)
    assert demod.path_gates(demod.symbol_loglik(noise, signal, n0), noise, n0, tones) is None


def _baseband_frame(payload: int, start: int, fb: float, rng: np.random.Generator) -> np.ndarray:
    """A frame's tones as complex baseband (no ramps) from ``start``, in light noise."""
    sym_len = int(round(frame.SYMBOL_S * fb))
    tones = frame.frame_symbols(payload)
    n = start + sym_len * tones.size + 400
    bb = (rng.normal(size=n) + 1j * rng.normal(size=n)) * 0.3
    offs = frame.tone_offsets_hz()
    for i, tone in enumerate(tones):
        t = np.arange(start + i * sym_len, start + (i + 1) * sym_len)
        bb[t] += np.exp(2j * np.pi * offs[tone] * t / fb)
    return bb


def test_wide_refine_pulls_in_an_estimate_several_samples_off(rng: np.random.Generator) -> None:
    fe = build_front_end(48_000)
    bb = _baseband_frame(0x123456789ABC, 200, fe.baseband_rate, rng)
    # 6 samples late and 10 Hz high: beyond the fine search's +/-2 samples.
    start, scale = demod.wide_refine(bb, 206.0, 10.0 / frame.CARRIER_HZ, fe, fast)
    assert abs(start - 200.0) <= 2.0  # the window may sit anywhere on the flat tone
    assert abs(scale * frame.CARRIER_HZ) <= 2.0
    # Out of the buffer: the estimate comes back unchanged.
    assert demod.wide_refine(bb[:1000], 206.0, 0.0, fe, fast) == (206.0, 0.0)


def test_decode_tones_is_decode_symbols_in_one_call(rng: np.random.Generator) -> None:
    """Same payload, CRC verdict and path tones from both backends, right or wrong."""
    for trial in range(20):
        payload = int(rng.integers(0, 1 << 48))
        ll = _perfect_loglik(fec.encode_symbols(payload)) + rng.normal(
            0.0, 1.0 + trial / 4, size=(fec.N_SYMBOLS, fec.N_TONES)
        )
        want = fec.decode_symbols(ll, fast.viterbi_symbols)
        for got in (fec.decode_tones(ll, fast.viterbi_tones), fec.decode_tones(ll)):
            assert got[:2] == want[:2]
            np.testing.assert_array_equal(got[2], want[2])
