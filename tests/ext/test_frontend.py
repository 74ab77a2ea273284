"""The compiled streaming sync front end (ext._frontend) against its NumPy twin."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from edge.modem import channel, detector, frame
from edge.modem.frontend import DECIMATION, HOP, build_front_end, cpu_has_avx2_fma, front_kernels
from edge.modem.synth import synthesize_frame
from ext import load_kernel
from ext import modem_reference as ref

fast = load_kernel("_frontend")
# Every compiled build this CPU can run: the portable one, and the AVX2 + FMA one.
BUILDS = [fast] + ([load_kernel("_frontend_avx2")] if cpu_has_avx2_fma() else [])
START_BB = -96  # a silent lead before stream index 0, as the detector uses


def _make(module: ModuleType, rate: int) -> object:
    fe = build_front_end(rate)
    return module.SyncFrontEnd(
        fe.taps, fe.table, HOP, fe.window_subblocks, fe.preamble_rows, fe.delays, fe.shifts,
        fe.neighbour, fe.reach, float(fe.window_len), detector.SYNC_CLIP,
        detector.SYNC_THRESHOLDS[rate], 6, DECIMATION, frame.CARRIER_HZ, rate, START_BB,
    )


def _run(front: object, x: np.ndarray, sizes: list[int]) -> tuple:
    """Feed ``x`` in pieces of ``sizes`` (cycled); join the outputs."""
    bbs, cands, fsum, fn = [], [], 0.0, 0
    lo, i = 0, 0
    while lo < x.shape[0]:
        n = sizes[i % len(sizes)]
        bb, c, (s, k) = front.process(x[lo : lo + n])  # type: ignore[attr-defined]
        bbs.append(bb)
        cands.extend(c)
        fsum, fn = fsum + s, fn + k
        lo, i = lo + n, i + 1
    return np.concatenate(bbs), cands, fsum, fn


def _signal(rate: int, rng: np.random.Generator) -> np.ndarray:
    """Silence, then frames at 0 dB and -6 dB in-band SNR in white noise, 3 s."""
    x = np.zeros(3 * rate, np.float32)
    for t, payload in ((0.2, 0x123456789ABC), (1.4, 0xBEEF0000CAFE)):
        wave = synthesize_frame(payload, rate, -6.0)
        x[int(t * rate) : int(t * rate) + wave.shape[0]] += wave * (1.0 if t < 1 else 0.5)
    power = 10 ** (-6.0 / 10) / 2
    noise = channel.awgn_for_snr(power, 0.0, x.shape[0] - rate // 10, rate, rng)
    x[rate // 10 :] += noise
    return x


def test_the_detector_uses_the_widest_build_this_cpu_runs() -> None:
    assert front_kernels("cython") is BUILDS[-1]
    assert front_kernels("numpy") is ref


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("rate", [44100, 48000])
def test_front_end_matches_numpy_twin(
    rng: np.random.Generator, rate: int, build: ModuleType
) -> None:
    x = _signal(rate, rng)
    bb1, c1, s1, n1 = _run(_make(build, rate), x, [int(v) for v in rng.integers(1, 9000, 50)])
    bb2, c2, s2, n2 = _run(_make(ref, rate), x, [rate // 2])
    # Float32 products in the compiled decimator, float64 in the twin.
    np.testing.assert_allclose(bb1, bb2, rtol=0, atol=2e-6 * np.abs(bb2).max())
    assert len(c2) >= 2  # both frames' preambles (and maybe side peaks) were found
    assert [(p, o) for p, o, _ in c1] == [(p, o) for p, o, _ in c2]
    np.testing.assert_allclose([r for *_, r in c1], [r for *_, r in c2], rtol=1e-4)
    assert n1 == n2 > 0
    assert s1 == pytest.approx(s2, rel=1e-5)
    # Whole windows from stream index 0 on count (the lead before it is not the room).
    n_sub = x.shape[0] // DECIMATION // HOP + START_BB // HOP
    assert n1 == n_sub - build_front_end(rate).window_subblocks + 1


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.__name__)
def test_front_end_is_block_size_invariant(rng: np.random.Generator, build: ModuleType) -> None:
    x = _signal(48000, rng)
    whole = _run(_make(build, 48000), x, [x.shape[0]])
    for sizes in ([1, 7, 4096], [11, 23, 12], [24000]):
        bb, cands, fsum, fn = _run(_make(build, 48000), x, sizes)
        np.testing.assert_array_equal(bb, whole[0])
        assert cands == whole[1]
        assert (fn, fsum) == (whole[3], pytest.approx(whole[2], rel=1e-12))


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.__name__)
def test_front_end_cleans_nan_and_inf_like_nan_to_num(
    rng: np.random.Generator, build: ModuleType
) -> None:
    x = (0.01 * rng.standard_normal(20000)).astype(np.float32)
    x[[100, 5000, 12000]] = [np.nan, np.inf, -np.inf]
    bb1, *_ = _run(_make(build, 48000), x, [20000])
    bb2, *_ = _run(_make(ref, 48000), x, [20000])
    assert np.isfinite(bb1).all()
    np.testing.assert_allclose(bb1, bb2, rtol=1e-5, atol=1e-6 * np.abs(bb2).max())


def test_front_end_rejects_bad_input() -> None:
    front = _make(fast, 48000)
    with pytest.raises(TypeError, match="float32"):
        front.process(np.zeros(10))  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="float32"):
        front.process(np.zeros((10, 2), np.float32))  # type: ignore[attr-defined]
    fe = build_front_end(48000)
    with pytest.raises(ValueError, match="sub-block"):
        fast.SyncFrontEnd(fe.taps, fe.table, HOP, fe.window_subblocks, fe.preamble_rows,
                          fe.delays, fe.shifts, fe.neighbour, fe.reach, 40.0, 0.3, 0.05, 6,
                          DECIMATION, 19000, 48000, -3)
    with pytest.raises(ValueError, match="grid"):
        fast.SyncFrontEnd(fe.taps, fe.table, HOP, fe.window_subblocks, fe.preamble_rows + 40,
                          fe.delays, fe.shifts, fe.neighbour, fe.reach, 40.0, 0.3, 0.05, 6,
                          DECIMATION, 19000, 48000, -96)


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("rate", [44100, 48000])
def test_digital_silence_after_a_frame_scores_like_the_twin(rate: int, build: ModuleType) -> None:
    # A clean frame, then exact zeros: the window sums keep a float rounding residue
    # there, so a band power that was slid rather than summed afresh turned it into
    # ratios far over 1 and a bogus, very strong sync peak (raw 9.4) in the silence.
    wave = synthesize_frame(0x123456789ABC, rate, -6.0)
    x = np.concatenate([np.zeros(rate // 5, np.float32), wave, np.zeros(rate, np.float32)])
    _, c1, _, _ = _run(_make(build, rate), x, [rate // 2])
    _, c2, _, _ = _run(_make(ref, rate), x, [rate // 2])
    assert [(p, o) for p, o, _ in c1] == [(p, o) for p, o, _ in c2]
    assert max(r for *_, r in c1) == pytest.approx(max(r for *_, r in c2), rel=1e-4)
    assert all(r <= 1.0 + 1e-6 for *_, r in c1)  # a ratio is at most 1 (Cauchy-Schwarz)
