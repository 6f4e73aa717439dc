"""Webhook signatures, exactly as the vendors sign them (specs/agentmail.md, specs/telnyx.md).

- AgentMail delivers through Svix: HMAC-SHA256 over `<svix-id>.<svix-timestamp>.<raw body>`, keyed with
  the base64-decoded part of the `whsec_...` secret; `svix-signature` holds space-separated `v1,<base64>`
  entries (several during a secret rotation), any one of which may match.
- Telnyx: Ed25519 over `<telnyx-timestamp>|<raw body>` with the account's public key;
  `telnyx-signature-ed25519` is the base64 signature.
Both are checked on the raw bytes (never re-serialised JSON), in constant time, and refuse a
timestamp further than the tolerance from now."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class BadSignature(Exception):
    """Why a delivery is refused (said in logs, never to the caller beyond 'bad signature')."""


def _fresh(timestamp: str | None, tolerance: float, now: float | None) -> None:
    try:
        sent = int(timestamp or "")
    except ValueError:
        raise BadSignature("missing or malformed timestamp") from None
    if abs((now if now is not None else time.time()) - sent) > tolerance:
        raise BadSignature("timestamp outside the tolerance")


def verify_svix(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: float, now: float | None = None
) -> None:
    message_id, timestamp = headers.get("svix-id"), headers.get("svix-timestamp")
    signatures = headers.get("svix-signature") or ""
    if not message_id or not signatures:
        raise BadSignature("missing svix headers")
    _fresh(timestamp, tolerance, now)
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (binascii.Error, ValueError):
        raise BadSignature("the configured secret is not base64") from None
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return
    raise BadSignature("no signature matches")


def sign_svix(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `svix-signature` a sender with `secret` puts on `body` (for the fakes and tests)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_telnyx(
    public_key: str, headers: Mapping[str, str], body: bytes, *, tolerance: float, now: float | None = None
) -> None:
    timestamp = headers.get("telnyx-timestamp")
    _fresh(timestamp, tolerance, now)
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        signature = base64.b64decode(headers.get("telnyx-signature-ed25519") or "", validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("malformed key or signature") from None
    try:
        key.verify(signature, f"{timestamp}|".encode() + body)
    except InvalidSignature:
        raise BadSignature("the signature does not verify") from None
