"""Wire schemas shared by edge, hub, kiosk and simulator: MQTT topics and envelopes, check-ins.

This is the only definition of what travels between parts; nobody redefines these
models. Golden tests in ``tests/storewave/test_wire.py`` pin the exact bytes.

MQTT topic tree (DESIGN.md), prefix ``sw/v1``, keyed by node only:

====================================  =========  ====  =========================
topic                                 direction  QoS   payload
====================================  =========  ====  =========================
``sw/v1/nodes/{node}/events``         edge->hub  1     :data:`AnyEvent` envelope
``sw/v1/nodes/{node}/telemetry``      edge->hub  0     :class:`TelemetryEvent`
``sw/v1/nodes/{node}/status``         edge->hub  1 R   :class:`NodeStatus`
``sw/v1/nodes/{node}/config``         hub->edge  1 R   :class:`NodeConfig`
``sw/v1/nodes/{node}/cmd``            hub->edge  1     :class:`NodeCommand`
``sw/v1/nodes/{node}/ack``            hub->edge  1     :class:`Ack`
``sw/v1/hub/status``                  hub        1 R   :class:`HubStatus`
====================================  =========  ====  =========================
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    model_validator,
)

PROTOCOL_VERSION = 1
TOPIC_PREFIX = "sw/v1"
HUB_STATUS_TOPIC = f"{TOPIC_PREFIX}/hub/status"

# Larger than any legitimate message (a detection is ~300 bytes, a config ~1 KiB);
# anything bigger is refused before JSON parsing so a hostile payload costs nothing.
MAX_PAYLOAD_BYTES = 16 * 1024

# Node ids are MQTT usernames, client ids and topic levels at once, so they must not
# contain MQTT wildcards or separators; lower-case keeps Mosquitto's %u ACLs unambiguous.
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{2,63}$"
_NODE_ID_RE = re.compile(NODE_ID_PATTERN)

# A code heard over the air: 48 bits as 12 lower-case hex digits.
CODE_HEX_PATTERN = r"^[0-9a-f]{12}$"


class WireError(ValueError):
    """A message that does not follow the wire schema; ``reason`` is safe to store and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NodeLeaf(StrEnum):
    """The last level of a node topic."""

    EVENTS = "events"
    TELEMETRY = "telemetry"
    STATUS = "status"
    CONFIG = "config"
    CMD = "cmd"
    ACK = "ack"


def node_topic(node_id: str, leaf: NodeLeaf | str) -> str:
    """Topic of ``leaf`` for ``node_id``; refuses ids that could escape the node's subtree."""
    if not _NODE_ID_RE.match(node_id):
        raise WireError(f"invalid node id {node_id!r}: must match {NODE_ID_PATTERN}")
    return f"{TOPIC_PREFIX}/nodes/{node_id}/{NodeLeaf(leaf).value}"


def parse_node_topic(topic: str) -> tuple[str, NodeLeaf]:
    """Split ``sw/v1/nodes/{node}/{leaf}`` into its node id and leaf, or raise WireError."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{TOPIC_PREFIX}/nodes":
        raise WireError(f"not a node topic: {topic[:120]!r}")
    node_id, leaf = parts[3], parts[4]
    if not _NODE_ID_RE.match(node_id):
        raise WireError(f"invalid node id in topic: {node_id[:80]!r}")
    try:
        return node_id, NodeLeaf(leaf)
    except ValueError:
        raise WireError(f"unknown topic leaf {leaf[:40]!r}") from None


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits.

    Python 3.11's ``uuid`` has no v7 and the layout is eight lines, so no dependency.
    Time-ordered ids keep the hub's event index append-mostly.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)


def _rfc3339_utc(value: datetime) -> str:
    """``2026-11-29T01:24:41.123Z``: millisecond precision, always UTC with a Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a timezone (RFC 3339, UTC)")
    return value.astimezone(UTC)


# The check sits on the timestamp type, not on a "*" validator of every model: that ran
# for every field of every message (14 calls per detection, a quarter of validation).
UtcTimestamp = Annotated[
    datetime, AfterValidator(_aware_utc), PlainSerializer(_rfc3339_utc, return_type=str)
]
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN)]
CodeHex = Annotated[str, Field(pattern=CODE_HEX_PATTERN)]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (millisecond precision, as on the wire)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Wire(BaseModel):
    """Base for every wire model: unknown fields refused, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        """Compact JSON, the exact bytes that go on the wire."""
        return self.model_dump_json().encode()


# ---------------------------------------------------------------- event bodies


class CodeKind(StrEnum):
    """What a heard 48-bit code is (see ``edge.modem.codes``)."""

    BEACON = "beacon"
    TOKEN = "token"


class DetectionBody(_Wire):
    """A code the node heard (debounced: ``count`` hearings from ``first_heard`` on)."""

    code: CodeHex
    kind: CodeKind
    snr_db: float = Field(ge=-60, le=120)
    confidence: float = Field(ge=0, le=1)
    first_heard: UtcTimestamp
    count: int = Field(1, ge=1)


class ConfigRejectedBody(_Wire):
    """The node refused a config; it keeps ``kept_version``."""

    version: int = Field(ge=0)
    kept_version: int = Field(ge=0)
    reason: str = Field(max_length=500)


class SelfTestBody(_Wire):
    """Result of a self-test: the node heard its own or a neighbour's emission."""

    ok: bool
    heard_code: CodeHex | None = None
    level_dbfs: float | None = Field(None, ge=-200, le=10)
    snr_db: float | None = None
    detail: str = Field("", max_length=500)


