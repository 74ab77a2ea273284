"""Audio inputs for the detector: a sound card, a WAV file, an in-memory array, a simulator."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.audio.blockqueue import BlockQueue
from edge.audio.devices import AudioUnavailable, load_sounddevice, resolve_device

log = logging.getLogger(__name__)

# 1024 frames is 21 ms at 48 kHz: short enough for low detection latency, long enough
# that Python-side per-block overhead stays a small share of one core.
DEFAULT_BLOCK_FRAMES = 1024
# How often a waiting file source re-checks for stop() while the queue is full.
_PUT_POLL_S = 0.2
# How long stop() waits for the delivering thread.
_JOIN_TIMEOUT_S = 5.0


class AudioSource(Protocol):
    """Something that pushes float32 mono blocks into a BlockQueue until stopped or done."""

    sample_rate: int

    def start(self, blocks: BlockQueue) -> None:
        """Begin delivering blocks (returns at once; delivery runs on its own thread)."""

    def stop(self) -> None:
        """Stop delivering blocks and release the device."""

    @property
    def finished(self) -> bool:
        """True once a finite source has delivered everything."""


class SoundDeviceSource:
    """Live capture from a named (or the default) input device through PortAudio."""

    def __init__(
        self,
        sample_rate: int,
        device: str | None = None,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
    ) -> None:
        """Prepare capture at ``sample_rate`` from the device whose name contains ``device``."""
        self.sample_rate = sample_rate
        self._device_name = device
        self._block_frames = block_frames
        self._stream: Any = None
        self._blocks: BlockQueue | None = None

    def _callback(self, indata: np.ndarray, frames: int, when: Any, status: Any) -> None:
        """PortAudio thread: copy the block out and hand it over without ever blocking."""
        assert self._blocks is not None
        if status.input_overflow:
            self._blocks.add_overruns(1)
        self._blocks.offer(indata[:, 0].copy())

    def start(self, blocks: BlockQueue) -> None:
        """Open and start the input stream; AudioUnavailable when there is no device."""
        sd = load_sounddevice()
        device = resolve_device(self._device_name, kind="input")
        self._blocks = blocks
        try:
            self._stream = sd.InputStream(
                device=device,
                channels=1,
                samplerate=self.sample_rate,  # always explicit: pulse reports 44100 by default
                blocksize=self._block_frames,
                dtype="float32",
                callback=self._callback,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioUnavailable(f"cannot open input device: {exc}") from None
        log.info("audio input started", extra={"device": str(device), "rate": self.sample_rate})

    def stop(self) -> None:
        """Stop and close the stream (safe to call twice)."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    @property
    def finished(self) -> bool:
        """A live device never finishes."""
        return False


class ArraySource:
    """Blocks cut from in-memory samples (or any iterator of blocks), then an end marker.

    ``realtime=True`` paces delivery like a sound card and drops blocks on a full queue
    (counted as overruns); ``False`` delivers as fast as the detector takes them.
    """

    def __init__(
        self,
        samples: np.ndarray | Iterator[np.ndarray],
        sample_rate: int,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        realtime: bool = False,
    ) -> None:
        """Wrap ``samples`` (mono float array, or an iterator of blocks) at ``sample_rate``."""
        self.sample_rate = sample_rate
        self._samples = samples
        self._block_frames = block_frames
        self._realtime = realtime
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _blocks_iter(self) -> Iterator[np.ndarray]:
        """The input cut into float32 blocks."""
        if isinstance(self._samples, np.ndarray):
            data = np.asarray(self._samples, dtype=np.float32)
            if data.ndim != 1:
                raise ValueError("ArraySource wants mono samples (1-D)")
            for start in range(0, len(data), self._block_frames):
                yield data[start : start + self._block_frames]
        else:
            for block in self._samples:
                yield np.asarray(block, dtype=np.float32)

    def _run(self, blocks: BlockQueue) -> None:
        """Deliver every block, paced or not, then the end marker."""
        next_due = time.monotonic()
        try:
            for block in self._blocks_iter():
                if self._stop.is_set():
                    break
                if self._realtime:
                    next_due += len(block) / self.sample_rate
                    self._stop.wait(max(0.0, next_due - time.monotonic()))
                    blocks.offer(block)
                else:
                    self._put_until_stopped(blocks, block)
        finally:
            self._done.set()
            self._put_until_stopped(blocks, None)

    def _put_until_stopped(self, blocks: BlockQueue, block: np.ndarray | None) -> None:
        """Wait for room (a file can wait for the detector), giving up only on stop()."""
        while not self._stop.is_set():
            try:
                blocks.put(block, timeout_s=_PUT_POLL_S)
                return
            except queue.Full:
                continue

    def start(self, blocks: BlockQueue) -> None:
        """Start delivering on a background thread."""
        self._thread = threading.Thread(target=self._run, args=(blocks,), name="audio-array")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop early and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_TIMEOUT_S)

    @property
    def finished(self) -> bool:
        """True once every block (and the end marker) was handed over."""
        return self._done.is_set()


class WavSource(ArraySource):
    """A WAV file read with the modem's reader (its WavError names what is wrong)."""

    def __init__(
        self, path: str | Path, block_frames: int = DEFAULT_BLOCK_FRAMES, realtime: bool = False
    ) -> None:
        """Read ``path`` now, so a bad file fails before the node starts."""
        from edge.modem.wav import read_wav

        # Channel 0 of a multi-channel file: the node has one microphone.
        samples, rate = read_wav(path, channel=0)
        data = np.asarray(samples, dtype=np.float32)
        super().__init__(data, int(rate), block_frames=block_frames, realtime=realtime)
        self.path = Path(path)
