"""The global frequency cap is a hub setting ([hub.campaigns]), applied by the running hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from hub.app import create_app
from hub.clock import ManualClock
from hub.mqtt.worker import apply_hub_settings
from hub.services.campaigns import caps, evaluation
from hub.services.campaigns.rules import TriggerEvent
from storewave.settings import CampaignSettings, HubSettings
from tests.hub.campaigns.helpers import GULOU, customer, live_campaign, stores, visit
from tests.hub.conftest import TEST_SECRET


@pytest.fixture
def restore_defaults(engine: Engine) -> Iterator[Engine]:
    """The engine, with the default campaign settings put back for later tests."""
    yield engine
    caps.configure(str(engine.url), CampaignSettings())


def test_default_is_the_seeds_cap_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three grants a store day unless the environment says otherwise; zero is refused."""
    monkeypatch.delenv("STOREWAVE_HUB__CAMPAIGNS__GLOBAL_DAILY_CAP", raising=False)
    assert HubSettings().campaigns.global_daily_cap == 3 == caps.GLOBAL_DAILY_CAP
    monkeypatch.setenv("STOREWAVE_HUB__CAMPAIGNS__GLOBAL_DAILY_CAP", "5")
    assert HubSettings().campaigns.global_daily_cap == 5
    with pytest.raises(ValidationError):
        HubSettings(campaigns={"global_daily_cap": 0})
    with pytest.raises(ValidationError):
        HubSettings(campaigns={"global_daily_cap": 3, "per_day": 1})  # unknown key


def test_config_file_section(tmp_path: Path) -> None:
    """``[hub.campaigns]`` in the TOML file sets it."""
    path = tmp_path / "storewave.toml"
    path.write_text("[hub]\nport = 8081\n\n[hub.campaigns]\nglobal_daily_cap = 2\n")
    assert HubSettings.load(path).campaigns.global_daily_cap == 2


def test_the_hub_evaluates_with_its_configured_cap(
    restore_defaults: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    """A hub started with a cap of 1: the second campaign of a check-in is capped by it."""
    engine = restore_defaults
    stores(engine)
    customer(engine, clock, "c1")
    first = live_campaign(engine, clock, priority=2)
    second = live_campaign(engine, clock, priority=1)
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        secret_key=TEST_SECRET,
        campaigns=CampaignSettings(global_daily_cap=1),
    )
    create_app(settings, clock=clock, engine=engine)
    vid = visit(engine, "c1", GULOU, clock.now(), minutes=0)
    event = TriggerEvent(
        channel="checkin",
        event_id=vid,
        customer_id="c1",
        store_id=GULOU,
        at=clock.now(),
        visit_id=vid,
        new_visit=True,
        visit_started_at=clock.now(),
    )
    with Session(engine) as session:
        decisions = evaluation.evaluate(session, event)
        session.commit()
    assert [(d.campaign_id, d.outcome, d.reason) for d in decisions] == [
        (first, "granted", ""),
        (second, "capped", "global_daily_cap"),
    ]


def test_the_standalone_ingest_worker_reads_the_hub_settings(
    restore_defaults: Engine, tmp_path: Path
) -> None:
    """``python -m hub.mqtt.worker --config`` applies ``[hub.campaigns]`` as the hub does."""
    path = tmp_path / "storewave.toml"
    path.write_text("[hub.campaigns]\nglobal_daily_cap = 2\n")
    settings = apply_hub_settings(restore_defaults, str(path))
    assert settings.campaigns.global_daily_cap == 2
    with Session(restore_defaults) as session:
        assert caps.global_daily_cap(session) == 2
