"""The compiled modem kernels (ext._modem) against their NumPy twins (ext.modem_reference)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.modem import demod, fec, frame
from edge.modem.frontend import HOP, build_front_end
from ext import load_kernel
from ext import modem_reference as ref

fast = load_kernel("_modem")


@pytest.mark.parametrize("rate", [44100, 48000])
def test_decimate_matches_reference(rng: np.random.Generator, rate: int) -> None:
    fe = build_front_end(rate)
    x = rng.standard_normal(5000).astype(np.float32)
    args = (x, fe.taps, 143, 12, 987_654_321, 19000, rate, 300)
    want = ref.decimate(*args)
    # The kernel multiplies in float32 (the input's precision), the twin in float64.
    np.testing.assert_allclose(fast.decimate(*args), want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_decimate_rejects_out_of_range_positions() -> None:
    x = np.zeros(100, dtype=np.float32)
    taps = np.ones(10, dtype=np.complex128)
    with pytest.raises(ValueError, match="outside"):
        fast.decimate(x, taps, 5, 12, 0, 19000, 48000, 2)
    with pytest.raises(TypeError, match="float32"):
        fast.decimate(x.astype(np.float64), taps, 9, 12, 0, 19000, 48000, 2)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_subblock_and_sliding_energy_match_reference(rng: np.random.Generator, rate: int) -> None:
    fe = build_front_end(rate)
    xb = rng.standard_normal(801) + 1j * rng.standard_normal(801)
    period = fe.table.shape[1]
    s1, p1 = fast.subblock_dft(xb, fe.table, 17 % period, HOP)
    s2, p2 = ref.subblock_dft(xb, fe.table, 17 % period, HOP)
    # The kernel's sub-block sums run in float32 (4 SIMD lanes), the twin's in float64.
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-6 * np.abs(s2).max())
    np.testing.assert_allclose(p1, p2, rtol=1e-12)
    e1, b1 = fast.sliding_energy(s2, p2, fe.window_subblocks)
    e2, b2 = ref.sliding_energy(s2, p2, fe.window_subblocks)
    np.testing.assert_allclose(e1, e2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b1, b2, rtol=1e-12)


def test_sync_scores_match_reference(rng: np.random.Generator) -> None:
    fe = build_front_end(48000)
    energy = rng.exponential(size=(fe.table.shape[0], 600))
    band = rng.exponential(size=600) * 40
    band[5] = 0.0  # a silent window must not divide by zero
    args = (energy, band, fe.preamble_rows, fe.delays, fe.shifts, fe.neighbour, fe.reach,
            float(fe.window_len), 0.4)
    b1, r1, o1 = fast.sync_scores(*args)
    b2, r2, o2 = ref.sync_scores(*args)
    np.testing.assert_allclose(b1, b2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r1, r2, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(o1, o2)


def test_window_energies_match_reference(rng: np.random.Generator) -> None:
    xb = rng.standard_normal(500) + 1j * rng.standard_normal(500)
    starts = rng.integers(0, 461, size=60)
    freqs = rng.uniform(-900.0, 900.0, size=(60, 16))
    e1, p1 = fast.window_energies(xb, starts, freqs, 40, 4000.0)
    e2, p2 = ref.window_energies(xb, starts, freqs, 40, 4000.0)
    np.testing.assert_allclose(e1, e2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p1, p2, rtol=1e-12)


def test_window_energies_by_prefix_sums_match_the_definition(rng: np.random.Generator) -> None:
    # Every shift of every symbol at two scales: runs of overlapping windows that share
    # frequencies (prefix sums), then a stretch of lone windows (one at a time).
    n = 3000
    xb = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    xb[1500:1600] *= 1000.0  # a loud burst inside a run's span must not swamp the rest
    starts = (np.arange(40)[:, None] * 61 + np.arange(17)[None, :]).ravel()
    freqs = np.concatenate([np.tile(rng.uniform(-900, 900, 16), (680, 1)),
                            np.tile(rng.uniform(-900, 900, 16), (680, 1)),
                            rng.uniform(-900, 900, (50, 16))])
    starts = np.concatenate([starts, starts + 1, rng.integers(0, n - 40, 50)])
    plan = ref.window_plan(starts, freqs, 40)
    assert plan[3][:2].all() and not plan[3][2:].any()
    for want_part, got_part in zip(plan, fast.window_plan(starts, freqs, 40), strict=True):
        np.testing.assert_array_equal(got_part, want_part)
    seg = xb[starts[:, None] + np.arange(40)[None, :]]
    basis = np.exp(-2j * np.pi * freqs[:, :, None] * np.arange(40)[None, None, :] / 4000.0)
    want = np.abs(np.einsum("wn,wkn->wk", seg, basis)) ** 2
    scale = want.max()
    for k in (fast, ref):
        e, p = k.window_energies(xb, starts, freqs, 40, 4000.0)
        np.testing.assert_allclose(e, want, rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(p, (np.abs(seg) ** 2).sum(axis=1), rtol=1e-12)


def test_window_energies_of_a_tone() -> None:
    n = np.arange(400)
    xb = np.exp(2j * np.pi * 300.0 * n / 4000.0)
    e, p = fast.window_energies(xb, np.array([0, 17]), np.array([[300.0, 400.0]] * 2), 40, 4000.0)
    np.testing.assert_allclose(e[:, 0], 1600.0, rtol=1e-12)  # |40 samples of amplitude 1|^2
    np.testing.assert_allclose(e[:, 1], 0.0, atol=1e-9)  # orthogonal over 10 ms
    np.testing.assert_allclose(p, 40.0)
    with pytest.raises(ValueError, match="outside"):
        fast.window_energies(xb, np.array([361]), np.array([[300.0]]), 40, 4000.0)


def test_viterbi_matches_reference_on_noisy_metrics(rng: np.random.Generator) -> None:
    for _ in range(20):
        metric = rng.normal(0.0, 3.0, size=(fec.N_SYMBOLS, 16))
        np.testing.assert_array_equal(
            fast.viterbi_symbols(metric, fec.SYMBOL_LABELS),
            ref.viterbi_symbols(metric, fec.SYMBOL_LABELS),
        )


def test_viterbi_corrects_symbol_errors(rng: np.random.Generator) -> None:
    info = rng.integers(0, 2, size=fec.INFO_BITS).astype(np.uint8)
    labels = fec.conv_encode(info)
    metric = np.zeros((labels.size, 16))
    metric[np.arange(labels.size), labels] = 4.0
    wrong = rng.choice(labels.size, size=2, replace=False)  # free distance 6: 2 are corrected
    metric[wrong] = 0.0
    metric[wrong, (labels[wrong] + 5) % 16] = 4.0
    bits = fast.viterbi_symbols(metric, fec.SYMBOL_LABELS)
    np.testing.assert_array_equal(bits[: fec.INFO_BITS], info)
    np.testing.assert_array_equal(bits[fec.INFO_BITS :], 0)


def test_viterbi_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="16"):
        fast.viterbi_symbols(np.zeros((3, 8)), fec.SYMBOL_LABELS)
    with pytest.raises(ValueError, match="power of two"):
        fast.viterbi_symbols(np.zeros((3, 16)), fec.SYMBOL_LABELS[:-4])
    bad = np.zeros((3, 16))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fast.viterbi_symbols(bad, fec.SYMBOL_LABELS)


def test_list_paths_matches_reference(rng: np.random.Generator) -> None:
    """Same paths, same order, bit-identical metrics; rounded metrics make ties."""
    for trial in range(30):
        metric = rng.normal(0.0, rng.uniform(1.0, 4.0), size=(fec.N_SYMBOLS, 16))
        if trial % 3 == 0:
            metric = np.round(metric * 4) / 4  # equal priorities: both pop in push order
        got = fast.list_paths(metric, fec.SYMBOL_LABELS, 8)
        want = ref.list_paths(metric, fec.SYMBOL_LABELS, 8)
        assert len(got) == len(want) == 8
        assert [m for m, _ in got] == [m for m, _ in want]
        for (_, a), (_, b) in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got[0][1], fast.viterbi_symbols(metric, fec.SYMBOL_LABELS))


def test_list_paths_gives_up_on_a_flat_metric() -> None:
    """Every path ties: the search stops at its push budget instead of walking 4**32 nodes."""
    flat = np.zeros((fec.N_SYMBOLS, 16))
    assert fast.list_paths(flat, fec.SYMBOL_LABELS, 8) == ref.list_paths(
        flat, fec.SYMBOL_LABELS, 8
    ) == []


def test_list_paths_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="16"):
        fast.list_paths(np.zeros((3, 8)), fec.SYMBOL_LABELS, 4)
    bad = np.zeros((3, 16))
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        fast.list_paths(bad, fec.SYMBOL_LABELS, 4)
    assert fast.list_paths(np.ones((3, 16)), fec.SYMBOL_LABELS, 0) == []


def _baseband_frame(
    rng: np.random.Generator, start: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Complex baseband of a frame's tones (at ``scale``) from ``start``, in noise."""
    fe = build_front_end(48000)
    fb = fe.baseband_rate
    tones = frame.frame_symbols(0x0123456789AB)
    n = start + int(frame.FRAME_DURATION_S * fb * 1.01) + 64
    x = 0.7 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    t0 = start + frame.RAMP_S * fb / (1 + scale)
    for i, tone in enumerate(tones):
        a = int(round(t0 + i * frame.SYMBOL_S * fb / (1 + scale)))
        b = a + int(frame.INTEGRATION_S * fb)
        f = frame.tone_freqs_hz()[tone] * (1 + scale) - frame.CARRIER_HZ
        x[a:b] += np.exp(2j * np.pi * f * np.arange(a, b) / fb)
    return x, tones


