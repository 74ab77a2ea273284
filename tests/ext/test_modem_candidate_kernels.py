"""Candidate-decoding kernels of ext._modem against their NumPy twins: the cases the
hot paths' shortcuts must leave unchanged (trellis steps that skip states, ...)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.modem import fec
from ext import load_kernel
from ext import modem_reference as ref

fast = load_kernel("_modem")


def _scrambled_labels(rng: np.random.Generator, n_states: int) -> np.ndarray:
    """A label table with no XOR structure (the kernels' non-linear branch tables)."""
    labels = rng.integers(0, 16, size=4 * n_states).astype(np.int64)
    labels.setflags(write=False)
    return labels


@pytest.mark.parametrize("n_sym", [1, 2, 3, 4, 5, 6, 9, 10, 11, fec.N_SYMBOLS])
def test_viterbi_skipping_unreachable_and_tail_states_matches_reference(
    rng: np.random.Generator, n_sym: int
) -> None:
    """Short trellises (head and tail steps overlap), both label layouts, heavy ties."""
    tables = [fec.SYMBOL_LABELS, _scrambled_labels(rng, 1024), _scrambled_labels(rng, 16)]
    for labels in tables:
        for trial in range(6):
            metric = rng.normal(0.0, 3.0, size=(n_sym, 16))
            if trial % 2:
                metric = np.round(metric)  # ties: the first candidate must win in both
            np.testing.assert_array_equal(
                fast.viterbi_symbols(metric, labels), ref.viterbi_symbols(metric, labels)
            )


@pytest.mark.parametrize("n_sym", [1, 3, 5, 7, fec.N_SYMBOLS])
def test_list_paths_skipping_states_matches_reference(
    rng: np.random.Generator, n_sym: int
) -> None:
    for labels in (fec.SYMBOL_LABELS, _scrambled_labels(rng, 64)):
        for trial in range(4):
            metric = rng.normal(0.0, 2.0, size=(n_sym, 16))
            if trial % 2:
                metric = np.round(metric * 2) / 2
            got = fast.list_paths(metric, labels, 6)
            want = ref.list_paths(metric, labels, 6)
            assert [m for m, _ in got] == [m for m, _ in want]
            for (_, a), (_, b) in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(got[0][1], fast.viterbi_symbols(metric, labels))


@pytest.mark.parametrize("length", [40, 36])
def test_window_energies_direct_matches_reference_and_the_planned_kernel(
    rng: np.random.Generator, length: int
) -> None:
    """Grouped by frequency (every shift of a symbol): the twin's values, and bit for bit
    what window_energies gives the same windows on its one-at-a-time path."""
    xb = rng.standard_normal(3000) + 1j * rng.standard_normal(3000)
    symbol_starts = np.arange(45) * 44 + 100
    tones = rng.uniform(-900.0, 900.0, size=45)
    starts = (symbol_starts[:, None] + np.arange(-2, 3)[None, :]).ravel()
    freqs = np.repeat(tones, 5).reshape(-1, 1)
    e1, p1 = fast.window_energies_direct(xb, starts, freqs, length, 4000.0)
    e2, p2 = ref.window_energies_direct(xb, starts, freqs, length, 4000.0)
    np.testing.assert_allclose(e1, e2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p1, p2, rtol=1e-12)
    # Listed shift by shift, no two neighbours share a frequency: the planned kernel
    # sums each window on its own too.
    order = np.arange(starts.shape[0]).reshape(45, 5).T.ravel()
    plan = fast.window_plan(starts[order], freqs[order], length)
    assert not plan[3].any()
    e3, p3 = fast.window_energies(xb, starts[order], freqs[order], length, 4000.0)
    np.testing.assert_array_equal(e3, e1[order])
    np.testing.assert_array_equal(p3, p1[order])
    with pytest.raises(ValueError, match="outside"):
        fast.window_energies_direct(xb, np.array([2990]), np.array([[300.0]]), length, 4000.0)


def test_viterbi_tones_matches_reference_and_the_re_encoded_path(
    rng: np.random.Generator,
) -> None:
    """The gathered metric's Viterbi bits, and the path's tones as fec re-encodes them."""
    for trial in range(30):
        loglik = rng.normal(0.0, rng.uniform(0.5, 4.0), size=(fec.N_SYMBOLS, 16))
        if trial % 3 == 0:
            loglik = np.round(loglik)
        bits, tones = fast.viterbi_tones(loglik, fec.INTERLEAVE, fec.WHITENING, fec.SYMBOL_LABELS)
        want_bits = fast.viterbi_symbols(fec.trellis_metric(loglik), fec.SYMBOL_LABELS)
        np.testing.assert_array_equal(bits, want_bits)
        np.testing.assert_array_equal(tones, fec.symbols_of_bits(want_bits[: fec.INFO_BITS]))
        ref_bits, ref_tones = ref.viterbi_tones(
            loglik, fec.INTERLEAVE, fec.WHITENING, fec.SYMBOL_LABELS
        )
        np.testing.assert_array_equal(bits, ref_bits)
        np.testing.assert_array_equal(tones, ref_tones)


def test_viterbi_tones_on_other_tables(rng: np.random.Generator) -> None:
    """Writable and scrambled tables (checked every call), any permutation and nibbles."""
    for n_sym in (1, 4, 12):
        labels = _scrambled_labels(rng, 64)
        order = rng.permutation(n_sym)
        nibbles = rng.integers(0, 16, size=n_sym)
        loglik = rng.normal(0.0, 2.0, size=(n_sym, 16))
        got = fast.viterbi_tones(loglik, order, nibbles, labels)
        want = ref.viterbi_tones(loglik, order, nibbles, labels)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_viterbi_tones_rejects_bad_input() -> None:
    ll = np.zeros((fec.N_SYMBOLS, 16))
    with pytest.raises(ValueError, match="permutation"):
        fast.viterbi_tones(ll, np.zeros(fec.N_SYMBOLS, dtype=np.int64), fec.WHITENING,
                           fec.SYMBOL_LABELS)
    with pytest.raises(ValueError, match="permutation"):
        fast.viterbi_tones(ll, fec.INTERLEAVE, fec.WHITENING + 16, fec.SYMBOL_LABELS)
    with pytest.raises(ValueError, match="one entry per symbol"):
        fast.viterbi_tones(ll, fec.INTERLEAVE[:-1], fec.WHITENING, fec.SYMBOL_LABELS)
    bad = ll.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fast.viterbi_tones(bad, fec.INTERLEAVE, fec.WHITENING, fec.SYMBOL_LABELS)


# The modem's window lengths (48 and 44.1 kHz), a short one, and an odd one: the
# compiler sums a window in two lanes (even and odd samples); an odd length's last
# sample may be added in another order, so there only rounding-level agreement holds.
_LENGTHS = [(40, True), (36, True), (8, True), (37, False)]


def _same(got: np.ndarray, want: np.ndarray, exact: bool) -> None:
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14 * want.max())


