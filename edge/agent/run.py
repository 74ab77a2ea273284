"""Build a node from ``[edge]`` settings and run it until SIGTERM/SIGINT (or a WAV ends)."""

from __future__ import annotations

import logging
import re
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from edge.agent.agent import Agent
from edge.agent.link import parse_broker_url
from edge.agent.settings import AgentOptions
from edge.audio.emitter import Emitter
from edge.audio.sim import SimAudio
from edge.audio.sinks import AudioSink, NullSink, SoundDeviceSink
from edge.audio.sources import DEFAULT_BLOCK_FRAMES, AudioSource, SoundDeviceSource, WavSource
from storewave.settings import EdgeSettings
from storewave.wire import NODE_ID_PATTERN

log = logging.getLogger(__name__)

# How often the main thread checks whether a finite source (a WAV file) has been decoded.
_POLL_S = 0.2


class NodeSetupError(RuntimeError):
    """The node cannot start: a clear, user-facing reason."""


def make_detector(sample_rate: int) -> Any:
    """The modem's streaming detector at ``sample_rate``."""
    try:
        from edge.modem.detector import StreamingDetector
    except ImportError as exc:
        raise NodeSetupError(f"the modem's detector is not installed: {exc}") from None
    return StreamingDetector(sample_rate)


def build_agent(
    settings: EdgeSettings, wav: Path | None = None, sim: bool = False
) -> tuple[Agent, AudioSource]:
    """An Agent wired to the chosen input (device, ``wav`` or ``sim``) and output."""
    if not settings.node_id or not settings.password:
        raise NodeSetupError("[edge] node_id and password are required (from provisioning)")
    if not re.match(NODE_ID_PATTERN, settings.node_id):
        raise NodeSetupError(f"node_id {settings.node_id!r} must match {NODE_ID_PATTERN}")
    parse_broker_url(settings.broker_url)  # a bad URL fails before anything is created
    source: AudioSource
    sink: AudioSink
    if wav is not None:
        source = WavSource(wav)
        sink = NullSink()
        rate = source.sample_rate
    elif sim:
        room = SimAudio(settings.sample_rate)
        source, sink, rate = room, room, settings.sample_rate
    else:
        rate = settings.sample_rate
        source = SoundDeviceSource(rate, settings.input_device)
        sink = SoundDeviceSink(rate, settings.output_device)
    options = AgentOptions.from_settings(settings, DEFAULT_BLOCK_FRAMES)
    emitter = Emitter(sink, rate)
    return Agent(options, source, make_detector(rate), emitter), source


def run_node(settings: EdgeSettings, wav: Path | None = None, sim: bool = False) -> int:
    """Run until SIGTERM/SIGINT, or until a WAV file is decoded and its events acked."""
    agent, source = build_agent(settings, wav, sim)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: ask the main loop to stop (the shutdown runs there)."""
        log.info("signal received; shutting down", extra={"signal": signum})
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent.start()
        while not stop.wait(_POLL_S):
            if source.finished and agent.audio_finished:
                break
    finally:
        agent.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
