"""Versioned journey definitions: publish a new version, find the latest, load a version's spec."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from hub.models.journeys import JourneyDefinition
from hub.services.errors import Invalid, NotFound
from hub.services.journeys.schema import DefinitionError, JourneySpec, parse_spec

log = logging.getLogger(__name__)

# Versions never change once stored, so a parsed spec can be kept for the process's life.
_SPECS: dict[int, JourneySpec] = {}
_SPECS_LOCK = threading.Lock()


def publish(session: Session, raw: Any, now: datetime) -> JourneyDefinition:
    """Validate ``raw`` and store it as the next version of its journey (Invalid if it is not)."""
    try:
        spec = parse_spec(raw)
    except DefinitionError as exc:
        raise Invalid(f"invalid journey definition: {exc}", code="invalid_definition") from None
    current = session.execute(
        select(func.max(JourneyDefinition.version)).where(JourneyDefinition.name == spec.name)
    ).scalar_one()
    row = JourneyDefinition(
        name=spec.name,
        version=(current or 0) + 1,
        spec=spec.model_dump(mode="json"),
        created_at=now,
    )
    session.add(row)
    session.flush()
    with _SPECS_LOCK:
        _SPECS[row.id or 0] = spec
    log.info("journey published", extra={"journey": spec.name, "version": row.version})
    return row


def latest(session: Session, name: str) -> JourneyDefinition:
    """The newest version of journey ``name``, or NotFound."""
    row = session.execute(
        select(JourneyDefinition)
        .where(JourneyDefinition.name == name)
        .order_by(col(JourneyDefinition.version).desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"journey {name!r} not found")
    return row


def versions(session: Session, name: str | None = None) -> list[JourneyDefinition]:
    """Every stored version (of one journey, if named), oldest first."""
    query = select(JourneyDefinition).order_by(JourneyDefinition.name, JourneyDefinition.version)
    if name is not None:
        query = query.where(JourneyDefinition.name == name)
    return list(session.execute(query).scalars())


def spec_of(session: Session, definition_id: int) -> JourneySpec:
    """The parsed spec of a stored version (cached: versions are immutable)."""
    spec = _SPECS.get(definition_id)
    if spec is not None:
        return spec
    row = session.get(JourneyDefinition, definition_id)
    if row is None:
        raise NotFound(f"journey definition {definition_id} not found")
    spec = parse_spec(row.spec)
    with _SPECS_LOCK:
        _SPECS[definition_id] = spec
    return spec


def forget_cache() -> None:
    """Drop cached specs (tests that empty the database reuse definition ids)."""
    with _SPECS_LOCK:
        _SPECS.clear()