@pytest.mark.parametrize("scale", [0.0, 0.003, -0.0045])
def test_coarse_frame_matches_reference(rng: np.random.Generator, scale: float) -> None:
    fe = build_front_end(48000)
    x, tones = _baseband_frame(rng, 300, scale)
    args = (demod.COARSE_SCALE_STEPS, demod.REFINE_SHIFT_SAMPLES, demod.PREAMBLE,
            demod.TONE_FREQS_HZ, demod.SYMBOL_STARTS_S, float(frame.CARRIER_HZ),
            fe.window_len, fe.baseband_rate)
    guess = 300 - 2.0  # sync is off by a couple of samples and a fraction of a grid step
    s1, c1, e1 = fast.coarse_frame(x, guess, scale * 0.9, *args)
    s2, c2, e2 = ref.coarse_frame(x, guess, scale * 0.9, *args)
    assert (s1, c1) == (s2, c2)
    assert abs(s1 - 300) <= 2
    assert e1 is not None and e2 is not None and e1.shape == (frame.N_SYMBOLS, 16)
    np.testing.assert_allclose(e1, e2, rtol=1e-9, atol=1e-9 * e2.max())
    np.testing.assert_array_equal(np.argmax(e1, axis=1), tones)  # clean enough to read
    # A search that leaves the signal keeps the guess; a frame that does gives no energies.
    assert fast.coarse_frame(x, -5.0, 0.001, *args) == (-5.0, 0.001, None)
    assert ref.coarse_frame(x, -5.0, 0.001, *args) == (-5.0, 0.001, None)
    late = float(x.shape[0] - 100)
    assert fast.coarse_frame(x, late, 0.0, *args)[2] is None
    assert ref.coarse_frame(x, late, 0.0, *args)[2] is None
    with pytest.raises(ValueError, match="16"):
        fast.coarse_frame(x, guess, 0.0, *args[:3], args[3][:8], *args[4:])


