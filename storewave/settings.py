"""All StoreWave settings, from environment variables and one TOML file, validated at start.

Precedence (highest first): explicit arguments, environment variables
(``STOREWAVE_<SECTION>__<FIELD>``, e.g. ``STOREWAVE_HUB__DATABASE_URL``), the section
of the TOML file named by ``STOREWAVE_CONFIG`` (or ``--config``), then the defaults
below. Each part reads only its own section: ``[hub]``, ``[edge]``, ``[kiosk]``,
``[sim]``, ``[log]``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

CONFIG_ENV_VAR = "STOREWAVE_CONFIG"

# Values that people paste from examples; a secret equal to one of them is refused at
# start, so a deployment never runs on a key that is printed in the README.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "example", ""})


class ConfigFileError(ValueError):
    """The TOML configuration file is missing, unreadable or malformed."""


def read_config_section(section: str, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return the ``[section]`` table of the TOML file (empty when there is no file)."""
    raw = path if path is not None else os.environ.get(CONFIG_ENV_VAR)
    if not raw:
        return {}
    file = Path(raw)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigFileError(f"configuration file {file} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"configuration file {file} is not valid TOML: {exc}") from exc
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise ConfigFileError(f"[{section}] in {file} must be a table")
    return table


class _TomlSectionSource(PydanticBaseSettingsSource):
    """Settings source that reads one table of the StoreWave TOML file."""

    def __init__(self, settings_cls: type[BaseSettings], section: str, path: str | None) -> None:
        super().__init__(settings_cls)
        self._data = read_config_section(section, path)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class SectionSettings(BaseSettings):
    """Base for one section of the settings; subclasses set ``section``."""

    section: ClassVar[str] = ""
    config_path: ClassVar[str | None] = None

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _TomlSectionSource(settings_cls, cls.section, cls.config_path),
        )

    @classmethod
    def load(cls, config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Any:
        """Build the settings, reading ``config_path`` (or ``$STOREWAVE_CONFIG``) if given."""
        path = str(config_path) if config_path is not None else None
        bound = type(cls.__name__, (cls,), {"config_path": path})
        return bound(**overrides)


class LogSettings(SectionSettings):
    """Logging: one setup for every part (see ``storewave.logs``)."""

    section: ClassVar[str] = "log"
    model_config = SettingsConfigDict(env_prefix="STOREWAVE_LOG__", extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "text"


class CampaignSettings(BaseModel):
    """Campaign rules that hold across all campaigns (``[hub.campaigns]``)."""

    model_config = ConfigDict(extra="forbid")

    # Three keeps a rewarded visit special without making a second check-in pointless.
    global_daily_cap: int = Field(
        3, ge=1, le=100, description="Grants per customer per store day, all campaigns together"
    )


class HubSettings(SectionSettings):
    """The hub: API server, database, broker."""

    section: ClassVar[str] = "hub"
    model_config = SettingsConfigDict(env_prefix="STOREWAVE_HUB__", extra="forbid")

    data_dir: Path = Field(Path("var/hub"), description="Writable directory for the hub's state")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at <data_dir>/hub.sqlite3"
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    broker: str = Field("auto", description="auto | mosquitto | amqtt | mqtt://host:port")
    secret_key: str = Field(
        "",
        description="Key for hashing API keys/phones and encrypting contact data; empty means "
        "generate one into <data_dir>/secret.key on first start",
    )
    outbox_sender: Literal["log", "webhook"] = Field(
        "log", description="How customer messages leave the outbox: log (no PII) or webhook"
    )
    outbox_webhook_url: str = Field(
        "", description="The SMS/push/dialer gateway URL the webhook sender POSTs each message to"
    )
    campaigns: CampaignSettings = Field(default_factory=CampaignSettings)

    @model_validator(mode="after")
    def _webhook_has_url(self) -> HubSettings:
        if self.outbox_sender == "webhook" and not self.outbox_webhook_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("outbox_sender = 'webhook' needs an http(s) outbox_webhook_url")
        return self

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholder(cls, value: str) -> str:
        if value and (value.lower() in PLACEHOLDER_SECRETS or len(value) < 32):
            raise ValueError("secret_key must be a real secret of at least 32 characters")
        return value

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the default SQLite file in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'hub.sqlite3'}"


class EdgeSettings(SectionSettings):
    """One store node (``storewave edge run --config node.toml``)."""

    section: ClassVar[str] = "edge"
    model_config = SettingsConfigDict(env_prefix="STOREWAVE_EDGE__", extra="forbid")

    node_id: str = Field("", description="Node id = MQTT username and client id")
    password: str = Field("", description="The node's MQTT password from provisioning")
    broker_url: str = "mqtt://127.0.0.1:1883"
    data_dir: Path = Path("var/edge")
    input_device: str | None = None
    output_device: str | None = None
    sample_rate: int = Field(48000, description="48000 or 44100")
    tls_ca_file: Path | None = Field(None, description="CA bundle; set (or mqtts://) for TLS")
    outbox_soft_cap: int = Field(
        20_000, ge=1, description="Outbox rows before the oldest telemetry is shed"
    )
    outbox_hard_cap: int = Field(
        200_000, ge=1, description="Outbox rows before the oldest detections are shed"
    )
    drain_rate_per_s: float = Field(2_500.0, gt=0, description="Outbox publish rate limit")
    ack_timeout_s: float = Field(10.0, gt=0, description="Resend an event unacked this long")
    flush_timeout_s: float = Field(5.0, ge=0, description="SIGTERM: wait this long for acks")

    @field_validator("sample_rate")
    @classmethod
    def _supported_rate(cls, value: int) -> int:
        if value not in (44100, 48000):
            raise ValueError("sample_rate must be 44100 or 48000")
        return value


class KioskSettings(SectionSettings):
    """The in-store kiosk."""

    section: ClassVar[str] = "kiosk"
    model_config = SettingsConfigDict(env_prefix="STOREWAVE_KIOSK__", extra="forbid")

    hub_url: str = "http://127.0.0.1:8080"
    api_key: str = ""
    store_id: str = ""
    idle_timeout_s: float = Field(60.0, gt=0)
    # The language every customer starts in (the reset returns to it): en or zh.
    default_language: Literal["en", "zh"] = "en"


class SimSettings(SectionSettings):
    """The simulator."""

    section: ClassVar[str] = "sim"
    model_config = SettingsConfigDict(env_prefix="STOREWAVE_SIM__", extra="forbid")

    seed: int = 20131001
    sample_rate: int = 48000
