"""Inbound gateways in the catalog: upsert by code, list, convert back to the file form.

Like the rest of the catalog, functions flush and never commit, and an upsert reports
``created``, ``updated`` or ``unchanged``. A plain ``password`` is stored as an argon2id hash;
applying the same password again (or the exported hash) changes nothing.
"""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Channel, Service
from paymux.catalog.service import CatalogError, ChangeKind
from paymux.gateways.models import InboundGateway
from paymux.gateways.schemas import KEEP_PASSWORD, AmountRangeIn, ClientCertIn, GatewayAuthIn, GatewayIn
from paymux.masking import MaskedSecretError, keep_secrets, mask_secrets
from paymux.money import format_amount, parse_amount

__all__ = [
    "gateway_to_schema",
    "get_gateway",
    "hash_password",
    "list_gateways",
    "masked",
    "password_matches",
    "upsert_gateway",
]

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """Slow on purpose (argon2id): callers on a request path run it in a thread and cache successes."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def list_gateways(session: AsyncSession) -> list[InboundGateway]:
    return list((await session.execute(select(InboundGateway).order_by(InboundGateway.code))).scalars())


async def get_gateway(session: AsyncSession, code: str) -> InboundGateway:
    row = await session.scalar(select(InboundGateway).where(InboundGateway.code == code))
    if row is None:
        raise CatalogError(f"unknown gateway {code!r}")
    return row


def _secret_keys(protocol: str) -> frozenset[str]:
    from paymux.gateways.base import inbound_protocols

    cls = inbound_protocols().get(protocol)
    return cls.secret_config_keys if cls is not None else frozenset()


def _config(row: InboundGateway | None, data: GatewayIn) -> dict[str, Any]:
    """The config to store: a masked secret (``***``, as reads show it) keeps the stored value."""
    stored = dict((row.settings or {}).get("config") or {}) if row is not None else {}
    try:
        kept: dict[str, Any] = keep_secrets(dict(data.config), stored, _secret_keys(data.protocol), "config")
    except MaskedSecretError as e:
        raise CatalogError(str(e)) from None
    return kept


def _settings(data: GatewayIn) -> dict[str, Any]:
    """What the gateway row keeps in its ``settings`` column (money in minor units)."""
    limits = {
        cur: {
            "min": None if r.min is None else parse_amount(r.min, cur, allow_zero=True),
            "max": None if r.max is None else parse_amount(r.max, cur),
        }
        for cur, r in sorted(data.limits.items())
    }
    cert = data.auth.client_cert
    return {
        "services": list(data.services),
        "default_service": data.default_service,
        "service_param": data.service_param,
        "limits": limits,
        "ignore_params": list(data.ignore_params),
        "check": data.check,
        "check_txn_id": data.check_txn_id,
        "pay_result": data.pay_result,
        "client_cert": None if cert is None else {"header": cert.header, "allowed": list(cert.allowed)},
        "allow_ips": list(data.allow_ips),
        "trusted_proxies": list(data.trusted_proxies),
        **({"config": dict(data.config)} if data.config else {}),
    }


def _password_hash(row: InboundGateway | None, auth: GatewayAuthIn) -> str | None:
    if auth.password is not None:
        if row is not None and row.password_hash and password_matches(row.password_hash, auth.password):
            return row.password_hash  # the same password: keep its hash (and the row unchanged)
        return hash_password(auth.password)
    if auth.password_hash == KEEP_PASSWORD:
        if row is None or row.password_hash is None:
            raise CatalogError("password_hash '***' keeps the stored password, but none is stored yet")
        return row.password_hash
    return auth.password_hash


async def upsert_gateway(session: AsyncSession, data: GatewayIn) -> ChangeKind:
    """Create or update a gateway; its channel must be of kind ``gateway`` and its services exist."""
    channel = await session.scalar(select(Channel).where(Channel.code == data.channel_code))
    if channel is None:
        raise CatalogError(f"unknown channel {data.channel_code!r} (declare it under channels, kind gateway)")
    if channel.kind != "gateway":
        raise CatalogError(
            f"channel {channel.code!r} is of kind {channel.kind!r}; a gateway needs kind gateway"
        )
    known = set(
        (await session.execute(select(Service.code).where(Service.code.in_(data.services)))).scalars()
    )
    missing = [s for s in data.services if s not in known]
    if missing:
        raise CatalogError(f"unknown service(s) {', '.join(repr(s) for s in missing)}")
    row = await session.scalar(select(InboundGateway).where(InboundGateway.code == data.code))
    other = await session.scalar(select(InboundGateway).where(InboundGateway.channel_id == channel.id))
    if other is not None and (row is None or other.id != row.id):
        raise CatalogError(f"channel {channel.code!r} already belongs to gateway {other.code!r}")
    data = data.model_copy(update={"config": _config(row, data)})
    values: dict[str, Any] = {
        "name": data.name,
        "protocol": data.protocol,
        "channel_id": channel.id,
        "enabled": data.enabled,
        "settings": _settings(data),
        "login": data.auth.login,
        "password_hash": _password_hash(row, data.auth),
    }
    if row is None:
        session.add(InboundGateway(code=data.code, **values))
        await session.flush()
        return "created"
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if not changed:
        return "unchanged"
    await session.flush()
    return "updated"


async def gateway_to_schema(session: AsyncSession, row: InboundGateway) -> GatewayIn:
    s = row.settings or {}
    channel = await session.get(Channel, row.channel_id)
    channel_code = channel.code if channel is not None else str(row.channel_id)
    cert = s.get("client_cert")
    limits = {
        cur: AmountRangeIn(
            min=None if r.get("min") is None else format_amount(r["min"], cur),
            max=None if r.get("max") is None else format_amount(r["max"], cur),
        )
        for cur, r in (s.get("limits") or {}).items()
    }
    return GatewayIn(
        code=row.code,
        name=row.name,
        protocol=row.protocol,
        channel=None if channel_code == row.code else channel_code,
        enabled=row.enabled,
        services=list(s.get("services") or []),
        default_service=s.get("default_service"),
        service_param=s.get("service_param") or "service",
        limits=limits,
        ignore_params=list(s.get("ignore_params") or []),
        check=s.get("check") or "provider",
        check_txn_id=s.get("check_txn_id") or "own",
        pay_result=s.get("pay_result") or "accepted",
        auth=GatewayAuthIn(
            login=row.login,
            password_hash=row.password_hash,
            client_cert=None if cert is None else ClientCertIn.model_validate(cert),
        ),
        allow_ips=list(s.get("allow_ips") or []),
        trusted_proxies=list(s.get("trusted_proxies") or []),
        config=dict(s.get("config") or {}),
    )


def masked(gateway: GatewayIn) -> GatewayIn:
    """The gateway as every read shows it: its password hash as ``***`` (sending it back keeps the hash)."""
    return GatewayIn.model_validate(
        mask_secrets(gateway.model_dump(mode="json"), _secret_keys(gateway.protocol))
    )
