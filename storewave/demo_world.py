"""The simulated world the demo drives: beacon devices, an edge node, customers' phones.

Every piece talks to the hub the way the real one would: devices and the edge node over
MQTT with their provisioned credentials, phones over HTTP with their own sessions. The
only shortcut is the SMS gateway: one-time codes are read from the hub's outbox, as a
phone would read them from its inbox.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from sqlmodel import Session, col, select

from edge.modem.synth import synthesize_frame
from firmware_sim import calibration as cal
from firmware_sim import device as dev
from firmware_sim.acoustics.render import Emission, Still, render
from firmware_sim.link import parse_broker_url
from firmware_sim.store import StoreLayout
from hub.embedded import EmbeddedHub
from hub.models.customers import OutboxMessage
from hub.services import phone_auth

SAMPLE_RATE = 48_000
# A device loop ticks this often: fine enough for 1 s emission periods and acks.
DEVICE_TICK_S = 0.05
# Devices need a broker connection and their retained config; a loaded box is slow.
DEVICE_READY_TIMEOUT_S = 30.0
# A phone speaker playing its token at the counter: louder than a ceiling beacon.
TOKEN_LEVEL_DBFS = -6.0
# The customer holds the phone this far from the counter node's microphone.
TOKEN_DISTANCE_M = 0.6
# Quiet-store noise at the node's microphone (digital RMS); the token is ~25 dB above it.
NODE_NOISE_RMS = 2e-4
# The app's microphone disclosure text version the demo phones accept.
MIC_DISCLOSURE_VERSION = "2026-01"
_CODE_IN_SMS = re.compile(r"\b(\d{6})\b")


class DemoError(RuntimeError):
    """A step of the demo could not be completed; the message says which and why."""


@dataclass
class BeaconFleet:
    """Simulated beacon devices of one store, ticking on a background thread."""

    devices: dict[str, dev.Device]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> BeaconFleet:
        """Run every device's state machine until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="beacon-fleet", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            for device in self.devices.values():
                device.tick()
            self._stop.wait(DEVICE_TICK_S)

    def wait_configured(self, timeout_s: float = DEVICE_READY_TIMEOUT_S) -> dict[str, bytes]:
        """Wait until every device runs with a beacon key; return node id -> key."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            keys = {
                node: bytes.fromhex(d.config.beacon.key_hex)
                for node, d in self.devices.items()
                if d.state is dev.State.RUNNING and d.config and d.config.beacon
            }
            if len(keys) == len(self.devices):
                return keys
            time.sleep(DEVICE_TICK_S)
        states = {node: d.state.value for node, d in self.devices.items()}
        raise DemoError(f"beacon devices did not get their config over MQTT: {states}")

    def stop(self) -> None:
        """Stop ticking and disconnect every device cleanly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        for device in self.devices.values():
            device.stop(clean=True)


def start_beacons(hub: EmbeddedHub, node_ids: list[str]) -> BeaconFleet:
    """Boot a simulated device for each node with the password the hub provisioned."""
    broker = parse_broker_url(hub.runtime.broker.url)  # type: ignore[union-attr]
    devices = {}
    for node in node_ids:
        password = hub.seeds.node_passwords.get(node)
        if password is None:
            raise DemoError(f"node {node} has no provisioned password")
        creds = dev.Credentials(node, password)
        devices[node] = dev.Device(lambda c=creds: c, broker, dev.NodeStorage())
    return BeaconFleet(devices).start()


def read_sms_code(hub: EmbeddedHub, phone: str) -> str:
    """The newest one-time code the hub queued by SMS for ``phone`` (the phone's inbox)."""
    wanted = phone_auth.normalize_phone(phone)
    with Session(hub.engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "sms")
            .order_by(col(OutboxMessage.id).desc())
        ).all()
        for row in rows:
            if hub.crypto.decrypt(row.recipient_enc) == wanted:
                match = _CODE_IN_SMS.search(row.body)
                if match:
                    return match.group(1)
    raise DemoError("the hub queued no sign-in SMS for a demo phone")


