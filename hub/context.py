"""What every request and service of one hub process shares: settings, engine, clock, ports."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from hub.clock import Clock
from hub.security import HubCrypto
from hub.services.ports import NodeControl
from storewave.settings import HubSettings


@dataclass(frozen=True)
class HubContext:
    """The hub's process-wide collaborators, built once by ``create_app``."""

    settings: HubSettings
    engine: Engine
    clock: Clock
    node_control: NodeControl
    crypto: HubCrypto
