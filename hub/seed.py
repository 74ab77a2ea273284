"""Loads the demo registry in ``seeds/`` (regions, stores, zones, nodes, beacons); idempotent."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from hub.clock import Clock, SystemClock
from hub.models.registry import (
    BeaconCreate,
    Node,
    NodeCreate,
    Region,
    RegionCreate,
    Store,
    StoreCreate,
    Zone,
    ZoneCreate,
)
from hub.security import HubCrypto, resolve_secret
from hub.services.ports import NodeControl, NullNodeControl
from hub.services.provisioning import create_beacon, provision_node
from storewave.settings import HubSettings

log = logging.getLogger(__name__)

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"
REGISTRY_FILE = "registry.json"


class SeedError(ValueError):
    """The seed file is missing or does not follow the registry's models."""


@dataclass
class SeedSummary:
    """What one load created (existing ids are skipped, so a second load creates nothing)."""

    regions: int = 0
    stores: int = 0
    zones: int = 0
    nodes: int = 0
    beacons: int = 0
    services: int = 0
    skipped: int = 0
    # One-time MQTT passwords of the nodes created by this load (for the demo's edge nodes).
    node_passwords: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> dict[str, Any]:
    """The registry document at ``path`` (a file, or a directory holding registry.json)."""
    file = path / REGISTRY_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise SeedError(f"seed file {file} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SeedError(f"seed file {file} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SeedError(f"seed file {file} must hold a JSON object")
    return data


def _validated(model: Any, raw: dict[str, Any], where: str) -> Any:
    """``raw`` parsed as ``model``, with the offending entry named in the error."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise SeedError(f"{where} {raw.get('id', '?')!r}: {first['loc']}: {first['msg']}") from None


def load_seeds(
    session: Session,
    path: Path | None = None,
    *,
    settings: HubSettings | None = None,
    crypto: HubCrypto | None = None,
    clock: Clock | None = None,
    node_control: NodeControl | None = None,
) -> SeedSummary:
    """Create the seeded regions, stores, zones, nodes and beacons that do not exist yet.

    Beacon keys and node passwords are generated here; keys are encrypted with the hub
    secret (from ``crypto``, else from ``settings``/the environment). Does not commit.
    """
    data = _read(path or SEEDS_DIR)
    crypto = crypto or HubCrypto(resolve_secret(settings or HubSettings.load()))
    clock = clock or SystemClock()
    control = node_control or NullNodeControl()
    summary = SeedSummary()
    for raw in data.get("regions", []):
        spec = _validated(RegionCreate, raw, "region")
        if session.get(Region, spec.id) is None:
            session.add(Region.model_validate(spec))
            summary.regions += 1
        else:
            summary.skipped += 1
    session.flush()
    for raw in data.get("stores", []):
        spec = _validated(StoreCreate, raw, "store")
        if session.get(Store, spec.id) is None:
            session.add(Store.model_validate(spec))
            summary.stores += 1
        else:
            summary.skipped += 1
    session.flush()
    for raw in data.get("zones", []):
        spec = _validated(ZoneCreate, raw, "zone")
        if session.get(Zone, spec.id) is None:
            session.add(Zone(id=spec.id, name=spec.name, store_id=raw["store_id"]))
            summary.zones += 1
        else:
            summary.skipped += 1
    session.flush()
    for raw in data.get("nodes", []):
        beacon_raw = raw.get("beacon")
        spec = _validated(NodeCreate, {k: v for k, v in raw.items() if k != "beacon"}, "node")
        if session.get(Node, spec.id) is not None:
            summary.skipped += 1
            continue
        node, password = provision_node(session, crypto, clock, control, spec)
        summary.nodes += 1
        summary.node_passwords[node.id] = password
        if beacon_raw:
            beacon_spec = _validated(
                BeaconCreate, {"node_id": node.id, "range_m": beacon_raw["range_m"]}, "beacon"
            )
            create_beacon(
                session, crypto, clock, control, beacon_spec, short_id=beacon_raw.get("short_id")
            )
            summary.beacons += 1
    session.flush()
    # The ARC service catalogue (data services with trials) sits beside the registry.
    seeds_dir = path if path is not None and path.is_dir() else SEEDS_DIR if path is None else None
    if seeds_dir is not None and (seeds_dir / "services.json").exists():
        from hub.services.arc import load_service_catalogue

        summary.services = load_service_catalogue(session, seeds_dir / "services.json")
        session.flush()
    log.info(
        "seeds loaded",
        extra={"stores": summary.stores, "nodes": summary.nodes, "skipped": summary.skipped},
    )
    return summary
