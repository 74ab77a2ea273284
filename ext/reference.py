"""Pure-NumPy twins of the Cython kernels: the same algorithms, for tests and for reading."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def goertzel_bank(
    x: npt.NDArray[np.float32], freqs_hz: npt.ArrayLike, sample_rate: float
) -> npt.NDArray[np.float64]:
    """Power ``|X(f)|^2`` of ``x`` at each frequency, same contract as ``ext._goertzel``.

    Evaluates the DTFT directly (a matrix of complex exponentials) rather than running
    the recurrence, so the test that holds the two together checks the algorithm, not
    a transcription of it.
    """
    arr = np.asarray(x)
    if arr.dtype != np.float32 or arr.ndim != 1:
        raise TypeError(f"x must be a 1-D float32 array, got {arr.dtype} with shape {arr.shape}")
    freqs = np.asarray(freqs_hz, dtype=np.float64)
    n = np.arange(arr.shape[0], dtype=np.float64)
    # Goertzel's output equals |sum x[n] e^{-jwn}|^2 up to a phase factor that the
    # magnitude drops, with the final sample counted once (the recurrence ends at n-1).
    basis = np.exp(-2j * np.pi * np.outer(freqs, n) / sample_rate)
    spectrum = basis @ arr.astype(np.float64)
    return np.abs(spectrum) ** 2
