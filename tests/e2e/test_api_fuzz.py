"""Schemathesis against the hub's own OpenAPI: no request, however odd, gets a 5xx.

Runs as the admin (every route reachable) on a seeded SQLite hub, a bounded number of
generated requests per operation, so it stays inside the CI budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlmodel import Session

from hub.app import create_app
from hub.clock import ManualClock
from hub.db import make_engine
from hub.models.auth import ApiKeyCreate
from hub.security import HubCrypto, resolve_secret
from hub.seed import load_seeds
from hub.services.auth import create_api_key
from storewave.settings import HubSettings
from tests.hub.conftest import START, TEST_SECRET

# Generated requests per operation: enough to hit validation edges (empty, huge, wrong
# types) on every route; the whole run stays around a minute on two cores.
EXAMPLES_PER_OPERATION = 12


def _hub(tmp: Path) -> tuple[object, str]:
    settings = HubSettings.load(data_dir=tmp, secret_key=TEST_SECRET)
    engine = make_engine(settings.effective_database_url)
    clock = ManualClock(START)
    app = create_app(settings, clock=clock, engine=engine)
    crypto = HubCrypto(resolve_secret(settings))
    with Session(engine) as session:
        load_seeds(session, settings=settings, crypto=crypto, clock=clock)
        _, key = create_api_key(session, crypto, clock, ApiKeyCreate(name="fuzz", role="admin"))
        session.commit()
    return app, key


_TMP = Path(__import__("tempfile").mkdtemp(prefix="sw-fuzz-"))
APP, ADMIN_KEY = _hub(_TMP)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    """Every generated request gets a 2xx/4xx answer, never a 5xx."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN_KEY}"}, checks=[not_a_server_error]
    )


def test_schema_is_loadable_and_covers_the_api() -> None:
    """The OpenAPI document lists the API's operations (a generic client can drive it)."""
    operations = list(schema.get_all_operations())
    assert len(operations) > 50
    paths = {op.ok().path for op in operations}
    assert "/v1/checkins" in paths


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    import shutil

    shutil.rmtree(_TMP, ignore_errors=True)
