"""What a simulated node is given and hands back: credentials, hearings, self-test results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from storewave.wire import NodeLeaf


@dataclass(frozen=True, slots=True)
class Credentials:
    """What provisioning gives a node: its id (= MQTT username) and password."""

    node_id: str
    password: str


class ProvisionError(RuntimeError):
    """Provisioning failed; the node retries."""


@dataclass(frozen=True, slots=True)
class Heard:
    """A code the node's detector heard."""

    code: int
    snr_db: float
    confidence: float


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    """What a self-test measured."""

    ok: bool
    heard_code: int | None
    level_dbfs: float | None
    snr_db: float | None
    detail: str = ""


# Returns what the detector heard since the last call; None when no audio arrived
# (a stalled capture pipeline, which the watchdog notices).
Listener = Callable[[], list[Heard] | None]
SelfTester = Callable[[int, float], SelfTestResult]
Emitter = Callable[[int, float], None]


@dataclass
class NodeStorage:
    """The node's flash: boot counter and the outbox of unacked events, keyed (boot, seq)."""

    boot: int = 0
    outbox: dict[tuple[int, int], tuple[NodeLeaf, bytes]] = field(default_factory=dict)