class CommandResultBody(_Wire):
    """Outcome of a hub command."""

    command_id: uuid.UUID
    ok: bool
    detail: str = Field("", max_length=500)


class TelemetryBody(_Wire):
    """Heartbeat and health counters (every 30 s by default)."""

    uptime_s: float = Field(ge=0)
    version: str = Field(max_length=40)
    noise_floor_dbfs: float | None = Field(None, ge=-200, le=10)
    frames_heard: int = Field(0, ge=0)
    queue_depth: int = Field(0, ge=0)
    queue_dropped: int = Field(0, ge=0)
    overruns: int = Field(0, ge=0)
    config_version: int = Field(0, ge=0)


# ---------------------------------------------------------------- envelopes


class _Envelope(_Wire):
    """``{"v":1,"id":<uuid7>,"node":..,"boot":N,"seq":N,"ts":..,"type":..,"body":{..}}``."""

    v: Literal[1] = PROTOCOL_VERSION
    id: uuid.UUID = Field(default_factory=uuid7)
    node: NodeId
    boot: int = Field(ge=0, lt=2**31)
    seq: int = Field(ge=0, lt=2**53)
    ts: UtcTimestamp = Field(default_factory=utc_now)


class DetectionEvent(_Envelope):
    type: Literal["detection"] = "detection"
    body: DetectionBody


class ConfigRejectedEvent(_Envelope):
    type: Literal["config_rejected"] = "config_rejected"
    body: ConfigRejectedBody


class SelfTestEvent(_Envelope):
    type: Literal["self_test"] = "self_test"
    body: SelfTestBody


class CommandResultEvent(_Envelope):
    type: Literal["command_result"] = "command_result"
    body: CommandResultBody


class TelemetryEvent(_Envelope):
    type: Literal["telemetry"] = "telemetry"
    body: TelemetryBody


AnyEvent = Annotated[
    DetectionEvent | ConfigRejectedEvent | SelfTestEvent | CommandResultEvent | TelemetryEvent,
    Field(discriminator="type"),
]
_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


