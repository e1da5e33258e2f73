"""What a trusted TLS-terminating proxy tells us: the client's address and its certificate identity."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from paymux.auth.access import ip_allowed
from paymux.backoffice.settings import BackofficeSettings, get_backoffice_settings


def proxy_settings(app: Any) -> BackofficeSettings:
    """The settings naming the trusted proxies: the app's ``state.backoffice_settings`` if set, else
    from the environment (``PAYMUX_BACKOFFICE_TRUSTED_PROXIES``)."""
    s = getattr(getattr(app, "state", None), "backoffice_settings", None)
    return s if isinstance(s, BackofficeSettings) else get_backoffice_settings()


def from_trusted_proxy(request: Request, settings: BackofficeSettings) -> bool:
    peer = request.client.host if request.client else ""
    return bool(settings.trusted_proxies) and ip_allowed(peer, settings.trusted_proxies)


def client_ip(request: Request, settings: BackofficeSettings) -> str:
    """The peer's address; behind a trusted proxy, the address it appended to X-Forwarded-For."""
    return scope_client_ip(request.scope, request.headers.get("x-forwarded-for"), settings)


def scope_client_ip(scope: Scope, forwarded_for: str | None, settings: BackofficeSettings) -> str:
    """:func:`client_ip` of an ASGI scope and its X-Forwarded-For header (the lean payment path)."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if forwarded_for and settings.trusted_proxies and ip_allowed(peer, settings.trusted_proxies):
        forwarded = [p.strip() for p in forwarded_for.split(",") if p.strip()]
        if forwarded:
            return forwarded[-1]
    return peer


def certificate_identity(request: Request, settings: BackofficeSettings) -> str | None:
    """The verified client-certificate identity, only when a trusted proxy sent the configured header."""
    if not settings.cert_header or not from_trusted_proxy(request, settings):
        return None
    value = request.headers.get(settings.cert_header, "").strip()
    return value or None
