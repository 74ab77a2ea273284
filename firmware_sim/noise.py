"""A store's background noise, synthesised by the project itself (no recordings, fully seeded).

Kinds: crowd babble, music-like, HVAC, shopping-cart clatter (with energy above 18 kHz)
and a neighbour store's beacon heard through a wall. Each generator returns a signal of
unit RMS; :class:`NoiseScene` scales each to its stated broadband level in dB SPL at the
reference microphone and can top the stationary part up to a stated in-band floor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from firmware_sim.calibration import (
    BAND_HIGH_HZ,
    BAND_LOW_HZ,
    MIC_FULL_SCALE_DB_SPL,
    band_power,
    db_spl_to_mic_dbfs,
    dbfs_to_rms,
)

log = logging.getLogger(__name__)

# Syllable rate of running speech (~4 per second) drives the babble envelope.
SYLLABLE_RATE_HZ = 4.0
# Talkers in the crowd; beyond ~8 babble is nearly stationary, which stores are not.
BABBLE_TALKERS = 6
# Talkers are synthesised at 1/4 of the sample rate (12 kHz at 48 kHz): speech is band-limited.
BABBLE_DECIMATION = 4
# Speech energy falls ~12 dB/octave above ~1 kHz (long-term speech spectrum).
SPEECH_CORNER_HZ = 1000.0
# Music: a note every ~0.4 s, ten harmonics, and hi-hat ticks with energy to 20 kHz.
NOTE_INTERVAL_S = 0.4
HARMONICS = 10
HIHAT_RATE_HZ = 4.0
HIHAT_DECAY_S = 0.03
# HVAC: fan blade-pass hum and diffuser hiss; the hiss is what reaches 18-20 kHz.
HVAC_HUM_HZ = 120.0
# Cart clatter: ~1.5 impacts/s in a busy aisle; each rings metal modes of 2-22 kHz
# for 10-60 ms (wire baskets are light and stiff, so modes are high and short).
CLATTER_RATE_HZ = 1.5
CLATTER_MODES = 6
CLATTER_MODE_RANGE_HZ = (2_000.0, 22_000.0)
CLATTER_DECAY_RANGE_S = (0.01, 0.06)
# A neighbour store's beacon through a partition wall: 35 dB of transmission loss at
# 19 kHz is a light stud wall (mass law gives more; leaks around doors give less).
WALL_LOSS_DB = 35.0
NEIGHBOUR_PERIOD_S = 1.0
# How far from the neighbour's beacon (through the wall) the listener is, and how loud
# that beacon is (dB SPL at 1 m: a 10 m beacon over a 40 dB SPL floor).
NEIGHBOUR_DISTANCE_M = 6.0
NEIGHBOUR_SOURCE_DB_SPL = 65.0
# Seconds of the stationary mix measured to set the band floor (its level is steady;
# 5 s holds the estimate to ~0.1 dB).
FLOOR_EXCERPT_S = 5.0


class NoiseKind(StrEnum):
    """The kinds of noise the library makes."""

    BABBLE = "babble"
    MUSIC = "music"
    HVAC = "hvac"
    CLATTER = "clatter"
    NEIGHBOUR = "neighbour"
    BAND = "band"  # stationary in-band ambience used to set a stated floor


def _unit(x: np.ndarray) -> np.ndarray:
    """Scale to unit RMS (silence stays silence)."""
    rms = float(np.sqrt(np.mean(x**2)))
    return x / rms if rms > 0 else x


def _coloured(
    n: int, rng: np.random.Generator, sample_rate: int, slope_db_oct: float
) -> np.ndarray:
    """Gaussian noise whose spectrum falls ``slope_db_oct`` per octave (0 = white).

    Made at a fast FFT length and cut: a minute at 48 kHz can have a large prime factor,
    which makes a plain FFT of exactly ``n`` samples ~50x slower.
    """
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1.0 / sample_rate)
    f[0] = f[1]
    spec *= (f / f[1]) ** (slope_db_oct / (20.0 * math.log10(2.0)))
    return sp_fft.irfft(spec, m)[:n]


def babble(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Crowd babble: speech-shaped noise gated by each talker's syllable envelope.

    Speech carries nothing useful above ~6 kHz, so the talkers are made at a quarter of
    the sample rate and upsampled once (4x less filtering work for a minute of audio).
    """
    decimation = BABBLE_DECIMATION
    low_rate = sample_rate / decimation
    m = n // decimation + 1
    b, a = signal.butter(2, SPEECH_CORNER_HZ, fs=low_rate)
    hp_b, hp_a = signal.butter(2, 100.0, btype="highpass", fs=low_rate)
    t = np.arange(m) / low_rate
    total = np.zeros(m)
    for _ in range(BABBLE_TALKERS):
        rate = SYLLABLE_RATE_HZ * rng.uniform(0.7, 1.3)
        envelope = np.clip(np.sin(2 * math.pi * rate * t + rng.uniform(0, 2 * math.pi)), 0, None)
        total += rng.standard_normal(m) * envelope * rng.uniform(0.5, 1.0)
    voice = signal.lfilter(hp_b, hp_a, signal.lfilter(b, a, total))
    return _unit(signal.resample_poly(voice, decimation, 1)[:n])


