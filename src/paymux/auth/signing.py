"""Signed channel requests: HMAC-SHA256 or RSA-SHA256 over ``timestamp + "." + body``.

Headers: ``X-Paymux-Timestamp`` (Unix seconds) and ``X-Paymux-Signature`` (hex for HMAC,
base64 for RSA PKCS#1 v1.5). A timestamp further than the allowed skew from now is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TIMESTAMP_HEADER = "x-paymux-timestamp"
SIGNATURE_HEADER = "x-paymux-signature"


class SignatureError(ValueError):
    pass


def signed_payload(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"." + body


def hmac_sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), signed_payload(timestamp, body), hashlib.sha256).hexdigest()


def rsa_sign(private_key_pem: bytes, timestamp: str, body: bytes) -> str:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignatureError("not an RSA private key")
    sig = key.sign(signed_payload(timestamp, body), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode()


def verify(
    mode: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    hmac_secret: str | None,
    rsa_public_key: str | None,
    max_skew: int,
    now: int | None = None,
) -> None:
    """Raise SignatureError unless the signature is valid and fresh."""
    if not timestamp or not signature:
        raise SignatureError("missing X-Paymux-Timestamp or X-Paymux-Signature header")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureError("X-Paymux-Timestamp must be Unix seconds")
    current = int(time.time()) if now is None else now
    if abs(current - int(timestamp)) > max_skew:
        raise SignatureError(f"timestamp is more than {max_skew} s away from the server's clock")
    payload = signed_payload(timestamp, body)
    if mode == "hmac":
        if not hmac_secret:
            raise SignatureError("channel has no HMAC secret configured")
        expected = hmac.new(hmac_secret.encode(), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise SignatureError("signature does not match")
        return
    if mode == "rsa":
        if not rsa_public_key:
            raise SignatureError("channel has no RSA public key configured")
        key = serialization.load_pem_public_key(rsa_public_key.encode())
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError("channel key is not an RSA public key")
        try:
            raw = base64.b64decode(signature, validate=True)
            key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureError("signature does not match") from None
        return
    raise SignatureError(f"unknown signing mode {mode!r}")
