"""``storewave kiosk``: refuses to start without a hub and key; the demo hub relays SMS codes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hub.clock import ManualClock
from kiosk.demo import DEMO_ORDER, start_demo_hub
from storewave.cli import app
from tests.kiosk.conftest import STORE, WAIT_S

runner = CliRunner()
# Tuesday 03:00 in Fuzhou (Asia/Shanghai): every Fuzhou store is closed.
ALL_CLOSED = datetime(2026, 11, 30, 19, 0, tzinfo=UTC)


def test_kiosk_without_hub_or_key_says_what_is_missing() -> None:
    """No --hub/--key and no --demo: a clear message, exit 2, no screen started."""
    result = runner.invoke(app, ["kiosk", "--store", STORE], env={"STOREWAVE_KIOSK_KEY": ""})
    assert result.exit_code == 2
    assert "--hub and --key" in result.output


def test_demo_hub_writes_texted_codes_to_its_sms_file(tmp_path: Path) -> None:
    """A code asked for at the demo kiosk shows up in DIR/sms.txt with the number masked."""
    demo = start_demo_hub(tmp_path / "demo", STORE, clock=ManualClock(ALL_CLOSED))
    try:
        with httpx.Client(base_url=demo.hub.url) as anon:
            assert anon.post("/v1/phone/otp", json={"phone": "+8613800138000"}).status_code == 202
        deadline = time.monotonic() + WAIT_S
        while "sign-in code" not in demo.sms_path.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "the SMS never reached the demo file"
            time.sleep(0.1)
        text = demo.sms_path.read_text(encoding="utf-8")
        assert text.startswith("…8000: ") and "13800138000" not in text
        with httpx.Client(base_url=demo.hub.url) as kiosk:
            store = kiosk.get(f"/v1/stores/{STORE}",
                              headers={"Authorization": f"Bearer {demo.kiosk_key}"})
        assert store.json()["id"] == STORE
        # The demo phone's SIM order waits at the store, accepted, to try pickup with.
        with demo.hub.client() as admin:
            orders = admin.get("/v1/orders").json()
        demo_order = next(o for o in orders if o["client_order_key"] == DEMO_ORDER)
        assert (demo_order["store_id"], demo_order["status"]) == (STORE, "accepted")
    finally:
        demo.stop()


@pytest.mark.parametrize(("when", "dispatched_to"), [
    # Monday 10:30 in Fuzhou: Gulou is open and nearest, dispatch picks it.
    pytest.param(datetime(2026, 11, 30, 2, 30, tzinfo=UTC), STORE, id="mon-1030-open"),
    # Monday 21:45: Gulou closed at 21:30, Taijiang open until 22:00.
    pytest.param(datetime(2026, 11, 30, 13, 45, tzinfo=UTC), "fz-taijiang", id="mon-2145"),
    # Sunday 21:15: Gulou closed at 21:00 (Sunday hours), Taijiang still open.
    pytest.param(datetime(2026, 11, 29, 13, 15, tzinfo=UTC), "fz-taijiang", id="sun-2115"),
    # Tuesday 03:00: no Fuzhou store open, the order is escalated to ops.
    pytest.param(ALL_CLOSED, None, id="tue-0300-all-closed"),
])
def test_demo_order_waits_at_the_kiosk_store_whatever_the_hour(
    tmp_path: Path, when: datetime, dispatched_to: str | None
) -> None:
    """The demo's pickup order ends accepted at the kiosk's store at any hour: dispatch
    sends it there while the store is open; after closing ops redirect it there."""
    demo = start_demo_hub(tmp_path / "demo", STORE, clock=ManualClock(when))
    try:
        with demo.hub.client() as admin:
            order = next(o for o in admin.get("/v1/orders").json()
                         if o["client_order_key"] == DEMO_ORDER)
            hops = admin.get(f"/v1/orders/{order['id']}/history").json()["dispatches"]
    finally:
        demo.stop()
    assert (order["store_id"], order["status"]) == (STORE, "accepted")
    assert hops[0]["store_id"] == dispatched_to
    if dispatched_to == STORE:
        assert [h["outcome"] for h in hops] == ["accepted"]
    else:
        assert [(h["store_id"], h["policy"], h["outcome"]) for h in hops[1:]] == [
            (STORE, "manual", "accepted")
        ]


def test_settings_file_supplies_the_kiosk_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """[kiosk] in the TOML file is read; without an api_key there the kiosk refuses to start."""
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text('[kiosk]\nhub_url = "http://127.0.0.1:9"\nstore_id = "fz-gulou"\n')
    result = runner.invoke(app, ["kiosk", "--config", str(cfg)], env={"STOREWAVE_KIOSK_KEY": ""})
    assert result.exit_code == 2
    assert "--hub and --key" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[kiosk]\nidle_timeout_s = -1\n")
    result = runner.invoke(app, ["kiosk", "--config", str(bad)], env={"STOREWAVE_KIOSK_KEY": ""})
    assert result.exit_code != 0


def test_unknown_default_language_is_refused_plainly(tmp_path: Path) -> None:
    """--language fr (or default_language = "fr" in [kiosk]) stops with one clear line."""
    result = runner.invoke(app, ["kiosk", "--language", "fr", "--hub", "http://127.0.0.1:9",
                                 "--key", "swk_x_y"])
    assert result.exit_code == 2 and "default_language" in result.output
    assert "Traceback" not in result.output
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text('[kiosk]\ndefault_language = "fr"\n')
    result = runner.invoke(app, ["kiosk", "--config", str(cfg)], env={"STOREWAVE_KIOSK_KEY": ""})
    assert result.exit_code == 2 and "'en' or 'zh'" in result.output