def music(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like: wavetable notes with harmonics (to ~10 kHz) plus hi-hat ticks."""
    table_len = 2048
    phase = np.arange(table_len) / table_len
    table = sum(np.sin(2 * math.pi * k * phase) / k for k in range(1, HARMONICS + 1))
    out = np.zeros(n)
    step = int(NOTE_INTERVAL_S * sample_rate)
    for start in range(0, n, step):
        length = min(n - start, int(step * rng.uniform(1.0, 2.5)))
        freq = 220.0 * 2.0 ** (rng.integers(0, 24) / 12.0)
        idx = (np.arange(length) * freq / sample_rate * table_len).astype(np.int64) % table_len
        decay = np.exp(-np.arange(length) / (0.5 * sample_rate))
        out[start : start + length] += table[idx] * decay
    ticks = rng.random(n) < HIHAT_RATE_HZ / sample_rate
    hp_b, hp_a = signal.butter(4, 7000.0, btype="highpass", fs=sample_rate)
    burst_len = int(5 * HIHAT_DECAY_S * sample_rate)
    hihat = signal.lfilter(
        hp_b,
        hp_a,
        rng.standard_normal(burst_len)
        * np.exp(-np.arange(burst_len) / (HIHAT_DECAY_S * sample_rate)),
    )
    out += 0.3 * signal.oaconvolve(ticks.astype(float), hihat)[:n]
    return _unit(out)


def hvac(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """HVAC: brown-ish rumble, blade-pass hum and a faint broadband diffuser hiss."""
    # Rumble (-6 dB/octave) and hiss (-3 dB/octave) shaped in one FFT pass: the sum of
    # the two amplitude responses, 20 dB apart at the bottom of the spectrum.
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1.0 / sample_rate)
    f[0] = f[1]
    octaves = np.log2(f / f[1])
    spec *= 10.0 ** (-6.0 * octaves / 20.0) + 0.1 * 10.0 ** (-3.0 * octaves / 20.0)
    noise = _unit(sp_fft.irfft(spec, m)[:n])
    t = np.arange(n) / sample_rate
    hum = math.sqrt(2) * np.sin(2 * math.pi * HVAC_HUM_HZ * t)
    return _unit(noise + 0.3 * hum)


def clatter(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Shopping-cart clatter: random impacts ringing metal modes up to 22 kHz."""
    out = np.zeros(n)
    impacts = rng.random(n) < CLATTER_RATE_HZ / sample_rate
    for start in np.nonzero(impacts)[0]:
        decay_s = rng.uniform(*CLATTER_DECAY_RANGE_S)
        length = min(n - start, int(5 * decay_s * sample_rate))
        t = np.arange(length) / sample_rate
        freqs = rng.uniform(*CLATTER_MODE_RANGE_HZ, size=CLATTER_MODES)
        freqs = freqs[freqs < sample_rate / 2.0]
        ring = np.sin(
            2 * math.pi * np.outer(t, freqs) + rng.uniform(0, 2 * math.pi, freqs.size)
        ).sum(axis=1)
        out[start : start + length] += ring * np.exp(-t / decay_s) * rng.uniform(0.3, 1.0)
    if not out.any():
        return out
    return _unit(out)


def band_noise(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary Gaussian noise confined to the beacon band (unit RMS)."""
    sos = signal.butter(
        8,
        [BAND_LOW_HZ - 500.0, BAND_HIGH_HZ + 500.0],
        btype="bandpass",
        fs=sample_rate,
        output="sos",
    )
    return _unit(signal.sosfilt(sos, rng.standard_normal(n)))


FrameSource = Callable[[int, int], np.ndarray]
"""``(payload, sample_rate) -> samples`` of one beacon frame at 0 dBFS."""


def _modem_frame(payload: int, sample_rate: int) -> np.ndarray:
    """One real modem frame at 0 dBFS peak."""
    from edge.modem.synth import synthesize_frame  # the modem lands separately

    return np.asarray(synthesize_frame(payload, sample_rate, 0.0), dtype=float)


def neighbour(
    n: int, sample_rate: int, rng: np.random.Generator, frame_source: FrameSource = _modem_frame
) -> np.ndarray:
    """A neighbour store's beacon through a wall: its frames, every second, random codes.

    Unlike the other kinds it is returned at its physical level relative to a 0 dBFS
    emitter heard at 1 m, minus ``WALL_LOSS_DB`` (not normalised to unit RMS).
    """
    out = np.zeros(n)
    period = int(NEIGHBOUR_PERIOD_S * sample_rate)
    short_id = int(rng.integers(0, 1 << 17))
    for start in range(int(rng.integers(0, period)), n, period):
        payload = (short_id << 30) | int(rng.integers(0, 1 << 30))
        frame = frame_source(payload, sample_rate)[: n - start]
        out[start : start + frame.size] += frame
    return out * 10.0 ** (-WALL_LOSS_DB / 20.0)


_GENERATORS: dict[NoiseKind, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    NoiseKind.BABBLE: babble,
    NoiseKind.MUSIC: music,
    NoiseKind.HVAC: hvac,
    NoiseKind.CLATTER: clatter,
    NoiseKind.BAND: band_noise,
}

# A busy store at the reference microphone (broadband dB SPL): conversation at a few
# metres, background music, air conditioning, an aisle with carts.
DEFAULT_LEVELS_DB_SPL: dict[NoiseKind, float] = {
    NoiseKind.BABBLE: 62.0,
    NoiseKind.MUSIC: 58.0,
    NoiseKind.HVAC: 50.0,
    NoiseKind.CLATTER: 55.0,
}


@dataclass(frozen=True)
class NoiseScene:
    """A mix of noise kinds at stated broadband levels, optionally topped up to a band floor.

    ``band_floor_db_spl``: when set, stationary in-band noise is added so that the
    stationary part (everything but clatter and neighbours) has this 18-20 kHz level.
    """

    levels_db_spl: dict[NoiseKind, float] = field(
        default_factory=lambda: dict(DEFAULT_LEVELS_DB_SPL)
    )
    band_floor_db_spl: float | None = None
    neighbour_frame_source: FrameSource | None = None

    def render(self, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples of the scene in reference-microphone units (float64)."""
        stationary = np.zeros(n)
        transient = np.zeros(n)
        for kind, level in self.levels_db_spl.items():
            scale = dbfs_to_rms(db_spl_to_mic_dbfs(level))
            if kind is NoiseKind.NEIGHBOUR:
                # ``level`` is the neighbour beacon's source level (dB SPL at 1 m) on its
                # side of the wall; the listener is NEIGHBOUR_DISTANCE_M beyond the wall.
                source = self.neighbour_frame_source or _modem_frame
                at_1m = 10.0 ** ((level - MIC_FULL_SCALE_DB_SPL) / 20.0)
                spread = 1.0 / NEIGHBOUR_DISTANCE_M
                transient += neighbour(n, sample_rate, rng, source) * at_1m * spread
            elif kind is NoiseKind.CLATTER:
                transient += _GENERATORS[kind](n, sample_rate, rng) * scale
            else:
                stationary += _GENERATORS[kind](n, sample_rate, rng) * scale
        if self.band_floor_db_spl is not None:
            # The stationary part is measured on an excerpt: its band level is steady.
            excerpt = min(n, int(FLOOR_EXCERPT_S * sample_rate))
            target = dbfs_to_rms(db_spl_to_mic_dbfs(self.band_floor_db_spl)) ** 2
            have = band_power(stationary[:excerpt], sample_rate)
            if have > target:
                log.warning("scene already exceeds the requested band floor; not topped up")
            else:
                band = band_noise(n, sample_rate, rng)
                scale = math.sqrt((target - have) / band_power(band[:excerpt], sample_rate))
                stationary += band * scale
        return stationary + transient


def quiet_floor(band_floor_db_spl: float) -> NoiseScene:
    """Only stationary in-band noise at ``band_floor_db_spl`` (for calibration)."""
    return NoiseScene(levels_db_spl={}, band_floor_db_spl=band_floor_db_spl)


def store_scene(
    band_floor_db_spl: float, with_clatter: bool = True, with_neighbour: bool = False
) -> NoiseScene:
    """The default busy store with its stationary band level set to ``band_floor_db_spl``.

    ``with_neighbour`` adds the next-door store's beacon heard through the wall.
    """
    levels = dict(DEFAULT_LEVELS_DB_SPL)
    if not with_clatter:
        levels.pop(NoiseKind.CLATTER)
    if with_neighbour:
        levels[NoiseKind.NEIGHBOUR] = NEIGHBOUR_SOURCE_DB_SPL
    return NoiseScene(levels_db_spl=levels, band_floor_db_spl=band_floor_db_spl)


@dataclass(frozen=True)
class NoiseBed:
    """A stretch of a scene rendered once; each visit takes a seeded slice (wrapping).

    Every phone in one store hears the same background, so a store simulation renders it
    once instead of once per phone (noise synthesis is ~40 % of rendering a visit).
    """

    samples: np.ndarray
    sample_rate: int

    @classmethod
    def of(
        cls, scene: NoiseScene, seconds: float, sample_rate: int, rng: np.random.Generator
    ) -> NoiseBed:
        """Render ``seconds`` of ``scene``."""
        return cls(scene.render(int(seconds * sample_rate), sample_rate, rng), sample_rate)

    def render(self, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples from a random offset (same interface as :meth:`NoiseScene.render`)."""
        if sample_rate != self.sample_rate:
            raise ValueError(f"noise bed is at {self.sample_rate} Hz, asked for {sample_rate}")
        start = int(rng.integers(0, self.samples.size))
        return np.take(self.samples, np.arange(start, start + n), mode="wrap")