def _check_size(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")


def parse_event(payload: bytes, topic_node: str | None = None) -> AnyEvent:
    """Parse an events/telemetry payload; raise WireError with a storable reason.

    When ``topic_node`` is given, an envelope claiming another node's identity is
    refused: the topic (enforced by the broker ACL) is the authority.
    """
    _check_size(payload)
    try:
        event = _ANY_EVENT.validate_json(payload)
    except ValidationError as exc:
        raise WireError(f"invalid envelope: {_first_error(exc)}") from None
    if topic_node is not None and event.node != topic_node:
        raise WireError(f"envelope node {event.node!r} does not match topic node {topic_node!r}")
    return event  # type: ignore[no-any-return]


# ---------------------------------------------------------------- other node topics


class NodeState(StrEnum):
    ONLINE = "online"
    LOST = "lost"  # Last Will: the broker saw the connection die
    OFFLINE = "offline"  # clean shutdown


class NodeStatus(_Wire):
    """Retained presence: birth ``{"state":"online","boot":N}``, will ``{"state":"lost",...}``."""

    state: NodeState
    boot: int = Field(ge=0, lt=2**31)


class HubState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class HubStatus(_Wire):
    state: HubState
    ts: UtcTimestamp = Field(default_factory=utc_now)


class Ack(_Wire):
    """Hub -> node: every event of ``boot`` with ``seq`` <= this one is committed."""

    boot: int = Field(ge=0, lt=2**31)
    seq: int = Field(ge=-1, lt=2**53)  # -1: nothing committed yet for this boot


# One beacon's turn in its store's emission cycle: a frame's airtime (0.496 s,
# ``edge.modem.frame.FRAME_DURATION_S``) plus 54 ms for the room's reverberation tail
# and the clock skew between nodes (NTP keeps them within a few ms). The store
# simulator decodes every beacon of a store at this spacing (tests/firmware_sim).
EMIT_SLOT_S = 0.55
# A lone beacon repeats every second: a phone hears it within ~1 s.
DEFAULT_EMIT_PERIOD_S = 1.0
# EmitSchedule.period_s allows up to 60 s: past this many beacons in one store the
# cycle would be longer, so slots are shared (index modulo this) instead.
MAX_EMIT_SLOTS = int(60 // EMIT_SLOT_S)


class EmitSchedule(_Wire):
    """How a beacon emits: one frame every ``period_s`` at ``level_dbfs``, ``offset_s`` in.

    Frames start at wall-clock (Unix) times ``k * period_s + offset_s``, so beacons of
    one store given distinct offsets (the hub assigns them) take turns instead of
    colliding. ``offset_s`` is left off the wire while 0: a node built before it existed
    (which refuses unknown fields) still accepts a single-beacon store's config.
    """

    enabled: bool = True
    level_dbfs: float = Field(-12.0, ge=-60, le=0)
    period_s: float = Field(DEFAULT_EMIT_PERIOD_S, gt=0.2, le=60)
    offset_s: float = Field(0.0, ge=0, lt=60, exclude_if=lambda offset: offset == 0)

    @model_validator(mode="after")
    def _offset_within_period(self) -> EmitSchedule:
        if self.offset_s >= self.period_s:
            raise ValueError(f"offset_s {self.offset_s} must be less than period_s {self.period_s}")
        return self

    @classmethod
    def time_shared(
        cls, index: int, count: int, level_dbfs: float = -12.0, enabled: bool = True
    ) -> EmitSchedule:
        """The schedule of beacon ``index`` of the ``count`` sharing one store's air.

        Each beacon gets its own ``EMIT_SLOT_S`` turn in a cycle of ``count`` turns (at
        least :data:`DEFAULT_EMIT_PERIOD_S`), so frames of one store never overlap.
        """
        if not 0 <= index < count:
            raise ValueError(f"slot index {index} outside 0..{count - 1}")
        slots = min(count, MAX_EMIT_SLOTS)
        period = round(max(DEFAULT_EMIT_PERIOD_S, slots * EMIT_SLOT_S), 6)
        offset = round((index % slots) * EMIT_SLOT_S, 6)
        return cls(enabled=enabled, level_dbfs=level_dbfs, period_s=period, offset_s=offset)

    def next_start(self, wall_s: float) -> float:
        """The first frame start at or after Unix time ``wall_s``."""
        k = math.ceil((wall_s - self.offset_s) / self.period_s)
        return k * self.period_s + self.offset_s


class BeaconKey(_Wire):
    """The beacon identity a node emits. ``key_hex`` is secret: never sent retained on amqtt."""

    short_id: int = Field(ge=0)
    key_hex: str = Field(pattern=r"^[0-9a-f]{32,128}$")
    slot_s: int = Field(30, ge=5, le=3600)


class DetectorThresholds(_Wire):
    min_snr_db: float = Field(-10.0, ge=-30, le=40)
    min_confidence: float = Field(0.5, ge=0, le=1)
    debounce_s: float = Field(10.0, ge=0, le=3600)


class NodeConfig(_Wire):
    """Retained hub -> node configuration; ``version`` only ever grows."""

    version: int = Field(ge=1)
    emit: EmitSchedule = EmitSchedule()
    beacon: BeaconKey | None = None
    thresholds: DetectorThresholds = DetectorThresholds()
    telemetry_period_s: float = Field(30.0, ge=1, le=3600)


class CommandName(StrEnum):
    SELF_TEST = "self_test"
    EMIT_NOW = "emit_now"
    FLUSH_QUEUE = "flush_queue"
    # args {"beacon": BeaconKey, "config_version": N}: the beacon key when the broker cannot
    # keep retained messages private (amqtt), so the retained config leaves ``beacon`` out.
    SET_BEACON = "set_beacon"


class NodeCommand(_Wire):
    """Hub -> node command; a node ignores one past ``expires_at``."""

    id: uuid.UUID = Field(default_factory=uuid7)
    cmd: CommandName
    expires_at: UtcTimestamp
    args: dict[str, Any] = Field(default_factory=dict)


def parse_message(model: type[_Wire], payload: bytes) -> Any:
    """Parse ``payload`` as ``model`` (status, config, cmd, ack), or raise WireError."""
    _check_size(payload)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise WireError(f"invalid {model.__name__}: {_first_error(exc)}") from None


# ---------------------------------------------------------------- phone app HTTP API


class CheckinRequest(_Wire):
    """``POST /v1/checkins``: a beacon code the customer's phone heard."""

    code: CodeHex
    heard_at: UtcTimestamp
    snr_db: float | None = Field(None, ge=-60, le=120)
    device_id: str | None = Field(None, max_length=64)


class Grant(_Wire):
    """Something a campaign gave: a coupon or points."""

    campaign_id: str
    kind: Literal["coupon", "points"]
    coupon_code: str | None = None
    points: int | None = None
    title: str = ""


class CheckinResponse(_Wire):
    """Result of a verified check-in."""

    visit_id: str
    store_id: str
    zone_id: str | None = None
    new_visit: bool
    grants: list[Grant] = Field(default_factory=list)


class PhoneTokenResponse(_Wire):
    """A short-lived 48-bit token for the phone to play to the store's node."""

    token: CodeHex
    expires_at: UtcTimestamp
