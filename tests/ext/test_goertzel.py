"""The compiled Goertzel bank against its NumPy twin, and its input contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from ext.reference import goertzel_bank as reference_bank

RATES = (44100.0, 48000.0)


@pytest.mark.parametrize("rate", RATES)
def test_matches_reference_on_random_input(rng: np.random.Generator, rate: float) -> None:
    for n in (1, 17, 441, 960, 4800):
        x = rng.standard_normal(n).astype(np.float32)
        freqs = rng.uniform(17000, 21000, size=12)
        fast = ext.goertzel_bank(x, freqs, rate)
        slow = reference_bank(x, freqs, rate)
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9 * n)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=2048),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    scale=st.floats(min_value=1e-6, max_value=1.0),
)
def test_matches_reference_property(n: int, seed: int, scale: float) -> None:
    g = np.random.default_rng(seed)
    x = (scale * g.standard_normal(n)).astype(np.float32)
    freqs = g.uniform(100, 23000, size=5)
    np.testing.assert_allclose(
        ext.goertzel_bank(x, freqs, 48000.0),
        reference_bank(x, freqs, 48000.0),
        rtol=1e-8,
        atol=1e-10 * n * scale * scale + 1e-30,
    )


def test_tone_lands_in_its_bin() -> None:
    rate, n = 48000.0, 960
    t = np.arange(n) / rate
    x = np.sin(2 * np.pi * 18750.0 * t).astype(np.float32)
    power = ext.goertzel_bank(x, [18250.0, 18750.0, 19250.0], rate)
    assert int(np.argmax(power)) == 1
    # A full-scale sine over n samples has |X|^2 = (n/2)^2 at its own frequency.
    assert power[1] == pytest.approx((n / 2) ** 2, rel=1e-3)
    assert power[0] < power[1] * 1e-3


def test_refuses_wrong_dtype_and_shape() -> None:
    with pytest.raises(TypeError, match="float32"):
        ext.goertzel_bank(np.zeros(10, dtype=np.float64), [1000.0], 48000.0)
    with pytest.raises(TypeError, match="1-D"):
        ext.goertzel_bank(np.zeros((2, 5), dtype=np.float32), [1000.0], 48000.0)


def test_refuses_bad_frequencies_and_rate() -> None:
    x = np.zeros(10, dtype=np.float32)
    with pytest.raises(ValueError, match="Nyquist"):
        ext.goertzel_bank(x, [25000.0], 48000.0)
    with pytest.raises(ValueError, match="positive"):
        ext.goertzel_bank(x, [1000.0], 0.0)


def test_missing_build_fails_loudly_without_fallback(tmp_path) -> None:
    """With the compiled module absent, importing the kernel names the fix."""
    import pathlib

    src = pathlib.Path(ext.__file__).parent
    shadow = tmp_path / "ext"
    shadow.mkdir()
    for name in ("__init__.py", "reference.py"):
        (shadow / name).write_text((src / name).read_text())
    # -S: no site-packages, so the editable install's finder cannot supply the real
    # ext/ and only the shadow copy (without the compiled module) is importable.
    code = "import ext\ntry:\n    ext.goertzel_bank\nexcept ImportError as e:\n    print(e)\n"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert "not built" in out.stdout
    assert "pip install -e ." in out.stdout
