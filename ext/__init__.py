"""StoreWave's compiled Cython kernels, with loud failure when they were not built.

The kernels are the decoder's hot loops. A pure-NumPy twin of each lives in
``ext.reference`` for tests; it is never used as a silent fallback, because a decoder
that quietly runs 50x slower is a production incident, not a convenience.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BUILD_HINT = (
    "StoreWave's Cython extensions are not built (ext.{name} is missing). "
    "Build them with `make install` or `pip install -e .` in the project's venv; "
    "this needs Cython, NumPy and a C compiler."
)


def load_kernel(name: str) -> ModuleType:
    """Import the compiled module ``ext.<name>`` or raise ImportError saying how to build it."""
    try:
        return importlib.import_module(f"ext.{name}")
    except ImportError as exc:  # pragma: no cover - exercised by test_missing_build
        raise ImportError(BUILD_HINT.format(name=name)) from exc


def __getattr__(attr: str) -> object:
    """Expose the compiled kernels' public functions lazily (``ext.goertzel_bank``)."""
    if attr == "goertzel_bank":
        return load_kernel("_goertzel").goertzel_bank
    raise AttributeError(f"module 'ext' has no attribute {attr!r}")
