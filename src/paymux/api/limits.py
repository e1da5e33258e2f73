"""Request body limits: the route classes and the largest body each accepts (``PAYMUX_BODY_LIMIT_*``).

| class | routes | default |
|---|---|---|
| channel | ``/api/v1/...`` except the admin API | 64 KiB |
| gateway | inbound gateways, ``/osmp/...``, ``/cyberplat/...`` (``inbound_prefixes``) | 16 KiB |
| catalog | ``POST /api/v1/admin/catalog`` | 4 MiB |
| upload | registers, bank statements, invoice batches and files (``/api/v1/invoices[/upload]``) | 64 MiB |
| backoffice | other back-office pages | 1 MiB |
| admin | the rest of the admin API, and any other route | 1 MiB |
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paymux.errors import Problem
from paymux.gateways.base import inbound_prefixes
from paymux.settings import Settings

ADMIN = "/api/v1/admin/"
INVOICES = "/api/v1/invoices"  # a batch of up to 10,000 invoices
UPLOADS = re.compile(
    r"/api/v1/admin/providers/[^/]+/reconciliations"
    r"|/api/v1/admin/bank-statements"
    r"|/api/v1/admin/invoices/statements"
    r"|/backoffice/reconciliation"
    r"|/backoffice/settlement/statements"
    r"|/api/v1/invoices/upload"
    r"|/api/v1/admin/billers/[^/]+/invoices/upload"
    r"|/backoffice/billers/[^/]+/upload"
)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    channel: int
    gateway: int
    catalog: int
    upload: int
    backoffice: int
    admin: int

    @classmethod
    def of(cls, settings: Settings) -> BodyLimits:
        return cls(
            channel=settings.body_limit_channel,
            gateway=settings.body_limit_gateway,
            catalog=settings.body_limit_catalog,
            upload=settings.body_limit_upload,
            backoffice=settings.body_limit_backoffice,
            admin=settings.body_limit_admin,
        )

    def for_request(self, method: str, path: str) -> int:
        """The largest body accepted for ``method path``."""
        if method == "POST" and (path == INVOICES or UPLOADS.fullmatch(path)):
            return self.upload
        if path.startswith(ADMIN):
            return self.catalog if path == "/api/v1/admin/catalog" and method == "POST" else self.admin
        if path.startswith("/api/"):
            return self.channel
        if path.startswith("/backoffice"):
            return self.backoffice
        if path.startswith(inbound_prefixes()):
            return self.gateway
        return self.admin


class BodyTooLarge(Problem):
    """The request body is longer than its route class accepts (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "body-too-large", "Request body too large", f"at most {limit} bytes", limit=limit
        )
        self.limit = limit
