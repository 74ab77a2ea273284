"""Helpers for kiosk tests: wait on a condition through Pilot, read what the screen shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session
from textual.pilot import Pilot
from textual.widgets import Button, Digits, Input, Static

from hub.embedded import EmbeddedHub
from hub.services.node_events import apply_node_event
from kiosk.app import KioskApp
from storewave.wire import CodeKind, DetectionBody, DetectionEvent
from tests.kiosk.conftest import WAIT_S

# Pilot yields to the app this often while a test waits on a condition.
PAUSE_S = 0.05
# The store's counter node (the one by the kiosk in the seeded layout).
COUNTER_NODE = "fz-gulou-n4"
_seq = iter(range(1, 1_000_000))


async def wait_until(pilot: Pilot[None], condition: Callable[[], object], what: str) -> None:
    """Let the app run until ``condition()`` is truthy; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; screen: {screen_text(pilot.app)}")
        await pilot.pause(PAUSE_S)


def screen_text(app: object) -> str:
    """Every text, label and input value on the current screen."""
    assert isinstance(app, KioskApp)
    parts: list[str] = []
    for widget in app.screen.query("*"):
        if isinstance(widget, Input | Digits):
            parts.append(widget.value)
        elif isinstance(widget, Button):
            parts.append(str(widget.label))
        elif isinstance(widget, Static):
            parts.append(str(widget.content))
    return "\n".join(parts)


def hear_token(hub: EmbeddedHub, token: str) -> None:
    """The counter node hears a phone play ``token`` (the event it sends over MQTT)."""
    now = hub.clock.now()
    body = DetectionBody(
        code=token, kind=CodeKind.TOKEN, snr_db=9.0, confidence=0.8, first_heard=now
    )
    event = DetectionEvent(node=COUNTER_NODE, boot=1, seq=next(_seq), body=body)
    with Session(hub.engine) as session:
        apply_node_event(session, event, now)
        session.commit()


def later(hub: EmbeddedHub, seconds: float) -> None:
    """Move the hub's manual clock on."""
    hub.clock.advance(timedelta(seconds=seconds))  # type: ignore[attr-defined]