@pytest.mark.parametrize(("length", "exact"), _LENGTHS)
def test_coarse_frame_energies_are_window_energies_bit_for_bit(
    rng: np.random.Generator, length: int, exact: bool
) -> None:
    """The candidate kernel's tone energies (4 tones per loop, shared bases) are exactly
    what window_energies gives the same windows, so a later pass at the same estimate
    sees the same numbers."""
    from edge.modem import demod, frame

    rate = 4000.0
    n = 2600
    xb = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    tf = demod.TONE_FREQS_HZ
    for _ in range(5):
        start0 = float(rng.uniform(20, 200))
        scale0 = float(rng.uniform(-2e-4, 2e-4))
        start, scale, energy = fast.coarse_frame(
            xb, start0, scale0, demod.COARSE_SCALE_STEPS, demod.REFINE_SHIFT_SAMPLES,
            demod.PREAMBLE, tf, demod.SYMBOL_STARTS_S, float(frame.CARRIER_HZ), length, rate,
        )
        at = np.rint(start + demod.SYMBOL_STARTS_S * rate / (1.0 + scale)).astype(np.int64)
        offsets = np.broadcast_to(tf * (1.0 + scale) - frame.CARRIER_HZ, (at.shape[0], 16))
        want, _ = fast.window_energies(xb, at, offsets, length, rate)
        _same(energy, want, exact)
        _, _, twin = ref.coarse_frame(
            xb, start0, scale0, demod.COARSE_SCALE_STEPS, demod.REFINE_SHIFT_SAMPLES,
            demod.PREAMBLE, tf, demod.SYMBOL_STARTS_S, float(frame.CARRIER_HZ), length, rate,
        )
        np.testing.assert_allclose(energy, twin, rtol=1e-9, atol=1e-9 * twin.max())


