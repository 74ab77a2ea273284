"""Audio outputs for the emitter: a sound card through PortAudio, or nothing."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import numpy as np

from edge.audio.devices import AudioUnavailable, load_sounddevice, resolve_device

log = logging.getLogger(__name__)

# When a frame starts does not matter to anyone, a glitch in it does: PortAudio's "high"
# output latency gives a busy CPU room to refill the buffer without an underrun.
_OUTPUT_LATENCY = "high"
# Silence after each frame so its last samples leave the buffer before the stream stops.
_TAIL_S = 0.05


class AudioSink(Protocol):
    """Plays mono float32 samples; returns once they are played (or queued to play)."""

    def play(self, samples: np.ndarray) -> None:
        """Play ``samples`` at the sink's sample rate."""


class SoundDeviceSink:
    """Plays through a named (or the default) output device."""

    def __init__(self, sample_rate: int, device: str | None = None) -> None:
        """Resolve the device now so a missing one fails at start, not at the first slot."""
        self.sample_rate = sample_rate
        self._sd = load_sounddevice()
        self._device = resolve_device(device, kind="output")
        self._lock = threading.Lock()

    def play(self, samples: np.ndarray) -> None:
        """Play ``samples`` and wait until done; device trouble becomes AudioUnavailable.

        A blocking write to a stream opened for the frame, not ``sounddevice.play``:
        measured on PulseAudio at 44.1 kHz, ``play`` returned after 50 ms of a 474 ms
        frame (ALSA underrun) and nothing was heard, while ``write`` played every frame.
        """
        tail = np.zeros(int(_TAIL_S * self.sample_rate), dtype=np.float32)
        data = np.concatenate([np.asarray(samples, dtype=np.float32), tail]).reshape(-1, 1)
        with self._lock:
            try:
                # Always pass the rate: the pulse device reports 44100 as its default.
                with self._sd.OutputStream(
                    device=self._device,
                    samplerate=self.sample_rate,
                    channels=1,
                    dtype="float32",
                    latency=_OUTPUT_LATENCY,
                ) as stream:
                    stream.write(data)
            except (self._sd.PortAudioError, ValueError) as exc:
                raise AudioUnavailable(f"cannot play: {exc}") from None


class NullSink:
    """Discards what it is given (a node that only listens); counts frames for tests."""

    def __init__(self) -> None:
        """Start with nothing played."""
        self.frames_played = 0

    def play(self, samples: np.ndarray) -> None:
        """Count and drop ``samples``."""
        self.frames_played += 1
