"""Webhook signatures as the vendors make them: Svix's HMAC (with secret rotation) and Telnyx's Ed25519,
each refused when tampered with, re-signed with another key, or stale."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.inbound.signatures import BadSignature, sign_svix, verify_svix, verify_telnyx

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD = "whsec_" + base64.b64encode(b"an old secret being rotated away").decode()
BODY = b'{"type":"event","event_type":"message.received"}'


def svix(
    body: bytes = BODY, *, secret: str = SECRET, stamp: int | None = None, extra: str = ""
) -> dict[str, str]:
    stamp = stamp if stamp is not None else int(time.time())
    signature = sign_svix(secret, "msg_1", stamp, body)
    return {
        "svix-id": "msg_1",
        "svix-timestamp": str(stamp),
        "svix-signature": f"{extra} {signature}".strip(),
    }


def test_svix_accepts_its_signature_also_beside_a_rotated_one() -> None:
    verify_svix(SECRET, svix(), BODY, tolerance=300)
    rotated = svix(extra=sign_svix(OLD, "msg_1", int(time.time()), BODY))
    verify_svix(SECRET, rotated, BODY, tolerance=300)


@pytest.mark.parametrize(
    "headers, body",
    [
        (svix(), BODY + b" "),  # tampered (even whitespace: the raw bytes are signed)
        (svix(secret=OLD), BODY),  # another secret
        (svix(stamp=int(time.time()) - 301), BODY),  # stale
        ({"svix-id": "msg_1", "svix-timestamp": "x", "svix-signature": "v1,AAAA"}, BODY),
        ({}, BODY),
    ],
)
def test_svix_refuses(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(BadSignature):
        verify_svix(SECRET, headers, body, tolerance=300)


def test_telnyx_ed25519() -> None:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(key.sign(f"{stamp}|".encode() + BODY)).decode()
    headers = {"telnyx-timestamp": stamp, "telnyx-signature-ed25519": signature}
    verify_telnyx(public, headers, BODY, tolerance=300)
    for bad_headers, bad_body in (
        (headers, BODY + b"x"),
        ({**headers, "telnyx-timestamp": str(int(stamp) - 1)}, BODY),
        ({**headers, "telnyx-signature-ed25519": "not base64!"}, BODY),
        ({"telnyx-signature-ed25519": signature}, BODY),
    ):
        with pytest.raises(BadSignature):
            verify_telnyx(public, bad_headers, bad_body, tolerance=300)
    other = Ed25519PrivateKey.generate()
    forged = base64.b64encode(other.sign(f"{stamp}|".encode() + BODY)).decode()
    with pytest.raises(BadSignature):
        verify_telnyx(public, {**headers, "telnyx-signature-ed25519": forged}, BODY, tolerance=300)
