"""The demo seeds load, follow SEEDS/the brief (regions, stores, ranges), and load idempotently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from hub.clock import ManualClock
from hub.models.registry import Beacon, Store
from hub.security import HubCrypto
from hub.seed import SeedError, load_seeds
from tests.hub.conftest import TEST_SECRET
from tests.hub.doubles import RecordingNodeControl


def test_seed_loads_once(engine: Engine, clock: ManualClock) -> None:
    """Two regions, six stores in Asia/Shanghai, beacons of 3/5/10 m; a reload creates nothing."""
    control = RecordingNodeControl()
    crypto = HubCrypto(TEST_SECRET.encode())
    with Session(engine) as session:
        first = load_seeds(session, crypto=crypto, clock=clock, node_control=control)
        session.commit()
        second = load_seeds(session, crypto=crypto, clock=clock, node_control=control)
        stores = session.exec(select(Store)).all()
        ranges = {b.range_m for b in session.exec(select(Beacon)).all()}
    assert (first.regions, first.stores, first.nodes) == (2, 6, first.beacons)
    assert second.nodes == 0 and second.skipped > 0
    assert {s.timezone for s in stores} == {"Asia/Shanghai"}
    assert ranges == {3.0, 5.0, 10.0}
    assert set(control.passwords) == set(first.node_passwords)
    assert all(cfgs[-1].beacon is not None for cfgs in control.configs.values())


def test_bad_seed_file_names_the_entry(tmp_path: Path, engine: Engine, clock: ManualClock) -> None:
    """A malformed entry is refused with its id in the message."""
    bad = tmp_path / "registry.json"
    bad.write_text(json.dumps({"regions": [{"id": "Bad Id!", "name": "x"}]}))
    with Session(engine) as session, pytest.raises(SeedError, match="Bad Id!"):
        load_seeds(session, tmp_path, crypto=HubCrypto(TEST_SECRET.encode()), clock=clock)
    with Session(engine) as session, pytest.raises(SeedError, match="not valid JSON"):
        bad.write_text("{")
        load_seeds(session, bad, crypto=HubCrypto(TEST_SECRET.encode()), clock=clock)
