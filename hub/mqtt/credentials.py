"""Broker credentials: Mosquitto-format PBKDF2 password file, the hub's own account, ACL rules.

Hashes are written here rather than by running ``mosquitto_passwd`` once per node: the
format (``$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>``, Mosquitto 2.0) is a few
lines of ``hashlib``, works when only amqtt is installed, and our amqtt auth plugin
verifies the very same file, so both brokers share one credential store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path

from storewave.wire import NODE_ID_PATTERN, TOPIC_PREFIX

log = logging.getLogger(__name__)

# The hub's broker account. The leading underscore is outside NODE_ID_PATTERN, so no
# provisioned node can ever be given (or claim) the hub's username.
HUB_USERNAME = "_storewave_hub"
# mosquitto_passwd's default. Node and hub passwords are >= 32 random bytes, so key
# stretching adds no security; a cheap hash keeps a fleet-wide reconnect storm cheap.
PBKDF2_ITERATIONS = 101
# mosquitto_passwd uses a 12-byte salt.
SALT_BYTES = 12
HASH_PREFIX = "$7$"
# Passwords the hub generates for itself: 32 bytes of entropy, URL-safe text.
GENERATED_PASSWORD_BYTES = 32
# Owner-only: the files hold password hashes and the hub's clear password.
SECRET_FILE_MODE = 0o600

# Topics a node may publish to / read from, by leaf under its own subtree (DESIGN.md).
NODE_WRITE_LEAVES = ("events", "telemetry", "status")
NODE_READ_LEAVES = ("config", "cmd", "ack")


def hash_password(
    password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """A Mosquitto 2.0 ``$7$`` PBKDF2-SHA512 hash of ``password``."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (
        f"{HASH_PREFIX}{iterations}${base64.b64encode(salt).decode()}$"
        f"{base64.b64encode(digest).decode()}"
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (constant-time compare)."""
    try:
        _, kind, iterations, salt_b64, digest_b64 = encoded.split("$")
        if kind != "7":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_password() -> str:
    """A fresh random password for a broker account."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file + rename) with owner-only permissions."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_password_file(path: Path) -> dict[str, str]:
    """``username -> hash`` from a Mosquitto password file (missing file: empty)."""
    users: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return users
    for line in lines:
        if line and not line.startswith("#") and ":" in line:
            user, encoded = line.split(":", 1)
            users[user] = encoded
    return users


class CredentialStore:
    """The broker password file plus the hub's own clear password, both under ``directory``."""

    def __init__(self, directory: Path) -> None:
        """Load (or create) the store in ``directory``; the hub account always exists."""
        directory.mkdir(parents=True, exist_ok=True)
        self.password_file = directory / "passwords"
        self._hub_secret_file = directory / "hub.secret"
        self._lock = threading.Lock()
        self._users = read_password_file(self.password_file)
        if self._hub_secret_file.exists():
            self.hub_password = self._hub_secret_file.read_text(encoding="utf-8").strip()
        else:
            self.hub_password = new_password()
            _write_private(self._hub_secret_file, self.hub_password + "\n")
        if not verify_password(self.hub_password, self._users.get(HUB_USERNAME, "")):
            self._users[HUB_USERNAME] = hash_password(self.hub_password)
        self._save()

    def set_password(self, username: str, password: str) -> None:
        """Create or replace ``username``'s password and rewrite the file."""
        with self._lock:
            self._users[username] = hash_password(password)
            self._save()

    def remove(self, username: str) -> bool:
        """Delete ``username``; True when it existed."""
        with self._lock:
            existed = self._users.pop(username, None) is not None
            if existed:
                self._save()
            return existed

    def usernames(self) -> list[str]:
        """Every account in the file, the hub's included."""
        with self._lock:
            return sorted(self._users)

    def _save(self) -> None:
        """Persist the accounts as a Mosquitto password file."""
        text = "".join(f"{user}:{encoded}\n" for user, encoded in sorted(self._users.items()))
        _write_private(self.password_file, text)


def mosquitto_acl() -> str:
    """The ACL file: the hub reads/writes the whole tree; each node only its own subtree.

    ``%u`` is the username, which is the node id, so one pattern covers every node.
    """
    lines = [
        "# Generated by StoreWave (hub.mqtt.credentials); edits are overwritten.",
        f"# Node ids match {NODE_ID_PATTERN}; the hub account is {HUB_USERNAME}.",
        f"user {HUB_USERNAME}",
        f"topic readwrite {TOPIC_PREFIX}/#",
        "",
    ]
    lines += [f"pattern write {TOPIC_PREFIX}/nodes/%u/{leaf}" for leaf in NODE_WRITE_LEAVES]
    lines += [f"pattern read {TOPIC_PREFIX}/nodes/%u/{leaf}" for leaf in NODE_READ_LEAVES]
    lines.append(f"pattern read {TOPIC_PREFIX}/hub/status")
    return "\n".join(lines) + "\n"


def node_may(username: str, topic: str, write: bool) -> bool:
    """The ACL as a predicate (used by the amqtt plugin; mirrors :func:`mosquitto_acl`)."""
    if username == HUB_USERNAME:
        return topic == TOPIC_PREFIX or topic.startswith(TOPIC_PREFIX + "/")
    if not write and topic == f"{TOPIC_PREFIX}/hub/status":
        return True
    leaves = NODE_WRITE_LEAVES if write else NODE_READ_LEAVES
    return any(topic == f"{TOPIC_PREFIX}/nodes/{username}/{leaf}" for leaf in leaves)
