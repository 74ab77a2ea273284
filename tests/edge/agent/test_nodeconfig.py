"""Remote config validation and the on-disk last good config."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.agent.nodeconfig import ConfigRejected, ConfigStore, validate_config
from edge.modem.codes import MAX_SHORT_ID
from edge.modem.frame import FRAME_DURATION_S
from storewave.wire import BeaconKey, EmitSchedule, NodeConfig

KEY = "00112233445566778899aabbccddeeff"


def test_newer_valid_config_is_taken_and_a_redelivery_is_a_no_op() -> None:
    v1 = NodeConfig(version=1)
    assert validate_config(v1.to_bytes(), None) == v1
    assert validate_config(v1.to_bytes(), v1) is None
    v2 = NodeConfig(version=2, telemetry_period_s=5)
    assert validate_config(v2.to_bytes(), v1) == v2


@pytest.mark.parametrize(
    ("payload", "claimed", "why"),
    [
        (b"\\xff\\xfe", 0, "invalid NodeConfig"),
        (b'{"version": 4, "thresholds": {"min_snr_db": 99}}', 4, "min_snr_db"),
        (b'{"version": 4, "surprise": 1}', 4, "surprise"),
        (NodeConfig(version=2, telemetry_period_s=7).to_bytes(), 2, "not newer"),
        (
            NodeConfig(
                version=9, beacon=BeaconKey(short_id=MAX_SHORT_ID + 1, key_hex=KEY)
            ).to_bytes(),
            9,
            "short_id",
        ),
    ],
)
def test_bad_configs_are_rejected_with_a_reason(payload: bytes, claimed: int, why: str) -> None:
    current = NodeConfig(version=2)
    with pytest.raises(ConfigRejected) as info:
        validate_config(payload, current)
    assert info.value.version == claimed and why in info.value.reason


def test_a_period_shorter_than_a_frame_is_refused() -> None:
    short = EmitSchedule(period_s=max(0.21, FRAME_DURATION_S * 0.9))
    with pytest.raises(ConfigRejected, match="airtime"):
        validate_config(NodeConfig(version=1, emit=short).to_bytes(), None)


def test_store_round_trips_and_ignores_a_corrupt_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config.json")
    assert store.load() is None
    config = NodeConfig(version=3, beacon=BeaconKey(short_id=1, key_hex=KEY))
    store.save(config)
    assert store.load() == config
    (tmp_path / "config.json").write_text("{broken")
    assert store.load() is None


def test_saved_config_is_owner_only(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config.json")
    store.save(NodeConfig(version=1, beacon=BeaconKey(short_id=1, key_hex=KEY)))
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600


def test_a_store_turn_is_taken_kept_on_disk_and_a_bad_one_refused(tmp_path: Path) -> None:
    turn = EmitSchedule.time_shared(1, 2, level_dbfs=-30.0)
    config = NodeConfig(version=2, emit=turn)
    taken = validate_config(config.to_bytes(), NodeConfig(version=1))
    assert taken is not None and taken.emit.offset_s == turn.offset_s > 0
    store = ConfigStore(tmp_path / "config.json")
    store.save(taken)
    assert store.load() == taken
    outside = b'{"version": 3, "emit": {"period_s": 1.1, "offset_s": 1.1}}'
    with pytest.raises(ConfigRejected, match="offset_s") as info:
        validate_config(outside, taken)
    assert info.value.version == 3
