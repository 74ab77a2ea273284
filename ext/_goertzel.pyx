# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Goertzel filter bank over a float32 buffer (the decoder's innermost loop)."""

import numpy as np

cimport numpy as cnp

cnp.import_array()


cdef void _goertzel_bank(
    const float[::1] x,
    const double[::1] coeff,
    double[::1] power,
) noexcept nogil:
    """Power of x at each bin, |X(f)|^2, by the Goertzel recurrence (float64 state)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t k, i
    cdef double s0, s1, s2, c
    for k in range(coeff.shape[0]):
        c = coeff[k]
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            s0 = x[i] + c * s1 - s2
            s2 = s1
            s1 = s0
        power[k] = s1 * s1 + s2 * s2 - c * s1 * s2


def goertzel_bank(x, freqs_hz, double sample_rate):
    """Signal power at each target frequency of a float32 block.

    Parameters
    ----------
    x : ndarray of float32, shape (n,)
        Audio block, C-contiguous. Any other dtype is refused rather than copied
        silently, so callers keep the hot path allocation-free.
    freqs_hz : array_like of float, shape (k,)
        Target frequencies in Hz, each in (0, sample_rate / 2).
    sample_rate : float
        Sample rate of ``x`` in Hz.

    Returns
    -------
    ndarray of float64, shape (k,)
        ``|X(f)|^2`` for each frequency: the squared magnitude of the block's DTFT
        evaluated at ``f`` (no window, no normalisation).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    arr = np.asarray(x)
    if arr.dtype != np.float32 or arr.ndim != 1:
        raise TypeError(f"x must be a 1-D float32 array, got {arr.dtype} with shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    freqs = np.ascontiguousarray(freqs_hz, dtype=np.float64)
    if freqs.ndim != 1:
        raise ValueError("freqs_hz must be 1-D")
    if freqs.size and (freqs.min() <= 0 or freqs.max() >= sample_rate / 2):
        raise ValueError("every frequency must lie strictly between 0 and the Nyquist frequency")
    coeff = 2.0 * np.cos(2.0 * np.pi * freqs / sample_rate)
    power = np.empty(freqs.shape[0], dtype=np.float64)
    cdef const float[::1] xv = arr
    cdef const double[::1] cv = coeff
    cdef double[::1] pv = power
    with nogil:
        _goertzel_bank(xv, cv, pv)
    return power
