"""Remote node configuration: validate, keep the last good one on disk, never go backwards."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from edge.modem.codes import MAX_SHORT_ID
from storewave.wire import NodeConfig, WireError, parse_message

log = logging.getLogger(__name__)

# Owner-only: the saved config and set_beacon key hold the beacon's secret key.
_SECRET_FILE_MODE = 0o600
# ConfigRejectedBody.reason is at most 500 characters on the wire.
_MAX_REASON = 500


class ConfigRejected(ValueError):
    """A config the node refused; ``version`` is what it claimed (0 when unreadable)."""

    def __init__(self, version: int, reason: str) -> None:
        """Keep the claimed version and a wire-sized reason."""
        super().__init__(reason)
        self.version = version
        self.reason = reason[:_MAX_REASON]


def _claimed_version(payload: bytes) -> int:
    """The version a (possibly invalid) config claims, for the rejection report."""
    try:
        version = json.loads(payload).get("version", 0)
    except (ValueError, AttributeError):
        return 0
    return version if isinstance(version, int) and version >= 0 else 0


def _frame_duration_s() -> float | None:
    """The modem's frame airtime, when the modem is installed."""
    try:
        from edge.modem.frame import FRAME_DURATION_S
    except ImportError:
        return None
    return float(FRAME_DURATION_S)


def validate_config(payload: bytes, current: NodeConfig | None) -> NodeConfig | None:
    """The new config to apply, None for a re-delivery of the current one, else ConfigRejected."""
    try:
        config: NodeConfig = parse_message(NodeConfig, payload)
    except WireError as exc:
        raise ConfigRejected(_claimed_version(payload), exc.reason) from None
    if current is not None and config.version <= current.version:
        if config == current:
            return None  # the retained config again after a reconnect: nothing to do
        raise ConfigRejected(
            config.version,
            f"version {config.version} is not newer than the applied {current.version}",
        )
    if config.beacon is not None and config.beacon.short_id > MAX_SHORT_ID:
        raise ConfigRejected(config.version, f"beacon.short_id must be <= {MAX_SHORT_ID}")
    airtime = _frame_duration_s()
    if airtime is not None and config.emit.period_s <= airtime:
        raise ConfigRejected(
            config.version,
            f"emit.period_s {config.emit.period_s} must exceed the frame airtime {airtime:.3f} s",
        )
    return config


class ConfigStore:
    """The last good config, as JSON next to the outbox, so a restart needs no broker."""

    def __init__(self, path: str | Path) -> None:
        """Keep the config at ``path``."""
        self.path = Path(path)

    def load(self) -> NodeConfig | None:
        """The saved config, or None (a corrupt file is logged and ignored: the hub resends)."""
        try:
            return NodeConfig.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            log.error(
                "saved node config unreadable; waiting for the hub's", extra={"e": str(exc)[:200]}
            )
            return None

    def save(self, config: NodeConfig) -> None:
        """Write atomically (temp file, fsync, rename): a crash leaves the old or the new one."""
        write_secret_file(self.path, config.to_bytes())


def write_secret_file(path: Path, data: bytes) -> None:
    """Write atomically, owner-only (a config can hold the beacon key): temp, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _SECRET_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
