"""Settings precedence and validation; logging scrubs PII."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import ValidationError

from storewave.logs import scrub, setup_logging
from storewave.settings import ConfigFileError, EdgeSettings, HubSettings


def test_toml_section_then_env_override(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "sw.toml"
    cfg.write_text('[hub]\nport = 9001\nhost = "0.0.0.0"\n[edge]\nnode_id = "store-1-n1"\n')
    monkeypatch.setenv("STOREWAVE_HUB__PORT", "9002")
    hub = HubSettings.load(cfg)
    assert hub.host == "0.0.0.0"
    assert hub.port == 9002
    assert EdgeSettings.load(cfg).node_id == "store-1-n1"


def test_config_file_errors_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist"):
        HubSettings.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[hub\n")
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        HubSettings.load(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[hub]\nprot = 1\n")
    with pytest.raises(ValidationError, match="prot"):
        HubSettings.load(typo)


def test_placeholder_secret_refused() -> None:
    with pytest.raises(ValidationError, match="real secret"):
        HubSettings.load(secret_key="changeme")
    assert HubSettings.load(secret_key="k" * 40).secret_key == "k" * 40


def test_unsupported_sample_rate_refused() -> None:
    with pytest.raises(ValidationError, match="44100 or 48000"):
        EdgeSettings.load(sample_rate=22050)


def test_default_database_is_sqlite_in_data_dir(tmp_path) -> None:
    hub = HubSettings.load(data_dir=tmp_path)
    assert hub.effective_database_url == f"sqlite:///{tmp_path / 'hub.sqlite3'}"


def test_logs_are_json_and_scrubbed() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    logging.getLogger("storewave.test").info(
        "customer %s checked in", "+86 138-0013-8000", extra={"phone": "13800138000", "store": "s1"}
    )
    line = json.loads(stream.getvalue().strip())
    assert "138" not in stream.getvalue()
    assert line["store"] == "s1"
    assert line["phone"] == "<redacted>"
    assert scrub("order 12") == "order 12"
    # Ids whose hex happens to hold long digit runs are not phone numbers.
    assert scrub("key_01a2252025d376628a57") == "key_01a2252025d376628a57"
    assert scrub("call 13800138000 now") == "call <redacted> now"
    assert scrub("tel:+8613800138000") == "tel:<redacted>"
