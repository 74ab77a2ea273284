"""Audio inputs: arrays and WAV files in order, the simulated room, overruns, missing devices."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.agent.agent import Agent
from edge.audio.blockqueue import BlockQueue
from edge.audio.devices import NO_DEVICE_HINT, AudioUnavailable, load_sounddevice
from edge.audio.sim import SimAudio
from edge.audio.sources import ArraySource, WavSource
from edge.modem.wav import WavError, write_wav
from tests.edge.agent.brokers import wait_for

REPO = Path(__file__).resolve().parents[3]


def _drain(blocks: BlockQueue) -> list[np.ndarray]:
    out = []
    while (block := blocks.get(timeout_s=5)) is not None:
        out.append(block)
    return out


def test_array_source_delivers_every_sample_in_order_then_ends(rng: np.random.Generator) -> None:
    samples = rng.standard_normal(10_000).astype(np.float32)
    source = ArraySource(samples, 48000, block_frames=1024)
    blocks = BlockQueue(4)  # smaller than the input: a paced source waits, never drops
    source.start(blocks)
    got = _drain(blocks)
    assert np.array_equal(np.concatenate(got), samples)
    assert blocks.overruns == 0 and source.finished


def test_wav_source_reads_the_file_and_bad_files_say_why(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    samples = (rng.standard_normal(4800) * 0.1).astype(np.float32)
    write_wav(tmp_path / "a.wav", samples, 44100)
    source = WavSource(tmp_path / "a.wav")
    assert source.sample_rate == 44100
    blocks = BlockQueue(8)
    source.start(blocks)
    assert np.allclose(np.concatenate(_drain(blocks)), samples, atol=1e-4)
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(WavError, match="bad.wav"):
        WavSource(tmp_path / "bad.wav")


def test_a_slow_detector_means_counted_overruns_never_a_crash() -> None:
    room = SimAudio(48000, block_frames=480)  # a block every 10 ms, like a sound card
    blocks = BlockQueue(3)
    room.start(blocks)
    try:
        wait_for(lambda: blocks.overruns >= 5, what="overruns with nobody reading")
    finally:
        room.stop()
    assert blocks.qsize() == 3  # the queue stayed bounded


def test_sim_room_loops_the_emitter_into_the_input() -> None:
    room = SimAudio(48000, noise_dbfs=-90.0, loop_gain_db=0.0, block_frames=256)
    tone = np.full(300, 0.5, np.float32)
    room.play(tone)
    first, second = room._next_block(), room._next_block()
    assert np.allclose(first, 0.5, atol=1e-3) and np.allclose(second[:44], 0.5, atol=1e-3)
    assert np.all(np.abs(second[44:]) < 1e-3)


def test_missing_portaudio_becomes_the_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libportaudio2, importing sounddevice raises OSError (AUDIO.md)."""
    real_import = builtins.__import__

    def no_portaudio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(AudioUnavailable, match=NO_DEVICE_HINT):
        load_sounddevice()


def test_edge_run_without_a_sound_server_says_use_wav_or_sim(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(
        '[edge]\nnode_id = "store-0001-n1"\npassword = "pw-0123456789"\n'
        f'data_dir = "{tmp_path / "node"}"\nbroker_url = "mqtt://127.0.0.1:1"\n'
    )
    empty = tmp_path / "no-sound-server"
    empty.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(empty)}
    env.pop("PULSE_SERVER", None)
    out = subprocess.run(
        [sys.executable, "-m", "storewave", "edge", "run", "--config", str(tmp_path / "node.toml")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert NO_DEVICE_HINT in out.stderr and "Traceback" not in out.stderr


def test_a_live_input_that_stops_delivering_is_reopened(
    make_agent: Callable[..., Agent],
) -> None:
    room = SimAudio(48000)
    agent = make_agent(source=room, input_stall_s=0.3)
    agent.start()
    wait_for(lambda: agent.blocks_seen > 10, what="blocks from the simulated card")
    room.stop()  # the card goes quiet, as when a USB device is unplugged
    wait_for(lambda: agent.input_restarts >= 1, what="the input reopened")
    seen = agent.blocks_seen
    wait_for(lambda: agent.blocks_seen > seen + 10, what="blocks flowing again")
