"""Frame layout: tone plan, symbol timing, preamble, and payload <-> tone-sequence mapping.

Modulation: noncoherent 16-FSK, 4 coded bits per symbol. Why: noncoherent detection
survives the random phase of reverberation, Doppler and clock offset with no carrier
tracking, and M=16 is the largest alphabet whose tones (at 1/T spacing for the 10 ms
integration window) fit the 18-20 kHz band with Doppler guard.

Tone plan: 16 tones 100 Hz apart centred on 19 kHz (18.25 ... 19.75 kHz); a 250 Hz
guard at each band edge absorbs +/-83 Hz of walking Doppler and +/-6 Hz of clock offset.
Symbol: 11 ms slot = 1 ms raised-cosine cross-fade + 10 ms flat tone; the receiver
integrates only the flat 10 ms, so early reflections up to 1 ms and +/-0.5 ms of
timing error cost nothing, and there are no clicks (no amplitude or phase jumps).
Frame: 8 preamble symbols (a Costas-like tone sequence: any time/frequency shift of it
matches itself in at most one symbol, so sync has no side peaks), then 37 data
symbols: 48 payload + 16 CRC + 10 tail bits through a 1024-state rate-2/4 convolutional
code, one tone per trellis step (see :mod:`edge.modem.fec`).
Airtime 45 x 11 ms + 1 ms = 496 ms; 48 payload bits per frame -> 97 bit/s net,
364 bit/s of channel bits (4 bits per 11 ms symbol).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.modem import fec

CARRIER_HZ = 19_000  # centre of the 18-20 kHz band; integer so the mixer phase is exact
N_TONES = 16
BITS_PER_SYMBOL = 4  # log2(N_TONES)
TONE_SPACING_HZ = 100.0  # = 1 / INTEGRATION_S: orthogonal tones over the integration window
RAMP_S = 0.001  # raised-cosine cross-fade between symbols (no clicks, absorbs echoes)
INTEGRATION_S = 0.010  # flat part of each symbol the receiver integrates
SYMBOL_S = RAMP_S + INTEGRATION_S
# Costas-like: distinct tones, adjacent hops >= 8 tones (reverb tails land elsewhere).
PREAMBLE_TONES = (6, 14, 0, 15, 4, 13, 1, 9)
N_PREAMBLE = len(PREAMBLE_TONES)
N_DATA = fec.N_SYMBOLS
N_SYMBOLS = N_PREAMBLE + N_DATA
FRAME_DURATION_S: float = N_SYMBOLS * SYMBOL_S + RAMP_S
BAND_LOW_HZ = 18_000.0
BAND_HIGH_HZ = 20_000.0
SUPPORTED_RATES = (44_100, 48_000)
NET_BIT_RATE = fec.PAYLOAD_BITS / FRAME_DURATION_S
CHANNEL_BIT_RATE = BITS_PER_SYMBOL / SYMBOL_S

assert fec.BITS_PER_SYMBOL == BITS_PER_SYMBOL
assert FRAME_DURATION_S <= 0.5


def tone_offsets_hz() -> npt.NDArray[np.float64]:
    """Offset of each tone from the carrier, in Hz (symmetric around 0)."""
    return (np.arange(N_TONES) - (N_TONES - 1) / 2) * TONE_SPACING_HZ


def tone_freqs_hz() -> npt.NDArray[np.float64]:
    """Absolute tone frequencies in Hz."""
    return CARRIER_HZ + tone_offsets_hz()


def data_symbols(payload: int) -> npt.NDArray[np.int64]:
    """Tone index of each of the N_DATA data symbols of ``payload``."""
    return fec.encode_symbols(payload)


def frame_symbols(payload: int) -> npt.NDArray[np.int64]:
    """Tone index of every symbol of the frame: preamble then data."""
    if not 0 <= payload < (1 << fec.PAYLOAD_BITS):
        raise ValueError("payload must be a 48-bit unsigned integer")
    return np.concatenate([np.array(PREAMBLE_TONES, dtype=np.int64), data_symbols(payload)])


def check_rate(sample_rate: int) -> None:
    """Raise ValueError unless the modem supports ``sample_rate``."""
    if sample_rate not in SUPPORTED_RATES:
        raise ValueError(
            f"unsupported sample rate {sample_rate} Hz: the modem works at "
            f"{' or '.join(str(r) for r in SUPPORTED_RATES)} Hz (resample first)"
        )
