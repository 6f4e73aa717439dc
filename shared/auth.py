"""Tokens: constant-time comparison, minted secrets with readable prefixes, and encryption at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

from shared.errors import Unauthorized


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


def tokens_match(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def require_bearer(authorization: str | None, expected: str) -> None:
    if not tokens_match(bearer_token(authorization), expected):
        raise Unauthorized("missing or invalid bearer token")


# Every prefix of a secret we mint: shared.logging redacts a value of any of these shapes, so a
# new kind of token is registered here or mint_token refuses it.
MINTED_PREFIXES = (
    "pool_gw",  # an instance's GATEWAY_TOKEN
    "svc_it",  # an instance's INSTANCE_SERVICES_TOKEN
)


def mint_token(prefix: str) -> str:
    """A random secret with a readable prefix (`pool_gw_…`), so a leaked one is recognisable."""
    if prefix not in MINTED_PREFIXES:
        raise ValueError(f"register the token prefix {prefix!r} in shared.auth.MINTED_PREFIXES")
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    """Symmetric encryption for secrets we must read back (tool keys, gateway tokens).

    Any passphrase works as the key: it is stretched to a Fernet key with SHA-256, so operators
    can set a plain random string.
    """

    def __init__(self, key: str) -> None:
        digest = hashlib.sha256(key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured key") from exc
