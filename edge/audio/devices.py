"""Guarded access to ``sounddevice``: a missing PortAudio or device becomes one clear error."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# The message shared/AUDIO.md asks for: what is wrong and what to do instead.
NO_DEVICE_HINT = "no audio device; use --wav or --sim"


class AudioUnavailable(RuntimeError):
    """No usable sound card: PortAudio missing, no device, or the named one absent."""

    def __init__(self, detail: str) -> None:
        """Prefix ``detail`` with the hint that says what to do instead."""
        super().__init__(f"{NO_DEVICE_HINT} ({detail})")
        self.detail = detail


def load_sounddevice() -> ModuleType:
    """Import ``sounddevice``; raise AudioUnavailable when the PortAudio library is missing."""
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found" on a machine without libportaudio2
        raise AudioUnavailable(f"PortAudio library not found: {exc}") from None
    return sounddevice


def resolve_device(name: str | None, *, kind: str) -> int | str | None:
    """Find the device index whose name contains ``name`` (``kind`` is 'input' or 'output').

    ``None`` means the system default, which must exist. Raises AudioUnavailable.
    """
    sd = load_sounddevice()
    channels_key = f"max_{kind}_channels"
    try:
        devices: list[dict[str, Any]] = list(sd.query_devices())
    except Exception as exc:  # PortAudioError has no stable import path before the import
        raise AudioUnavailable(f"cannot list audio devices: {exc}") from None
    usable = [(i, d) for i, d in enumerate(devices) if int(d.get(channels_key, 0)) > 0]
    if not usable:
        raise AudioUnavailable(f"no {kind} device found")
    if name is None:
        return None
    for index, device in usable:
        if name.lower() in str(device["name"]).lower():
            return index
    names = ", ".join(str(d["name"]) for _, d in usable)
    raise AudioUnavailable(f"no {kind} device named {name!r} (have: {names})")


def portaudio_error_types() -> tuple[type[BaseException], ...]:
    """The exception types sounddevice raises for device trouble (for ``except`` clauses)."""
    try:
        sd = load_sounddevice()
    except AudioUnavailable:
        return (OSError,)
    return (sd.PortAudioError, OSError, ValueError)
