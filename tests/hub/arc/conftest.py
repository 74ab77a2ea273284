"""ARC fixtures: a fresh spec cache per test (tables are emptied, ids reused)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from hub.services.journeys import definitions


@pytest.fixture
def arc_engine(engine: Engine) -> Iterator[Engine]:
    """The emptied test engine, with no journey specs cached from earlier tests."""
    definitions.forget_cache()
    yield engine
    definitions.forget_cache()
