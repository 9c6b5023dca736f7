"""Encryption of secret values at rest (Fernet, key from CONFIG_ENCRYPTION_KEY)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from configstore import conf


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    return Fernet(key.encode() if isinstance(key, str) else key)


def encrypt_value(value: Any) -> str:
    """The Fernet token of a JSON value."""
    return _fernet(conf.encryption_key()).encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()


def decrypt_value(token: str) -> Any:
    """The JSON value in a token; raises `ValueError` when the key does not match."""
    try:
        return json.loads(_fernet(conf.encryption_key()).decrypt(token.encode()))
    except InvalidToken:
        raise ValueError("Secret cannot be decrypted with CONFIG_ENCRYPTION_KEY.") from None
