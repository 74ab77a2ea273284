"""The hub's secret and what it keys: hashes of phones/tokens/keys, and encryption at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from storewave.settings import HubSettings

log = logging.getLogger(__name__)

SECRET_FILE_NAME = "secret.key"
# 256 bits of entropy, as hex: the same strength as the HMAC-SHA256 it keys.
GENERATED_SECRET_BYTES = 32
# The settings refuse a shorter configured secret; a generated file is held to the same bar.
MIN_SECRET_CHARS = 32
# Beacon keys a hub decrypts on every check-in: one entry per beacon, bounded for safety.
DECRYPT_CACHE_SIZE = 50_000
# Random part of issued API keys and session tokens: 192 bits, so a plain keyed hash
# (no slow KDF) is enough to store them: they cannot be brute-forced.
TOKEN_BYTES = 24


class SecretError(RuntimeError):
    """The hub secret is missing, unreadable or too weak."""


def resolve_secret(settings: HubSettings) -> bytes:
    """The configured secret, else the one in ``<data_dir>/secret.key`` (created mode 0600)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / SECRET_FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(GENERATED_SECRET_BYTES))
        log.info("generated a new hub secret", extra={"path": str(path)})
    text = path.read_text().strip()
    if len(text) < MIN_SECRET_CHARS:
        raise SecretError(f"{path} holds a secret shorter than 32 characters")
    return text.encode()


class HubCrypto:
    """Keyed hashes and reversible encryption, all derived from the one hub secret.

    Each use gets its own derived key (domain separation), so a phone hash can never be
    confused with a token hash even for the same input.
    """

    def __init__(self, secret: bytes) -> None:
        """Derive the sub-keys from ``secret``."""
        self._hash_key = self._derive(secret, b"sw-hash-v1")
        fernet_key = base64.urlsafe_b64encode(self._derive(secret, b"sw-fernet-v1"))
        self._fernet = Fernet(fernet_key)
        self._cache: dict[str, str] = {}

    @staticmethod
    def _derive(secret: bytes, label: bytes) -> bytes:
        """A 256-bit sub-key of ``secret`` for ``label``."""
        return hmac.new(secret, label, hashlib.sha256).digest()

    def keyed_hash(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` for ``purpose`` (hex): lookups without storing ``value``."""
        msg = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._hash_key, msg, hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: str) -> str:
        """Fernet-encrypt ``plaintext`` (authenticated; the key never touches the DB)."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt_cached(self, token: str) -> str:
        """:meth:`decrypt` memoised per ciphertext (beacon keys on the check-in hot path)."""
        plain = self._cache.get(token)
        if plain is None:
            plain = self.decrypt(token)
            if len(self._cache) >= DECRYPT_CACHE_SIZE:
                self._cache.clear()
            self._cache[token] = plain
        return plain

    def decrypt(self, token: str) -> str:
        """Decrypt what :meth:`encrypt` produced; raise SecretError if it was not ours."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretError("ciphertext not readable with this hub secret") from None


def new_token(prefix: str) -> tuple[str, str]:
    """A fresh bearer token ``<prefix>_<public id>_<secret>`` and its public id."""
    public_id = secrets.token_hex(4)
    return f"{prefix}_{public_id}_{secrets.token_urlsafe(TOKEN_BYTES)}", public_id
