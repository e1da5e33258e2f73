"""What a trusted TLS-terminating proxy tells us: the client's address and its certificate identity."""

from __future__ import annotations

from starlette.requests import Request

from paymux.auth.access import ip_allowed
from paymux.backoffice.settings import BackofficeSettings


def from_trusted_proxy(request: Request, settings: BackofficeSettings) -> bool:
    peer = request.client.host if request.client else ""
    return bool(settings.trusted_proxies) and ip_allowed(peer, settings.trusted_proxies)


def client_ip(request: Request, settings: BackofficeSettings) -> str:
    """The peer's address; behind a trusted proxy, the address it appended to X-Forwarded-For."""
    peer = request.client.host if request.client else ""
    if from_trusted_proxy(request, settings):
        forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",") if p.strip()]
        if forwarded:
            return forwarded[-1]
    return peer


def certificate_identity(request: Request, settings: BackofficeSettings) -> str | None:
    """The verified client-certificate identity, only when a trusted proxy sent the configured header."""
    if not settings.cert_header or not from_trusted_proxy(request, settings):
        return None
    value = request.headers.get(settings.cert_header, "").strip()
    return value or None
