"""WAV file I/O for the modem (``scipy.io.wavfile``), with clear errors for bad files.

Stereo policy: refused by default with a message that says so, because silently mixing
or picking a channel can hide a wiring fault; pass ``channel=N`` to take one channel.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile

# Full-scale values used to map integer PCM to [-1, 1).
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
_UINT8_OFFSET = 128.0


class WavError(ValueError):
    """A WAV file that cannot be used, with a message saying why."""


def read_wav(
    path: str | Path, *, channel: int | None = None
) -> tuple[npt.NDArray[np.float32], int]:
    """Read a PCM or float WAV as float32 mono in [-1, 1] and its sample rate.

    Raises WavError for a missing, truncated or malformed file, and for a multi-channel
    file unless ``channel`` picks one.
    """
    p = Path(path)
    if not p.is_file():
        raise WavError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():
            # scipy only warns when the data chunk is cut short; for us that is an error.
            warnings.simplefilter("error", wavfile.WavFileWarning)
            rate, data = wavfile.read(p)
    except wavfile.WavFileWarning as exc:
        raise WavError(f"{p}: truncated WAV file ({exc})") from None
    except (ValueError, EOFError, OSError, struct.error) as exc:
        raise WavError(f"{p}: not a readable WAV file ({exc})") from None
    if data.ndim == 2:
        if channel is None:
            raise WavError(
                f"{p}: stereo/multi-channel WAV ({data.shape[1]} channels); the modem needs "
                "mono: pick one with --channel N"
            )
        if not 0 <= channel < data.shape[1]:
            raise WavError(f"{p}: channel {channel} does not exist ({data.shape[1]} channels)")
        data = data[:, channel]
    if data.shape[0] == 0:
        raise WavError(f"{p}: the WAV file holds no samples (empty or truncated)")
    return _to_float(data, p), int(rate)


def _to_float(data: np.ndarray, p: Path) -> npt.NDArray[np.float32]:
    """Map PCM or float samples to float32 in [-1, 1]."""
    if data.dtype in _INT_SCALE:
        return (data.astype(np.float64) / _INT_SCALE[data.dtype]).astype(np.float32)
    if data.dtype == np.uint8:
        return ((data.astype(np.float64) - _UINT8_OFFSET) / _UINT8_OFFSET).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return np.nan_to_num(data.astype(np.float32))
    raise WavError(f"{p}: unsupported sample format {data.dtype}")


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int) -> None:
    """Write mono float samples as a 32-bit float WAV (no quantisation of quiet signals)."""
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim != 1:
        raise WavError(f"write_wav takes mono 1-D samples, got shape {arr.shape}")
    if rate <= 0:
        raise WavError(f"sample rate must be positive, got {rate}")
    wavfile.write(Path(path), int(rate), arr)