def test_viterbi_rechecks_labels_that_could_have_changed() -> None:
    """Only the read-only table is recognised by identity; a writeable one is re-checked."""
    metric = np.zeros((3, 16))
    assert not fec.SYMBOL_LABELS.flags.writeable
    fast.viterbi_symbols(metric, fec.SYMBOL_LABELS)
    labels = fec.SYMBOL_LABELS.copy()
    fast.viterbi_symbols(metric, labels)
    labels[7] = 16
    with pytest.raises(ValueError, match="0..15"):
        fast.viterbi_symbols(metric, labels)
    with pytest.raises(ValueError, match="0..15"):
        fast.list_paths(metric, labels, 2)


def test_wide_scores_match_reference(rng: np.random.Generator) -> None:
    fe = build_front_end(48000)
    x, _ = _baseband_frame(rng, 300, 0.002)
    shifts = np.arange(-8.0, 9.0, 2.0)
    scales = 0.002 + np.arange(-16.0, 17.0, 4.0) / frame.CARRIER_HZ
    args = (demod.PREAMBLE, demod.TONE_FREQS_HZ, demod.SYMBOL_STARTS_S,
            float(frame.CARRIER_HZ), fe.window_len, fe.baseband_rate)
    got = fast.wide_scores(x, 300.0, shifts, scales, *args)
    want = ref.wide_scores(x, 300.0, shifts, scales, *args)
    assert got is not None and want is not None and got.shape == (scales.size, shifts.size)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    i, j = np.unravel_index(int(np.argmax(got)), got.shape)
    assert abs(shifts[j]) <= 2 and abs(scales[i] - 0.002) * frame.CARRIER_HZ <= 4
    assert fast.wide_scores(x, 3.0, shifts, scales, *args) is None  # shift -8 leaves xb
    assert ref.wide_scores(x, 3.0, shifts, scales, *args) is None


