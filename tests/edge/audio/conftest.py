"""Audio fixtures: PulseAudio with a null sink (shared/AUDIO.md), plus the agent suites' broker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _note_not_run
from tests.edge.agent.conftest import broker, hub, make_agent, node_options  # noqa: F401

# How long PulseAudio may take to start and to exit when asked.
_PULSE_TIMEOUT_S = 20.0
_PULSE_BINARIES = ("pulseaudio", "pactl", "parec")


def _reinit_portaudio() -> None:
    """Make PortAudio enumerate devices again (it lists them once, at initialisation)."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def _wait_gone(pid: int) -> None:
    """Wait (bounded) until process ``pid`` has exited."""
    deadline = time.monotonic() + _PULSE_TIMEOUT_S
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


# Module scope: the server (and the environment variables pointing at it) exist only
# while the real-audio module runs, so no other suite in the session sees a sound card.
@pytest.fixture(scope="module")
def pulse_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PulseAudio null sink named ``loop``; yields the sounddevice device name ``pulse``.

    Skips (loudly) only when the binaries are absent; if they are here and PulseAudio
    will not start, the test fails.
    """
    missing = [b for b in _PULSE_BINARIES if shutil.which(b) is None]
    if missing:
        reason = f"PulseAudio binaries missing ({', '.join(missing)}): REAL-AUDIO edge test NOT RUN"
        _note_not_run(reason)
        pytest.skip(reason)
    runtime = tmp_path_factory.mktemp("pulse-runtime")
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    started = subprocess.run(
        [
            "pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--disallow-exit",
            "-L", "module-native-protocol-unix",
            "-L", "module-null-sink sink_name=loop rate=48000 format=float32le channels=2",
        ],
        env=env, capture_output=True, text=True, timeout=_PULSE_TIMEOUT_S,
    )  # fmt: skip
    pid_file = runtime / "pulse" / "pid"
    if started.returncode != 0 or not pid_file.exists():
        pytest.fail(f"PulseAudio is installed but did not start: {started.stderr[-2000:]}")
    pulse_pid = int(pid_file.read_text().strip())
    reader: subprocess.Popen[bytes] | None = None
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    try:
        for args in (["set-default-sink", "loop"], ["set-default-source", "loop.monitor"]):
            subprocess.run(["pactl", *args], env=env, check=True, timeout=_PULSE_TIMEOUT_S)
        # Without a low-latency reader the null sink idles in 2 s blocks (AUDIO.md).
        reader = subprocess.Popen(
            ["parec", "--latency-msec=10", "--rate=48000", "--format=float32le",
             "--channels=1", "-d", "loop.monitor", "--raw"],
            env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        os.environ["PULSE_SERVER"] = f"unix:{runtime / 'pulse' / 'native'}"
        _reinit_portaudio()
        import sounddevice as sd

        names = [str(d["name"]) for d in sd.query_devices()]
        if "pulse" not in names:
            pytest.fail(f"PulseAudio runs but PortAudio lists no 'pulse' device: {names}")
        yield "pulse"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if reader is not None:
            reader.terminate()
            reader.wait(timeout=_PULSE_TIMEOUT_S)
        os.kill(pulse_pid, signal.SIGTERM)
        _wait_gone(pulse_pid)
        _reinit_portaudio()
