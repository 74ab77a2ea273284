"""Synthetic acoustic channel for modem tests and the benchmark (not the store simulator).

Everything here is deliberately simple and documented, so a figure measured with it can
be reproduced: AWGN scaled to an in-band (18-20 kHz) SNR, an exponential-decay room
impulse response, Doppler/clock offset as resampling, a linear-in-dB microphone
roll-off, hard clipping, and three kinds of non-beacon room sound.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, fftconvolve, firwin2, resample_poly, sosfilt

from edge.modem import frame

SPEED_OF_SOUND_M_S = 343.0
F32 = npt.NDArray[np.float32]
# RIR: the direct path then a diffuse tail starting after the first reflection (~3 ms,
# a surface about 1 m away), whose energy equals the direct path's (0 dB direct-to-
# reverberant ratio: a listener near the critical distance of a reverberant shop).
RIR_FIRST_REFLECTION_S = 0.003
RIR_DRR_DB = 0.0
# Roll-off filter length: long enough for a smooth dB-linear slope over 2 kHz.
ROLLOFF_TAPS = 255
ROLLOFF_START_HZ = 16_000.0  # the slope starts here and reaches its depth at 20 kHz


def in_band_power(x: npt.ArrayLike, sample_rate: int) -> float:
    """Mean power of ``x`` inside 18-20 kHz (FFT bins in the band, Parseval-scaled)."""
    arr = np.asarray(x, dtype=np.float64)
    spec = np.fft.rfft(arr)
    f = np.fft.rfftfreq(arr.shape[0], 1.0 / sample_rate)
    band = (f >= frame.BAND_LOW_HZ) & (f <= frame.BAND_HIGH_HZ)
    return float(2.0 * np.sum(np.abs(spec[band]) ** 2) / arr.shape[0] ** 2)


def awgn_for_snr(
    signal_power: float, snr_db: float, n: int, sample_rate: int, rng: np.random.Generator
) -> F32:
    """White noise whose 18-20 kHz power is ``signal_power / 10**(snr_db/10)``."""
    band_fraction = (frame.BAND_HIGH_HZ - frame.BAND_LOW_HZ) / (sample_rate / 2.0)
    sigma2 = signal_power / 10.0 ** (snr_db / 10.0) / band_fraction
    return (np.sqrt(sigma2) * rng.standard_normal(n)).astype(np.float32)


def exponential_rir(
    rt60_s: float, sample_rate: int, rng: np.random.Generator, drr_db: float = RIR_DRR_DB
) -> npt.NDArray[np.float64]:
    """Unit direct path + Gaussian tail decaying 60 dB in ``rt60_s``, at ``drr_db``."""
    n = int(rt60_s * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60_s)
    tail[t < RIR_FIRST_REFLECTION_S] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    tail[0] = 1.0
    return tail


def reverb(x: npt.ArrayLike, rir: npt.NDArray[np.float64]) -> F32:
    """Convolve with a room impulse response (output as long as the input plus the tail)."""
    return fftconvolve(np.asarray(x, dtype=np.float64), rir).astype(np.float32)


def time_scale(x: npt.ArrayLike, scale: float) -> F32:
    """Doppler / clock offset: frequencies x(1+scale), durations /(1+scale).

    Implemented as band-limited resampling by a rational close to 1/(1+scale) (scipy's
    polyphase resampler), exact to 1e-6 relative.
    """
    from fractions import Fraction

    ratio = Fraction(1.0 / (1.0 + scale)).limit_denominator(2_000)
    y = resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator)
    return y.astype(np.float32)


def doppler_scale(speed_m_s: float) -> float:
    """Frequency scale of a source approached at ``speed_m_s`` (positive = closing)."""
    return speed_m_s / SPEED_OF_SOUND_M_S


def rolloff(x: npt.ArrayLike, depth_db: float, sample_rate: int) -> F32:
    """Microphone roll-off: flat to 16 kHz, then a dB-linear slope to -depth_db at 20 kHz."""
    nyq = sample_rate / 2.0
    freqs = [0.0, ROLLOFF_START_HZ, frame.BAND_HIGH_HZ, nyq]
    gains = [1.0, 1.0, 10.0 ** (-depth_db / 20.0), 10.0 ** (-depth_db / 20.0)]
    taps = firwin2(ROLLOFF_TAPS, freqs, gains, fs=sample_rate)
    delay = (ROLLOFF_TAPS - 1) // 2
    y = np.convolve(np.asarray(x, dtype=np.float64), taps)[delay : delay + len(x)]
    return y.astype(np.float32)


def clip(x: npt.ArrayLike, level: float) -> F32:
    """Hard clipping at +/- ``level`` (an overdriven microphone preamp)."""
    return np.clip(np.asarray(x, dtype=np.float32), -level, level)


def speech_like(n: int, sample_rate: int, rng: np.random.Generator) -> F32:
    """Syllable-rate (4 Hz) modulated, formant-shaped noise with sibilant bursts to 16 kHz."""
    t = np.arange(n) / sample_rate
    voiced = sosfilt(butter(4, [150, 3500], "bandpass", fs=sample_rate, output="sos"),
                     rng.standard_normal(n))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.3)), 0, None) ** 2
    hiss = sosfilt(butter(4, [4000, 16000], "bandpass", fs=sample_rate, output="sos"),
                   rng.standard_normal(n))
    bursts = (rng.random(n // 2400 + 1) < 0.15).repeat(2400)[:n]
    return (0.3 * voiced * envelope + 0.1 * hiss * bursts).astype(np.float32)


def music_like(n: int, sample_rate: int, rng: np.random.Generator) -> F32:
    """Chords of harmonic tones (up to the 30th harmonic, past 18 kHz) changing every 0.5 s."""
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    seg = int(0.5 * sample_rate)
    for lo in range(0, n, seg):
        hi = min(n, lo + seg)
        for _ in range(3):
            f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
            for h in range(1, 31):
                if f0 * h < sample_rate / 2 - 500:
                    out[lo:hi] += np.sin(2 * np.pi * f0 * h * t[lo:hi] + rng.uniform(0, 6.3)) / h
    return (0.05 * out).astype(np.float32)


def clatter(n: int, sample_rate: int, rng: np.random.Generator) -> F32:
    """Broadband clicks (cutlery, hangers, tills): decaying noise bursts, 5 per second."""
    out = np.zeros(n)
    burst = int(0.02 * sample_rate)
    decay = np.exp(-np.arange(burst) / (0.003 * sample_rate))
    for start in rng.integers(0, max(n - burst, 1), size=max(1, int(5 * n / sample_rate))):
        out[start : start + burst] += rng.uniform(0.1, 0.9) * decay * rng.standard_normal(burst)
    return out.astype(np.float32)
