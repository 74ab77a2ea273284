"""``storewave kiosk``: refuses to start without a hub and key; the demo hub relays SMS codes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from kiosk.demo import DEMO_ORDER, start_demo_hub
from storewave.cli import app
from tests.kiosk.conftest import STORE, WAIT_S

runner = CliRunner()


def test_kiosk_without_hub_or_key_says_what_is_missing() -> None:
    """No --hub/--key and no --demo: a clear message, exit 2, no screen started."""
    result = runner.invoke(app, ["kiosk", "--store", STORE], env={"STOREWAVE_KIOSK_KEY": ""})
    assert result.exit_code == 2
    assert "--hub and --key" in result.output


def test_demo_hub_writes_texted_codes_to_its_sms_file(tmp_path: Path) -> None:
    """A code asked for at the demo kiosk shows up in DIR/sms.txt with the number masked."""
    demo = start_demo_hub(tmp_path / "demo", STORE)
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
