"""Broker credentials: Mosquitto-compatible hashes, the store, and the ACL rules."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.mqtt.credentials import (
    HUB_USERNAME,
    CredentialStore,
    hash_password,
    mosquitto_acl,
    node_may,
    read_password_file,
    verify_password,
)
from storewave.wire import NODE_ID_PATTERN


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """Our $7$ hash of a password is byte-identical to mosquitto_passwd's for the same salt."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd not installed: golden hash check NOT RUN")
    path = tmp_path / "pw"
    subprocess.run([tool, "-b", "-c", str(path), "node-1", "s3cret"], check=True)
    theirs = read_password_file(path)["node-1"]
    salt = base64.b64decode(theirs.split("$")[3])
    assert hash_password("s3cret", salt=salt) == theirs
    assert verify_password("s3cret", theirs)
    assert not verify_password("s3creT", theirs)


def test_verify_rejects_garbage() -> None:
    assert not verify_password("x", "")
    assert not verify_password("x", "$6$abc$def")
    assert not verify_password("x", "$7$notanumber$AAAA$BBBB")


def test_store_keeps_hub_account_and_rewrites_file(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.set_password("node-a", "pa")
    again = CredentialStore(tmp_path)  # a restarted hub keeps the same hub password
    assert again.hub_password == store.hub_password
    users = read_password_file(tmp_path / "passwords")
    assert set(users) == {HUB_USERNAME, "node-a"}
    assert verify_password(store.hub_password, users[HUB_USERNAME])
    assert again.remove("node-a") and not again.remove("node-a")
    assert set(read_password_file(tmp_path / "passwords")) == {HUB_USERNAME}
    assert (tmp_path / "passwords").stat().st_mode & 0o077 == 0


def test_hub_username_can_never_be_a_node_id() -> None:
    import re

    assert not re.match(NODE_ID_PATTERN, HUB_USERNAME)


@pytest.mark.parametrize(
    ("user", "topic", "write", "allowed"),
    [
        ("node-a", "sw/v1/nodes/node-a/events", True, True),
        ("node-a", "sw/v1/nodes/node-a/telemetry", True, True),
        ("node-a", "sw/v1/nodes/node-a/status", True, True),
        ("node-a", "sw/v1/nodes/node-b/events", True, False),
        ("node-a", "sw/v1/nodes/node-a/config", True, False),
        ("node-a", "sw/v1/nodes/node-a/ack", True, False),
        ("node-a", "sw/v1/nodes/node-a/config", False, True),
        ("node-a", "sw/v1/nodes/node-a/cmd", False, True),
        ("node-a", "sw/v1/nodes/node-b/config", False, False),
        ("node-a", "sw/v1/nodes/+/events", False, False),
        ("node-a", "sw/v1/#", False, False),
        ("node-a", "sw/v1/hub/status", False, True),
        (HUB_USERNAME, "sw/v1/nodes/+/events", False, True),
        (HUB_USERNAME, "sw/v1/nodes/node-b/config", True, True),
        (HUB_USERNAME, "other/topic", True, False),
    ],
)
def test_acl_rules(user: str, topic: str, write: bool, allowed: bool) -> None:
    assert node_may(user, topic, write) is allowed


def test_mosquitto_acl_uses_username_patterns() -> None:
    acl = mosquitto_acl()
    assert "pattern write sw/v1/nodes/%u/events" in acl
    assert "pattern read sw/v1/nodes/%u/config" in acl
    assert f"user {HUB_USERNAME}\ntopic readwrite sw/v1/#" in acl
