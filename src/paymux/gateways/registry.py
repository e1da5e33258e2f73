"""The gateways as the request path sees them: cached views, client address, authentication.

A process keeps the gateways in memory for ``PAYMUX_CATALOG_CACHE_SECONDS`` and reloads them at
once when its catalog snapshot was replaced (a change through the admin API or catalog file).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from paymux.gateways.models import InboundGateway
from paymux.gateways.service import password_matches
from paymux.runtime import Hub

if TYPE_CHECKING:
    from paymux.gateways.base import InboundProtocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_cert_value(value: str) -> str:
    """Certificate header values compare case-insensitively, without ':' (fingerprint notation)."""
    return value.strip().lower().replace(":", "")


@dataclass(frozen=True, slots=True)
class GatewayView:
    id: int
    code: str
    protocol: str
    channel_id: int
    enabled: bool
    services: tuple[str, ...]
    default_service: str | None
    service_param: str
    limits: Mapping[str, tuple[int | None, int | None]]
    ignore_params: frozenset[str]
    check: str
    check_txn_id: str
    pay_result: str
    login: str | None
    password_hash: str | None
    cert_header: str | None
    cert_allowed: frozenset[str]
    allow_ips: tuple[IPNetwork, ...]
    trusted_proxies: tuple[IPNetwork, ...]
    config: Mapping[str, Any]  # the protocol's own settings (keys, serials...)

    @classmethod
    def of(cls, row: InboundGateway) -> GatewayView:
        s: dict[str, Any] = row.settings or {}
        cert = s.get("client_cert")
        return cls(
            id=row.id,
            code=row.code,
            protocol=row.protocol,
            channel_id=row.channel_id,
            enabled=row.enabled,
            services=tuple(s.get("services") or ()),
            default_service=s.get("default_service"),
            service_param=s.get("service_param") or "service",
            limits={cur: (r.get("min"), r.get("max")) for cur, r in (s.get("limits") or {}).items()},
            ignore_params=frozenset(s.get("ignore_params") or ()),
            check=s.get("check") or "provider",
            check_txn_id=s.get("check_txn_id") or "own",
            pay_result=s.get("pay_result") or "accepted",
            login=row.login,
            password_hash=row.password_hash,
            cert_header=cert["header"] if cert else None,
            cert_allowed=frozenset(normalize_cert_value(v) for v in (cert or {}).get("allowed", ())),
            allow_ips=tuple(ipaddress.ip_network(n, strict=False) for n in s.get("allow_ips") or ()),
            trusted_proxies=tuple(
                ipaddress.ip_network(n, strict=False) for n in s.get("trusted_proxies") or ()
            ),
            config=dict(s.get("config") or {}),
        )


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _within(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, nets: tuple[IPNetwork, ...]) -> bool:
    return addr is not None and any(addr in n for n in nets)


def from_trusted_proxy(gw: GatewayView, peer: str | None) -> bool:
    return _within(_ip(peer), gw.trusted_proxies)


def client_address(gw: GatewayView, peer: str | None, forwarded_for: str | None) -> str | None:
    """The payment system's address: the TCP peer, or behind trusted proxies the rightmost
    ``X-Forwarded-For`` entry that is not one of them."""
    if not forwarded_for or not from_trusted_proxy(gw, peer):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        addr = _ip(hop)
        if addr is None:
            return None  # a garbled chain: trust nothing in it
        if not _within(addr, gw.trusted_proxies):
            return str(addr)
    return peer


def address_allowed(gw: GatewayView, address: str | None) -> bool:
    return not gw.allow_ips or _within(_ip(address), gw.allow_ips)


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(login, password) of an ``Authorization: Basic`` header, None when there is none or it is garbled."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


class GatewayRegistry:
    """The gateways of one hub process, by code."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._by_code: dict[str, GatewayView] = {}
        self._loaded_ns = 0
        self._snapshot: object = None
        self._lock = asyncio.Lock()
        self._verified: set[tuple[int, str, str]] = set()  # (gateway, hash, sha256 of login+password)
        self._protocols: dict[int, tuple[GatewayView, InboundProtocol]] = {}  # by gateway id

    async def get(self, code: str) -> GatewayView | None:
        snap = await self.hub.catalog.get()
        ttl = self.hub.settings.catalog_cache_seconds * 1_000_000_000
        if snap is not self._snapshot or time.monotonic_ns() - self._loaded_ns >= ttl:
            async with self._lock:
                if snap is not self._snapshot or time.monotonic_ns() - self._loaded_ns >= ttl:
                    async with self.hub.read_sessions() as session:
                        rows = (await session.scalars(select(InboundGateway))).all()
                    self._by_code = {r.code: GatewayView.of(r) for r in rows}
                    self._protocols.clear()
                    self._snapshot = snap
                    self._loaded_ns = time.monotonic_ns()
        return self._by_code.get(code)

    def protocol(self, gw: GatewayView) -> InboundProtocol:
        """The gateway's protocol instance (made from its ``config`` once per loaded view)."""
        from paymux.gateways.base import inbound_protocol

        held = self._protocols.get(gw.id)
        if held is not None and held[0] is gw:
            return held[1]
        instance = inbound_protocol(gw.protocol)(dict(gw.config))
        self._protocols[gw.id] = (gw, instance)
        return instance

    async def password_ok(self, gw: GatewayView, login: str, password: str) -> bool:
        """Login and password match the gateway's; argon2 runs in a thread, successes are remembered."""
        if gw.login is None or gw.password_hash is None or login != gw.login:
            return False
        key = (gw.id, gw.password_hash, hashlib.sha256(f"{login}\0{password}".encode()).hexdigest())
        if key in self._verified:
            return True
        ok = await asyncio.to_thread(password_matches, gw.password_hash, password)
        if ok:
            if len(self._verified) > 1000:
                self._verified.clear()
            self._verified.add(key)
        return ok


_registries: weakref.WeakKeyDictionary[Hub, GatewayRegistry] = weakref.WeakKeyDictionary()


def registry_of(hub: Hub) -> GatewayRegistry:
    reg = _registries.get(hub)
    if reg is None:
        reg = _registries[hub] = GatewayRegistry(hub)
    return reg
