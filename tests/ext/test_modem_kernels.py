"""The compiled modem kernels (ext._modem) against their NumPy twins (ext.modem_reference)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.modem import fec
from edge.modem.frontend import HOP, build_front_end
from ext import load_kernel
from ext import modem_reference as ref

fast = load_kernel("_modem")


@pytest.mark.parametrize("rate", [44100, 48000])
def test_decimate_matches_reference(rng: np.random.Generator, rate: int) -> None:
    fe = build_front_end(rate)
    x = rng.standard_normal(5000).astype(np.float32)
    args = (x, fe.taps, 143, 12, 987_654_321, 19000, rate, 300)
    np.testing.assert_allclose(fast.decimate(*args), ref.decimate(*args), rtol=1e-9, atol=1e-9)


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
    np.testing.assert_allclose(s1, s2, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(p1, p2, rtol=1e-12)
    e1, b1 = fast.sliding_energy(s1, p1, fe.window_subblocks)
    e2, b2 = ref.sliding_energy(s2, p2, fe.window_subblocks)
    np.testing.assert_allclose(e1, e2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b1, b2, rtol=1e-12)


def test_sync_scores_match_reference(rng: np.random.Generator) -> None:
    fe = build_front_end(48000)
    energy = rng.exponential(size=(fe.table.shape[0], 600))
    band = rng.exponential(size=600) * 40
    band[5] = 0.0  # a silent window must not divide by zero
    args = (energy, band, fe.preamble_rows, fe.delays, fe.shifts, fe.neighbour,
            float(fe.window_len), 0.4)
    b1, r1, o1 = fast.sync_scores(*args)
    b2, r2, o2 = ref.sync_scores(*args)
    np.testing.assert_allclose(b1, b2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r1, r2, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(o1, o2)


def test_viterbi_matches_reference_on_noisy_llrs(rng: np.random.Generator) -> None:
    for _ in range(20):
        llr = rng.normal(0.0, 3.0, size=fec.CODED_BITS)
        np.testing.assert_array_equal(
            fast.viterbi(llr, fec.REGISTER_SIGNS), ref.viterbi(llr, fec.REGISTER_SIGNS)
        )


def test_viterbi_corrects_errors(rng: np.random.Generator) -> None:
    info = rng.integers(0, 2, size=64).astype(np.uint8)
    coded = fec.conv_encode(info)
    llr = 4.0 * (1.0 - 2.0 * coded)
    flip = rng.choice(coded.size, size=8, replace=False)
    llr[flip] *= -0.5
    np.testing.assert_array_equal(fast.viterbi(llr, fec.REGISTER_SIGNS)[:64], info)


def test_viterbi_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="even"):
        fast.viterbi(np.zeros(3), fec.REGISTER_SIGNS)
    with pytest.raises(ValueError, match="finite"):
        fast.viterbi(np.array([np.nan, 0.0]), fec.REGISTER_SIGNS)
