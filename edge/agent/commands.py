"""Hub commands for the agent: self-test, emit-now, flush-queue, set-beacon (with expiry)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from edge.agent.nodeconfig import write_secret_file
from edge.agent.outbox import EventKind, Outbox
from edge.agent.ports import Detection
from edge.agent.publisher import Publisher
from edge.audio.emitter import Emitter
from edge.modem.codes import to_hex
from storewave.wire import (
    BeaconKey,
    CommandName,
    CommandResultBody,
    CommandResultEvent,
    NodeCommand,
    NodeConfig,
    SelfTestBody,
    SelfTestEvent,
)

log = logging.getLogger(__name__)

# A self-test plays its frame up to this many times, this far apart, before it reports
# failure: one frame can be masked by a noise burst or a glitch in a busy sound server,
# and a frame's airtime plus opening an output stream stays well under the spacing.
SELF_TEST_ATTEMPTS = 3
SELF_TEST_RETRY_S = 3.0
SELF_TEST_TIMEOUT_S = SELF_TEST_ATTEMPTS * SELF_TEST_RETRY_S


@dataclass(slots=True)
class SelfTest:
    """A self-test waiting to hear the node's own frame (any code it played)."""

    command_id: Any
    codes: set[int]
    next_try: float
    deadline: float
    attempts: int = 1

    @property
    def wake_at(self) -> float:
        """When the agent must next look at this self-test."""
        return self.next_try if self.attempts < SELF_TEST_ATTEMPTS else self.deadline

    def due(self, now: float) -> bool:
        """True when another frame should be played."""
        return self.attempts < SELF_TEST_ATTEMPTS and now >= self.next_try


class CommandsMixin:
    """The command half of :class:`edge.agent.agent.Agent` (runs on the agent thread)."""

    _emitter: Emitter | None
    _self_test: SelfTest | None
    _beacon_path: Path
    _beacon_override: BeaconKey | None
    config: NodeConfig | None
    outbox: Outbox
    publisher: Publisher

    if TYPE_CHECKING:  # provided by Agent

        def _store(self, event: Any, kind: EventKind, leaf: Any = ...) -> None:
            """Store an event (Agent._store)."""

        def _envelope(self, cls: Any, body: Any) -> Any:
            """Wrap a body in an envelope (Agent._envelope)."""

        def _configure_emitter(self) -> None:
            """Push schedule and key to the emitter (Agent._configure_emitter)."""

    def _on_command(self, cmd: NodeCommand) -> None:
        """Run self_test / emit_now / flush_queue unless expired; report the outcome."""
        if cmd.expires_at <= datetime.now(UTC):
            log.warning("command expired; not run", extra={"cmd": cmd.cmd.value})
            self._command_result(cmd, False, "expired; not run")
            return
        if cmd.cmd is CommandName.FLUSH_QUEUE:
            self.publisher.flush()
            self._command_result(cmd, True, f"{self.outbox.depth} queued; sending now")
        elif cmd.cmd is CommandName.EMIT_NOW:
            code = self._emit_once()
            if code is None:
                self._command_result(cmd, False, "no beacon key")
            else:
                self._command_result(cmd, True, f"emitted {to_hex(code)}")
        elif cmd.cmd is CommandName.SET_BEACON:
            self._set_beacon(cmd)
        elif cmd.cmd is CommandName.SELF_TEST:
            code = self._emit_once()
            if code is None:
                body = SelfTestBody(ok=False, detail="no beacon key or no output")
                self._store(self._envelope(SelfTestEvent, body), EventKind.OTHER)
                return
            now = time.monotonic()
            self._self_test = SelfTest(
                cmd.id, {code}, now + SELF_TEST_RETRY_S, now + SELF_TEST_TIMEOUT_S
            )

    def _retry_self_test(self, now: float) -> None:
        """Play the self-test frame again if the last one was not heard in time."""
        test = self._self_test
        if test is None or not test.due(now):
            return
        code = self._emit_once()
        if code is not None:
            test.codes.add(code)
        test.attempts += 1
        test.next_try = now + SELF_TEST_RETRY_S

    def _set_beacon(self, cmd: NodeCommand) -> None:
        """Take a beacon key sent as a command (amqtt: never in the retained config)."""
        try:
            beacon = BeaconKey.model_validate(cmd.args.get("beacon"))
        except ValidationError as exc:
            self._command_result(cmd, False, f"invalid beacon: {exc.errors()[0]['msg']}")
            return
        write_secret_file(self._beacon_path, beacon.to_bytes())
        self._beacon_override = beacon
        self._configure_emitter()
        self._command_result(cmd, True, f"beacon {beacon.short_id} set")

    def _emit_once(self) -> int | None:
        """Play the current code now (off this thread); the code, or None without a key."""
        if self._emitter is None:
            return None
        code = self._emitter.current_code()
        if code is not None:
            threading.Thread(target=self._emit_safely, name="emit-now", daemon=True).start()
        return code

    def _emit_safely(self) -> None:
        """emit_now on a helper thread, logging device errors instead of raising."""
        assert self._emitter is not None
        try:
            self._emitter.emit_now()
        except Exception:  # the result event reports the missing frame; the node lives on
            log.exception("emit_now failed")

    def _finish_self_test(self, det: Detection | None) -> None:
        """Report the self-test: heard (with SNR) or not within the timeout."""
        assert self._self_test is not None
        test, self._self_test = self._self_test, None
        if det is None:
            body = SelfTestBody(
                ok=False,
                detail=f"own frame not heard ({test.attempts} frames in {SELF_TEST_TIMEOUT_S} s)",
            )
        else:
            level = self.config.emit.level_dbfs if self.config else None
            body = SelfTestBody(
                ok=True,
                heard_code=to_hex(det.payload),
                level_dbfs=level,
                snr_db=det.snr_db,
                detail=f"heard on attempt {test.attempts} of {SELF_TEST_ATTEMPTS}",
            )
        self._store(self._envelope(SelfTestEvent, body), EventKind.OTHER)

    def _command_result(self, cmd: NodeCommand, ok: bool, detail: str) -> None:
        """Store a CommandResultEvent for ``cmd``."""
        body = CommandResultBody(command_id=cmd.id, ok=ok, detail=detail[:500])
        self._store(self._envelope(CommandResultEvent, body), EventKind.OTHER)