def sign_in_phone(hub: EmbeddedHub, phone: str, device_id: str) -> httpx.Client:
    """Sign a customer's phone in (OTP by SMS) and return its authenticated client."""
    with httpx.Client(base_url=hub.url, timeout=30.0) as anon:
        sent = anon.post("/v1/phone/otp", json={"phone": phone})
        if sent.status_code != 202:
            raise DemoError(f"OTP request refused: {sent.status_code} {sent.text[:200]}")
        code = read_sms_code(hub, phone)
        resp = anon.post(
            "/v1/phone/session", json={"phone": phone, "code": code, "device_id": device_id}
        )
        if resp.status_code != 200:
            raise DemoError(f"phone sign-in refused: {resp.status_code} {resp.text[:200]}")
        token = resp.json()["token"]
    phone_client = hub.client(token)
    # What the app asks on first run: the microphone disclosure, and marketing by SMS
    # and outbound call (the ARC journey's channels).
    consent = phone_client.patch("/v1/me", json={
        "microphone_disclosure_version": MIC_DISCLOSURE_VERSION, "microphone_accepted": True,
        "consent_marketing_sms": True, "consent_marketing_call": True,
    })
    if consent.status_code != 200:
        raise DemoError(f"consent update refused: {consent.status_code} {consent.text[:200]}")
    return phone_client


def token_audio(layout: StoreLayout, node_id: str, token: int, seconds: float,
                rng: np.random.Generator) -> np.ndarray:
    """What ``node_id``'s microphone hears while a phone beside it plays ``token`` once."""
    beacon = next((b for b in layout.beacons if b.node_id == node_id), None)
    if beacon is None:
        raise DemoError(f"node {node_id} is not in store {layout.store_id}")
    x, y, z = beacon.position
    phone_at = (x, max(0.3, y - TOKEN_DISTANCE_M), max(1.0, z - 1.2))
    frame = synthesize_frame(token, SAMPLE_RATE, TOKEN_LEVEL_DBFS).astype(np.float64)
    emission = Emission(phone_at, 0.5, frame * cal.emitter_to_mic_gain())
    n = int(seconds * SAMPLE_RATE)
    heard = render(layout.room, [emission], Still(beacon.position), 0.0, n, SAMPLE_RATE)
    heard += rng.normal(0.0, NODE_NOISE_RMS, n)
    return heard.astype(np.float32)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float) -> object:
    """Poll ``condition`` until it returns something truthy; DemoError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise DemoError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def node_data_dir(workdir: Path, node_id: str) -> Path:
    """Where a demo edge node keeps its outbox and config."""
    return workdir / "edge" / node_id


class LiveMicrophone:
    """Audio blocks handed to an edge node as they happen (an iterator for ArraySource).

    Between sounds the microphone hears the quiet store, so the node's detector and
    noise-floor estimate run as they would on a real card.
    """

    def __init__(self, rng: np.random.Generator, block_frames: int = 1024) -> None:
        """Start with an empty queue of sounds."""
        self._sounds: queue.Queue[np.ndarray | None] = queue.Queue()
        self._rng = rng
        self._block = block_frames
        self._closed = False

    def play(self, samples: np.ndarray) -> None:
        """Queue ``samples`` (float32 mono at the node's rate) for the microphone."""
        self._sounds.put(samples.astype(np.float32))

    def close(self) -> None:
        """End the stream (the node's source sees its end)."""
        self._closed = True
        self._sounds.put(None)

    def blocks(self) -> Iterator[np.ndarray]:
        """Blocks of queued sounds, or of quiet-store noise while nothing plays."""
        while True:
            try:
                sound = self._sounds.get(timeout=self._block / SAMPLE_RATE)
            except queue.Empty:
                if self._closed:
                    return
                yield self._rng.normal(0.0, NODE_NOISE_RMS, self._block).astype(np.float32)
                continue
            if sound is None:
                return
            for start in range(0, sound.size, self._block):
                yield sound[start : start + self._block]
