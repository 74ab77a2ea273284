"""The agent's resolved options: node.toml's ``[edge]`` table plus the built-in policy values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storewave.settings import EdgeSettings

# Two seconds of audio between the callback and the detector: a GC pause or a slow
# block is absorbed; a detector that is really too slow shows up as counted overruns.
BLOCK_QUEUE_SECONDS = 2.0
# Unacknowledged events on the wire at once: enough to keep a drain at full rate over
# a hub that acks in batches, small enough that a reconnect resends little.
IN_FLIGHT_WINDOW = 1000


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Everything an Agent needs to run, validated by EdgeSettings."""

    node_id: str
    password: str
    broker_url: str
    data_dir: Path
    sample_rate: int
    tls_ca_file: Path | None = None
    outbox_soft_cap: int = 20_000
    outbox_hard_cap: int = 200_000
    drain_rate_per_s: float = 2_500.0
    ack_timeout_s: float = 10.0
    flush_timeout_s: float = 5.0
    in_flight_window: int = IN_FLIGHT_WINDOW
    block_queue_len: int = 94  # BLOCK_QUEUE_SECONDS of 1024-frame blocks at 48 kHz
    # A live input silent this long is reopened: a sound card delivers a block every
    # ~20 ms, so seconds of nothing means the device or its server went away.
    input_stall_s: float = 5.0

    @classmethod
    def from_settings(cls, s: EdgeSettings, block_frames: int) -> AgentOptions:
        """Build from the ``[edge]`` settings (see storewave.settings.EdgeSettings)."""
        return cls(
            node_id=s.node_id,
            password=s.password,
            broker_url=s.broker_url,
            data_dir=Path(s.data_dir),
            sample_rate=s.sample_rate,
            tls_ca_file=s.tls_ca_file,
            outbox_soft_cap=s.outbox_soft_cap,
            outbox_hard_cap=s.outbox_hard_cap,
            drain_rate_per_s=s.drain_rate_per_s,
            ack_timeout_s=s.ack_timeout_s,
            flush_timeout_s=s.flush_timeout_s,
            block_queue_len=max(2, int(BLOCK_QUEUE_SECONDS * s.sample_rate / block_frames)),
        )
