"""Short-lived customer tokens: a channel mints one for a customer it signed up; the customer's app
then calls the customer API with it.

A token is ``pmxw.<customer id>.<channel id>.<expiry, Unix seconds>.<HMAC-SHA256 hex>``, the MAC over
``<customer id>.<channel id>.<expiry>`` with the wallet token secret: ``PAYMUX_WALLETS_TOKEN_SECRET``
if set, else a random secret the first node made and stored in the database (``wallet_token_keys``),
so every node of one installation checks every other's tokens. Nothing is stored per token: it is
valid until it expires (15 minutes by default); blocking the customer refuses its operations at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import weakref
from dataclasses import dataclass

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select

from paymux.db.concurrent import inserted
from paymux.runtime import Hub
from paymux.wallets.models import WalletTokenKey

PREFIX = "pmxw"


class WalletSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_WALLETS_", extra="ignore")

    token_secret: SecretStr = Field(
        default=SecretStr(""), description="signs customer tokens (empty: a random one kept in the database)"
    )
    token_ttl_seconds: int = Field(
        default=900, ge=30, le=86_400, description="how long a customer token lives"
    )


@dataclass(frozen=True, slots=True)
class CustomerClaims:
    customer_id: int
    channel_id: int
    expires: int


_cached: weakref.WeakKeyDictionary[object, bytes] = weakref.WeakKeyDictionary()  # by hub


async def signing_key(hub: Hub, settings: WalletSettings) -> bytes:
    configured = settings.token_secret.get_secret_value()
    if configured:
        return configured.encode()
    key = _cached.get(hub)
    if key is not None:
        return key
    async with hub.sessions() as session:
        row = await session.scalar(select(WalletTokenKey).order_by(WalletTokenKey.id).limit(1))
        if row is None:
            made = WalletTokenKey(id=1, secret=secrets.token_hex(32))
            if await inserted(session, made):
                await session.commit()
            row = await session.scalar(select(WalletTokenKey).order_by(WalletTokenKey.id).limit(1))
        assert row is not None
        _cached[hub] = key = row.secret.encode()
    return key


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def mint(key: bytes, customer_id: int, channel_id: int, ttl: int, now: int | None = None) -> tuple[str, int]:
    expires = (int(time.time()) if now is None else now) + ttl
    payload = f"{customer_id}.{channel_id}.{expires}"
    return f"{PREFIX}.{payload}.{_mac(key, payload)}", expires


def verify(key: bytes, token: str, now: int | None = None) -> CustomerClaims | None:
    """The claims of a valid, unexpired token; None otherwise."""
    if len(token) > 200 or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != PREFIX or not all(p.isdigit() and len(p) <= 19 for p in parts[1:4]):
        return None
    payload = ".".join(parts[1:4])
    if not hmac.compare_digest(_mac(key, payload), parts[4]):
        return None
    customer_id, channel_id, expires = (int(p) for p in parts[1:4])
    if expires <= (int(time.time()) if now is None else now):
        return None
    return CustomerClaims(customer_id, channel_id, expires)
