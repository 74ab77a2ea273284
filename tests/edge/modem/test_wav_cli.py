"""WAV I/O errors and the encode/decode commands' output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from edge.modem.synth import synthesize_frame
from edge.modem.wav import WavError, read_wav, write_wav
from storewave.cli import app

runner = CliRunner()
PAYLOAD_HEX = "0123456789ab"


def test_write_read_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    x = (0.5 * rng.standard_normal(1000)).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, 44100)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 44100
    np.testing.assert_array_equal(x, y)


def test_int16_is_scaled(tmp_path: Path) -> None:
    wavfile.write(tmp_path / "i.wav", 48000, np.array([0, 16384, -32768], dtype=np.int16))
    y, _ = read_wav(tmp_path / "i.wav")
    np.testing.assert_allclose(y, [0.0, 0.5, -1.0])


def test_stereo_is_refused_unless_a_channel_is_picked(tmp_path: Path) -> None:
    data = np.stack([np.ones(100), -np.ones(100)], axis=1).astype(np.float32)
    wavfile.write(tmp_path / "s.wav", 48000, data)
    with pytest.raises(WavError, match="stereo"):
        read_wav(tmp_path / "s.wav")
    y, _ = read_wav(tmp_path / "s.wav", channel=1)
    assert (y == -1).all()
    with pytest.raises(WavError, match="channel 2 does not exist"):
        read_wav(tmp_path / "s.wav", channel=2)


def test_truncated_garbage_and_missing_files(tmp_path: Path) -> None:
    write_wav(tmp_path / "ok.wav", np.zeros(4000, np.float32), 48000)
    raw = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[:100])
    (tmp_path / "hdr.wav").write_bytes(raw[:30])
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all" * 10)
    with pytest.raises(WavError, match="truncated"):
        read_wav(tmp_path / "cut.wav")
    with pytest.raises(WavError, match="not a readable WAV"):
        read_wav(tmp_path / "hdr.wav")
    with pytest.raises(WavError, match="not a readable WAV"):
        read_wav(tmp_path / "junk.wav")
    with pytest.raises(WavError, match="no such file"):
        read_wav(tmp_path / "nope.wav")


def test_encode_then_decode_json(tmp_path: Path) -> None:
    out = tmp_path / "f.wav"
    res = runner.invoke(app, ["encode", PAYLOAD_HEX, "-o", str(out), "--rate", "44100"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["decode", str(out), "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 1
    assert lines[0]["payload"] == PAYLOAD_HEX
    assert set(lines[0]) == {"payload", "t", "snr_db", "confidence"}
    assert lines[0]["t"] == pytest.approx(0.1, abs=0.001)


def test_encode_bad_input_exits_2(tmp_path: Path) -> None:
    for args in (["xyz"], ["0123"], [PAYLOAD_HEX, "--rate", "8000"], [PAYLOAD_HEX, "--level", "3"]):
        res = runner.invoke(app, ["encode", *args, "-o", str(tmp_path / "x.wav")])
        assert res.exit_code == 2, (args, res.output)
    assert not (tmp_path / "x.wav").exists()


def test_decode_errors_and_silence(tmp_path: Path) -> None:
    wavfile.write(tmp_path / "r.wav", 16000, np.zeros(1600, np.float32))
    res = runner.invoke(app, ["decode", str(tmp_path / "r.wav")])
    assert res.exit_code == 2 and "unsupported sample rate" in res.output
    wave = synthesize_frame(0xABC, 48000, -6.0)
    stereo = np.stack([wave, wave], axis=1)
    wavfile.write(tmp_path / "s.wav", 48000, stereo)
    res = runner.invoke(app, ["decode", str(tmp_path / "s.wav")])
    assert res.exit_code == 2 and "stereo" in res.output
    write_wav(tmp_path / "quiet.wav", np.zeros(48000, np.float32), 48000)
    res = runner.invoke(app, ["decode", str(tmp_path / "quiet.wav")])
    assert res.exit_code == 0
    assert "no frames found" in res.output
    res = runner.invoke(app, ["decode", str(tmp_path / "missing.wav")])
    assert res.exit_code == 2 and "no such file" in res.output
