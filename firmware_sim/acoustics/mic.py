"""Phone microphone frequency response: flat, then rolling off above ~18 kHz."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

# Linear-phase FIR length: 127 taps at 48 kHz resolve a roll-off that changes over
# ~1 kHz without colouring the band below; odd so the delay is a whole sample count.
FIR_TAPS = 127


@dataclass(frozen=True, slots=True)
class MicResponse:
    """Magnitude response: 0 dB below ``rolloff_start_hz``, then ``slope_db_per_khz`` down.

    The reference phone (defaults) is -2 dB at 18.5 kHz, -4 dB at 19 kHz and -8 dB at
    20 kHz: the middle of what MEMS phone microphones behind an acoustic port show.
    """

    rolloff_start_hz: float = 18_000.0
    slope_db_per_khz: float = 4.0

    def gain_db(self, frequency_hz: float | np.ndarray) -> float | np.ndarray:
        """The response in dB at ``frequency_hz``."""
        f = np.asarray(frequency_hz, dtype=float)
        gain = -self.slope_db_per_khz * np.maximum(f - self.rolloff_start_hz, 0.0) / 1000.0
        return float(gain) if gain.ndim == 0 else gain

    def band_gain_db(self, low_hz: float, high_hz: float) -> float:
        """Power-average gain over a band (what a band level measurement sees)."""
        f = np.linspace(low_hz, high_hz, 201)
        return float(10.0 * np.log10(np.mean(10.0 ** (np.asarray(self.gain_db(f)) / 10.0))))

    def fir(self, sample_rate: int) -> np.ndarray:
        """Linear-phase FIR taps realising the response at ``sample_rate``."""
        nyquist = sample_rate / 2.0
        freqs = np.linspace(0.0, nyquist, 257)
        gains = 10.0 ** (np.asarray(self.gain_db(freqs)) / 20.0)
        return signal.firwin2(FIR_TAPS, freqs, gains, fs=sample_rate)

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Filter ``samples`` through the microphone (delay-compensated, same length)."""
        return signal.oaconvolve(samples, self.fir(sample_rate), mode="same")


FLAT_MIC = MicResponse(rolloff_start_hz=1e9, slope_db_per_khz=0.0)
REFERENCE_PHONE_MIC = MicResponse()
