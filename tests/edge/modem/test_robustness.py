"""Every robustness item of the issue at a fixed seed (the long statistics are in the bench)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.modem import channel, frame
from edge.modem.detector import StreamingDetector
from edge.modem.synth import synthesize_frame
from tests.edge.modem.helpers import LEVEL_DBFS, decode_all, pad

RATE = 48000
PAYLOADS = (0x0000_0000_0000, 0xFFFF_FFFF_FFFF, 0x8123_4567_89AB, 0x3C5A_F00F_1234)
SEED = 7


def _noisy(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Pad ``x`` and add white noise at ``snr_db`` in-band SNR (received power)."""
    power = channel.in_band_power(x[: int(frame.FRAME_DURATION_S * RATE)], RATE)
    y = pad(x, RATE)
    return y + channel.awgn_for_snr(power, snr_db, y.shape[0], RATE, rng)


def _payloads(x: np.ndarray) -> list[int]:
    return [d.payload for d in decode_all(x, RATE, block=4096)]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_awgn_at_minus_3_db(payload: int) -> None:
    rng = np.random.default_rng(SEED)
    x = synthesize_frame(payload, RATE, LEVEL_DBFS)
    assert _payloads(_noisy(x, -3.0, rng)) == [payload]


def test_reverb_rt60_06() -> None:
    rng = np.random.default_rng(SEED)
    for payload in PAYLOADS[:2]:
        x = channel.reverb(synthesize_frame(payload, RATE, LEVEL_DBFS),
                           channel.exponential_rir(0.6, RATE, rng))
        assert _payloads(_noisy(x, 6.0, rng)) == [payload]


@pytest.mark.parametrize("speed", [-1.5, 1.5])
def test_walking_doppler(speed: float) -> None:
    rng = np.random.default_rng(SEED)
    x = channel.time_scale(synthesize_frame(PAYLOADS[2], RATE, LEVEL_DBFS),
                           channel.doppler_scale(speed))
    assert _payloads(_noisy(x, 0.0, rng)) == [PAYLOADS[2]]


@pytest.mark.parametrize("ppm", [-300, 300])
def test_clock_offset(ppm: int) -> None:
    rng = np.random.default_rng(SEED)
    x = channel.time_scale(synthesize_frame(PAYLOADS[3], RATE, LEVEL_DBFS), ppm * 1e-6)
    assert _payloads(_noisy(x, 0.0, rng)) == [PAYLOADS[3]]


def test_microphone_rolloff_12_db() -> None:
    rng = np.random.default_rng(SEED)
    x = channel.rolloff(synthesize_frame(PAYLOADS[2], RATE, LEVEL_DBFS), 12.0, RATE)
    assert _payloads(_noisy(x, 0.0, rng)) == [PAYLOADS[2]]


def test_clipping() -> None:
    rng = np.random.default_rng(SEED)
    x = synthesize_frame(PAYLOADS[2], RATE, 0.0) + 0.3 * channel.speech_like(
        int(frame.FRAME_DURATION_S * RATE) + 1, RATE, rng
    )[: int(round(frame.FRAME_DURATION_S * RATE))]
    clipped = channel.clip(x, 0.25)  # a quarter of the peak: hard overdrive
    assert _payloads(pad(clipped, RATE)) == [PAYLOADS[2]]


def test_all_impairments_combined_at_plus_3_db() -> None:
    rng = np.random.default_rng(SEED)
    for payload, sign in zip(PAYLOADS, (1, -1, 1, -1), strict=True):
        x = channel.reverb(synthesize_frame(payload, RATE, LEVEL_DBFS),
                           channel.exponential_rir(0.6, RATE, rng))
        x = channel.time_scale(x, sign * (channel.doppler_scale(1.5) + 300e-6))
        x = channel.rolloff(x, 12.0, RATE)
        assert _payloads(_noisy(x, 3.0, rng)) == [payload]


@pytest.mark.parametrize("kind", ["speech", "music", "clatter"])
def test_room_sound_under_the_beacon(kind: str) -> None:
    rng = np.random.default_rng(SEED)
    x = pad(synthesize_frame(PAYLOADS[1], RATE, -20.0), RATE)
    make = {"speech": channel.speech_like, "music": channel.music_like,
            "clatter": channel.clatter}[kind]
    room = make(x.shape[0], RATE, rng)
    room *= 0.5 / np.max(np.abs(room))  # loud room: beacon 14 dB below the room's peak
    assert _payloads(x + room) == [PAYLOADS[1]]


def test_two_overlapping_beacons() -> None:
    a = synthesize_frame(PAYLOADS[2], RATE, LEVEL_DBFS)
    b = synthesize_frame(PAYLOADS[3], RATE, LEVEL_DBFS - 3.0)
    offset = int(0.2 * RATE)
    x = np.zeros(offset + b.shape[0], np.float32)
    x[: a.shape[0]] += a
    x[offset:] += b
    rng = np.random.default_rng(SEED)
    got = _payloads(_noisy(x, 10.0, rng))
    assert got, "neither beacon decoded"
    assert set(got) <= {PAYLOADS[2], PAYLOADS[3]}


def test_no_false_frames_in_minutes_of_room_sound() -> None:
    rng = np.random.default_rng(SEED)
    det = StreamingDetector(RATE)
    found = []
    minute = 60 * RATE
    pieces = [
        rng.standard_normal(minute).astype(np.float32),
        channel.speech_like(minute, RATE, rng),
        channel.music_like(minute // 2, RATE, rng),
        channel.clatter(minute, RATE, rng),
    ]
    for piece in pieces:
        for lo in range(0, piece.shape[0], 8192):
            found.extend(det.feed(0.3 * piece[lo : lo + 8192]))
    found.extend(det.flush())
    assert found == []


def test_cython_and_numpy_detectors_agree() -> None:
    rng = np.random.default_rng(SEED)
    x = _noisy(synthesize_frame(PAYLOADS[2], 44100, LEVEL_DBFS)[:], 0.0, rng)[: int(1.0 * 44100)]
    results = []
    for backend in ("cython", "numpy"):
        det = StreamingDetector(44100, backend=backend)
        results.append(det.feed(x) + det.flush())
    assert [d.payload for d in results[0]] == [PAYLOADS[2]]
    fast, slow = results
    assert [(d.payload, d.sample_index) for d in fast] == [
        (d.payload, d.sample_index) for d in slow
    ]
    assert fast[0].snr_db == pytest.approx(slow[0].snr_db, abs=1e-6)
