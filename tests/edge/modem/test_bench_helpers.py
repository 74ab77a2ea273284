"""The benchmark's arithmetic and one tiny real trial (no timing asserted anywhere)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.modem import bench


def test_half_point_interpolates() -> None:
    curve = bench.Curve("x", 1, [0, -1, -2, -3], [1.0, 0.8, 0.2, 0.0])
    assert curve.half_point() == pytest.approx(-1.5)
    assert curve.at(-2) == 0.2 and curve.at(5) is None
    assert bench.Curve("y", 1, [0, -1], [0.4, 0.1]).half_point() is None
    assert bench.Curve("z", 1, [0, -1], [1.0, 0.9]).half_point() == -1


def test_one_trial_each_channel() -> None:
    rng = np.random.default_rng(1)
    for impaired in (False, True):
        ok, wrong = bench.run_trial(*bench.our_codec(), 6.0, impaired, rng)
        assert ok and wrong == 0


def test_speed_vs_ggwave_takes_the_fastest_protocol_per_condition() -> None:
    theirs = {"a": {"noise_only": 3000.0, "with_frames": 100.0},
              "b": {"noise_only": 2000.0, "with_frames": 1500.0}}
    out = bench.speed_vs_ggwave({"noise_only": 4500.0, "with_frames": 1200.0}, theirs)
    assert out["noise_only"] == {"ours": 4500.0, "ggwave": 3000.0, "ggwave_protocol": "a",
                                 "ratio": 1.5}
    assert out["with_frames"]["ggwave_protocol"] == "b"
    assert out["with_frames"]["ratio"] == pytest.approx(0.8)