def test_candidate_kernels_still_check_other_frame_tables(rng: np.random.Generator) -> None:
    """demod's read-only tables are checked once; any other table every call."""
    from edge.modem import demod, frame

    xb = rng.standard_normal(2600) + 1j * rng.standard_normal(2600)
    args = (demod.COARSE_SCALE_STEPS, demod.REFINE_SHIFT_SAMPLES)
    tail = (float(frame.CARRIER_HZ), 40, 4000.0)
    good = fast.coarse_frame(xb, 100.0, 0.0, *args, demod.PREAMBLE, demod.TONE_FREQS_HZ,
                             demod.SYMBOL_STARTS_S, *tail)
    assert good[2] is not None
    bad = demod.PREAMBLE.copy()
    bad[0] = 16
    with pytest.raises(ValueError, match="0..15"):
        fast.coarse_frame(xb, 100.0, 0.0, *args, bad, demod.TONE_FREQS_HZ,
                          demod.SYMBOL_STARTS_S, *tail)
    with pytest.raises(ValueError, match="16 entries"):
        fast.wide_scores(xb, 100.0, np.zeros(3), np.zeros(2), demod.PREAMBLE,
                         demod.TONE_FREQS_HZ[:15], demod.SYMBOL_STARTS_S, *tail)
    again = fast.coarse_frame(xb, 100.0, 0.0, *args, demod.PREAMBLE, demod.TONE_FREQS_HZ,
                              demod.SYMBOL_STARTS_S, *tail)
    assert again[:2] == good[:2]
    np.testing.assert_array_equal(again[2], good[2])


def test_wide_scores_share_window_powers_exactly(rng: np.random.Generator) -> None:
    """A grid's scales reuse each other's window powers (many windows start at the same
    sample): the scores are bit for bit those of each scale searched on its own, and
    the twin's within rounding."""
    from edge.modem import demod, frame

    xb = rng.standard_normal(2600) + 1j * rng.standard_normal(2600)
    shifts = np.arange(-8, 9, 2).astype(np.float64)
    scales = 1e-4 + np.arange(-8, 9, 2) * 2.0 / frame.CARRIER_HZ
    tail = (demod.PREAMBLE, demod.TONE_FREQS_HZ, demod.SYMBOL_STARTS_S,
            float(frame.CARRIER_HZ), 40, 4000.0)
    grid = fast.wide_scores(xb, 130.4, shifts, scales, *tail)
    one_by_one = np.vstack([fast.wide_scores(xb, 130.4, shifts, scales[i : i + 1], *tail)
                            for i in range(scales.shape[0])])
    np.testing.assert_array_equal(grid, one_by_one)
    np.testing.assert_allclose(grid, ref.wide_scores(xb, 130.4, shifts, scales, *tail),
                               rtol=1e-12)


@pytest.mark.parametrize(("length", "exact"), _LENGTHS)
def test_frame_energies_match_window_energies_and_the_twin(
    rng: np.random.Generator, length: int, exact: bool
) -> None:
    from edge.modem import demod, frame

    rate = 4000.0
    xb = rng.standard_normal(2600) + 1j * rng.standard_normal(2600)
    tf, ts = demod.TONE_FREQS_HZ, demod.SYMBOL_STARTS_S
    for start, scale in ((100.3, 0.0), (17.0, 2.5e-4), (250.5, -3e-4)):
        got = fast.frame_energies(xb, start, scale, tf, ts, float(frame.CARRIER_HZ), length, rate)
        at = np.rint(start + ts * rate / (1.0 + scale)).astype(np.int64)
        offsets = np.broadcast_to(tf * (1.0 + scale) - frame.CARRIER_HZ, (at.shape[0], 16))
        _same(got, fast.window_energies(xb, at, offsets, length, rate)[0], exact)
        twin = ref.frame_energies(xb, start, scale, tf, ts, float(frame.CARRIER_HZ), length, rate)
        np.testing.assert_allclose(got, twin, rtol=1e-9, atol=1e-9 * twin.max())
    for k in (fast, ref):  # a window before the start or past the end of the signal
        assert k.frame_energies(xb, -5.0, 0.0, tf, ts, float(frame.CARRIER_HZ), 40, rate) is None
        assert k.frame_energies(xb[:2000], 100.0, 0.0, tf, ts, float(frame.CARRIER_HZ), 40,
                                rate) is None
