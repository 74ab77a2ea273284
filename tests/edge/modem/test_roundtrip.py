"""Synthesis -> detector round trips at both rates, timing, blocks, API contracts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from edge.modem import channel, frame
from edge.modem.detector import StreamingDetector
from edge.modem.synth import emission_schedule, synthesize_frame
from ext import modem_reference
from tests.edge.modem.helpers import LEVEL_DBFS, decode_all, pad

PAYLOAD = 0x8123_4567_89AB
# Frame start must be located to within the symbol guard (1 ms) at the capture rate.
TIMING_TOLERANCE_S = 0.001


@pytest.mark.parametrize("rate", [44100, 48000])
def test_round_trip(rate: int) -> None:
    x = pad(synthesize_frame(PAYLOAD, rate, LEVEL_DBFS), rate, lead_s=0.25)
    found = decode_all(x, rate)
    assert [d.payload for d in found] == [PAYLOAD]
    det = found[0]
    assert abs(det.t_s - 0.25) < TIMING_TOLERANCE_S
    assert det.sample_index == pytest.approx(0.25 * rate, abs=TIMING_TOLERANCE_S * rate)
    assert det.snr_db > 15.0
    assert 0.99 <= det.confidence <= 1.0


@pytest.mark.parametrize(("made", "heard"), [(48000, 44100), (44100, 48000)])
def test_cross_rate(made: int, heard: int) -> None:
    x = synthesize_frame(PAYLOAD, made, LEVEL_DBFS)
    up, down = (147, 160) if heard == 44100 else (160, 147)
    y = resample_poly(x.astype(np.float64), up, down).astype(np.float32)
    assert [d.payload for d in decode_all(pad(y, heard), heard)] == [PAYLOAD]


def test_frame_is_short_in_band_and_click_free() -> None:
    rate = 48000
    x = synthesize_frame(PAYLOAD, rate, LEVEL_DBFS)
    assert frame.FRAME_DURATION_S <= 0.5
    assert x.dtype == np.float32 and x.shape == (round(frame.FRAME_DURATION_S * rate),)
    assert np.max(np.abs(x)) == pytest.approx(10 ** (LEVEL_DBFS / 20), rel=0.01)
    assert abs(x[0]) < 1e-3 and abs(x[-1]) < 1e-3  # ramps, no step at either end
    spec = np.abs(np.fft.rfft(pad(x, rate))) ** 2
    f = np.fft.rfftfreq(pad(x, rate).shape[0], 1 / rate)
    audible = spec[f < 16000].sum() / spec.sum()
    assert audible < 1e-6  # nothing to click with below 16 kHz (-60 dB)


def test_emission_schedule_places_frames() -> None:
    rate = 48000
    times: list[float] = []

    def payload_for(t: float) -> int:
        times.append(t)
        return PAYLOAD + int(t)

    x = emission_schedule(payload_for, rate, LEVEL_DBFS, period_s=1.0, duration_s=3.2, start_s=0.1)
    assert x.shape == (int(3.2 * rate),)
    assert times == pytest.approx([0.1, 1.1, 2.1])
    found = decode_all(x, rate)
    assert [d.payload for d in found] == [PAYLOAD, PAYLOAD + 1, PAYLOAD + 2]
    assert [d.t_s for d in found] == pytest.approx(times, abs=TIMING_TOLERANCE_S)


def test_random_blocks_give_the_same_frames(rng: np.random.Generator) -> None:
    rate = 48000
    x = emission_schedule(lambda t: PAYLOAD ^ int(t * 10), rate, LEVEL_DBFS, 0.7, 2.2, 0.05)
    x = x + (0.01 * rng.standard_normal(x.shape[0])).astype(np.float32)
    whole = decode_all(x, rate)
    det = StreamingDetector(rate)
    pieces = []
    lo = 0
    while lo < x.shape[0]:
        n = int(rng.integers(1, 9000))
        pieces.extend(det.feed(x[lo : lo + n].astype(np.float64)))
        lo += n
    pieces.extend(det.flush())
    assert len(whole) == 3
    assert pieces == whole


def test_every_input_form_gives_the_same_frames(rng: np.random.Generator) -> None:
    """feed()'s fast path (a 1-D float ndarray: float32 copied through a memoryview,
    other floats cast by NumPy, any strides) gives the frames of the general path (a
    list, a block larger than the input queue), copies the caller's buffer, and refuses
    bad input with the same errors."""
    rate = 48000
    x = emission_schedule(lambda t: PAYLOAD ^ int(t * 10), rate, LEVEL_DBFS, 0.7, 1.5, 0.05)
    x = x + (0.01 * rng.standard_normal(x.shape[0])).astype(np.float32)
    whole = decode_all(x, rate)  # one block, larger than the queue: the general path
    assert len(whole) == 2
    wide = np.zeros((x.shape[0], 3), np.float32)
    wide[:, 1] = x
    backwards = x[::-1].copy()[::-1]  # x again, as a negative-stride view
    reused = np.empty(4096, np.float32)

    def caller_buffer(lo: int, hi: int) -> np.ndarray:
        reused[: hi - lo] = x[lo:hi]
        return reused[: hi - lo]

    forms = {
        "float32": lambda lo, hi: x[lo:hi],
        "float64": lambda lo, hi: x[lo:hi].astype(np.float64),
        "big-endian": lambda lo, hi: x[lo:hi].astype(">f4"),
        "strided": lambda lo, hi: wide[lo:hi, 1],
        "negative stride": lambda lo, hi: backwards[lo:hi],
        "list": lambda lo, hi: x[lo:hi].tolist(),
        "reused buffer": caller_buffer,
    }
    for name, block_of in forms.items():
        det = StreamingDetector(rate)
        found = []
        for lo in range(0, x.shape[0], 4096):
            found.extend(det.feed(block_of(lo, min(lo + 4096, x.shape[0]))))
            reused[:] = np.nan  # the detector must have copied the block already
        found.extend(det.flush())
        assert found == whole, name
        assert det.non_finite_samples == 0, name
    det = StreamingDetector(rate)
    queued = det._queued_len
    for bad in (np.zeros(10, np.int16), np.zeros(rate, np.int32), [1, 2, 3]):
        with pytest.raises(TypeError, match="float32/float64"):
            det.feed(bad)
    with pytest.raises(ValueError, match="mono"):
        det.feed(wide[:10])
    assert det._queued_len == queued  # a refused block queues nothing


def _state_sizes(det: StreamingDetector) -> tuple[int, ...]:
    """Sizes of everything the detector keeps between blocks."""
    sizes = (det._bb.shape[0], len(det._pending), len(det._recent), det._queue.shape[0])
    front = det._front
    if isinstance(front, modem_reference.SyncFrontEnd):  # the compiled one has fixed rings
        sizes += (front._sums.shape[1], front._energy.shape[1], front._score.shape[0])
    return sizes


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_reset_and_memory_stay_bounded(backend: str) -> None:
    rate = 48000
    det = StreamingDetector(rate, backend=backend)
    x = pad(synthesize_frame(PAYLOAD, rate, LEVEL_DBFS), rate)
    for _ in range(4):
        det.feed(np.zeros(rate, np.float32))
    sizes = _state_sizes(det)
    for _ in range(4):
        det.feed(np.zeros(rate, np.float32))
    assert _state_sizes(det) == sizes
    det.reset()
    assert [d.payload for d in det.feed(x) + det.flush()] == [PAYLOAD]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 96000])
def test_wrong_rate_is_refused(rate: int) -> None:
    with pytest.raises(ValueError, match="44100 or 48000"):
        StreamingDetector(rate)
    with pytest.raises(ValueError, match="unsupported sample rate"):
        synthesize_frame(PAYLOAD, rate, LEVEL_DBFS)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="48-bit"):
        synthesize_frame(1 << 48, 48000, LEVEL_DBFS)
    with pytest.raises(ValueError, match="dBFS"):
        synthesize_frame(PAYLOAD, 48000, 3.0)
    with pytest.raises(ValueError, match="shorter than one frame"):
        emission_schedule(lambda t: PAYLOAD, 48000, LEVEL_DBFS, 0.2, 2.0)
    det = StreamingDetector(48000)
    with pytest.raises(ValueError, match="mono"):
        det.feed(np.zeros((10, 2), np.float32))
    with pytest.raises(TypeError, match="float"):
        det.feed(np.zeros(10, np.int16))


def test_noise_floor_tracks_in_band_level(rng: np.random.Generator) -> None:
    rate = 48000
    det = StreamingDetector(rate)
    assert det.noise_floor_dbfs == float("-inf")
    quiet_noise = (0.01 * rng.standard_normal(3 * rate)).astype(np.float32)
    det.feed(quiet_noise)
    quiet = det.noise_floor_dbfs
    # dBFS re a full-scale sine (power 0.5) of the 18-20 kHz power.
    truth = 10 * np.log10(channel.in_band_power(quiet_noise, rate) / 0.5)
    assert quiet == pytest.approx(truth, abs=0.5)
    det.feed((0.1 * rng.standard_normal(6 * rate)).astype(np.float32))
    assert det.noise_floor_dbfs == pytest.approx(quiet + 20.0, abs=1.5)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_non_finite_input_is_silenced_and_the_frame_still_decodes(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NaN, inf and a sample whose square overflows float32 (a corrupt float WAV, a driver
    glitch) are zeroed / clipped before the front end: the frame after them decodes where
    it does in the clean stream, on both backends, and the detector counts and logs them."""
    rate = 48000
    clean = pad(synthesize_frame(PAYLOAD, rate, LEVEL_DBFS), rate, lead_s=0.5)
    dirty = clean.copy()
    dirty[1000:1010] = np.nan
    dirty[5000] = np.inf
    dirty[5001] = -np.inf
    dirty[9000] = 3e38
    expected = [(d.payload, d.sample_index) for d in decode_all(clean, rate)]
    det = StreamingDetector(rate, backend=backend)
    found = det.feed(dirty) + det.flush()
    assert [(d.payload, d.sample_index) for d in found] == expected
    assert [d.payload for d in found] == [PAYLOAD]
    assert det.non_finite_samples == 12
    assert "non-finite" in caplog.text
