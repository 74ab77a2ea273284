"""Fixtures every suite may use: service discovery with loud skips, seeded RNGs."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest

_NOT_RUN: list[str] = []


def _note_not_run(reason: str) -> None:
    if reason not in _NOT_RUN:
        _NOT_RUN.append(reason)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL (``STOREWAVE_TEST_PG_URL``), else a loud skip.

    ``tests/run.sh`` sets the variable only after it has seen the server answer, so a
    set-but-unreachable URL is a failure, not a skip.
    """
    url = os.environ.get("STOREWAVE_TEST_PG_URL")
    if not url:
        reason = "PostgreSQL not available (STOREWAVE_TEST_PG_URL unset): PostgreSQL suites NOT RUN"
        _note_not_run(reason)
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    """Path of the mosquitto binary, else a loud skip."""
    path = os.environ.get("STOREWAVE_TEST_MOSQUITTO") or shutil.which("mosquitto")
    if not path and os.path.exists("/usr/sbin/mosquitto"):
        path = "/usr/sbin/mosquitto"
    if not path:
        reason = "mosquitto binary not found: Mosquitto suites NOT RUN"
        _note_not_run(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Undo any ``setup_logging`` a test (or a CLI it invokes) did to the root logger.

    A handler bound to one test's captured stderr would outlive the test and make every
    later log line from a background thread fail on a closed file.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator so every test run sees the same 'random' input."""
    return np.random.default_rng(20131001)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat, at the very end, which suites could not run here."""
    if _NOT_RUN:
        terminalreporter.section("SUITES NOT RUN ON THIS MACHINE", sep="!", red=True, bold=True)
        for reason in _NOT_RUN:
            terminalreporter.line(f"!!! {reason}", red=True, bold=True)