SOFT_ARGS = (demod.PREAMBLE, demod.MAX_TILT_DB, demod.NOISE_FLOOR_REL, demod.MIN_SIGNAL_RATIO)


def _frame_energies(
    rng: np.random.Generator, n_data: int, snr: float, tilt_db: float
) -> np.ndarray:
    """Exponential noise energies with a (rolled-off) tone per symbol on top."""
    n_sym = frame.N_PREAMBLE + n_data
    energy = rng.exponential(size=(n_sym, 16)) * 10 ** (np.arange(16) * tilt_db / 150.0)
    tones = np.concatenate([demod.PREAMBLE, rng.integers(0, 16, n_data)])
    energy[np.arange(n_sym), tones] += snr * 10 ** (-tilt_db * tones / 150.0)
    return energy


@pytest.mark.parametrize("case", ["noise", "frame", "tilted", "silent tone", "silence", "short"])
def test_soft_symbols_match_reference(rng: np.random.Generator, case: str) -> None:
    """Noise levels and log-likelihoods agree with the twin on noise, frames and edge cases."""
    n_data = 3 if case == "short" else frame.N_DATA
    energy = _frame_energies(rng, n_data, 0.0 if case == "noise" else 8.0,
                             12.0 if case == "tilted" else 0.0) * 1e-6
    if case == "silent tone":
        energy[:, 5] = 0.0  # a tone the channel never carries: its median is 0, floored
    if case == "silence":
        energy[:] = 0.0
    n0, loglik = fast.soft_symbols(energy, *SOFT_ARGS)
    want_n0, want_ll = ref.soft_symbols(energy, *SOFT_ARGS)
    np.testing.assert_allclose(n0, want_n0, rtol=1e-12)
    np.testing.assert_allclose(loglik, want_ll, rtol=1e-12, atol=1e-12 * np.abs(want_ll).max())
    assert loglik.shape == (n_data, 16) and np.isfinite(loglik).all() and (n0 > 0).all()
    # Pieces of the twin: the same as the decoder's NumPy reference functions.
    data = energy[frame.N_PREAMBLE :]
    np.testing.assert_allclose(want_n0, demod.noise_levels(data), rtol=1e-15)


def test_soft_symbols_favour_the_sent_tone(rng: np.random.Generator) -> None:
    """On a frame, each symbol's highest log-likelihood is mostly its tone; on noise ~1/16."""
    energy = _frame_energies(rng, frame.N_DATA, 10.0, 0.0)
    _, loglik = fast.soft_symbols(energy, *SOFT_ARGS)
    sent = np.argmax(energy[frame.N_PREAMBLE :], axis=1)
    assert np.mean(np.argmax(loglik, axis=1) == sent) > 0.9


def test_log_i0_is_close_to_scipy() -> None:
    """The polynomial ln I0 stays within 5e-7 of scipy's i0e over the decoder's range."""
    from scipy.special import i0e

    x = np.concatenate([np.linspace(0.0, 60.0, 20001), np.geomspace(1e-8, 1e5, 2001)])
    want = np.log(i0e(x)) + x
    assert np.max(np.abs(ref.log_i0(x) - want)) < 5e-7


def test_soft_symbols_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        fast.soft_symbols(np.ones((45, 15)), *SOFT_ARGS)
    with pytest.raises(ValueError, match="data after the preamble"):
        fast.soft_symbols(np.ones((8, 16)), *SOFT_ARGS)
    with pytest.raises(ValueError, match="0..15"):
        fast.soft_symbols(np.ones((45, 16)), np.array([3, 16]), *SOFT_ARGS[1:])
