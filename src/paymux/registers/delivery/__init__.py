"""Delivery of a built register: e-mail (SMTP), FTP/FTPS, SFTP."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DeliveryError(RuntimeError):
    """A delivery failed; the message names the destination, never its secrets."""


@dataclass(frozen=True)
class Outgoing:
    path: Path
    file_name: str
    content_type: str
    subject: str
    context: dict[str, Any]


def tls_context(verify: bool, ca_pem: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe(d: Any) -> str:
    return f"{d.kind} {d.host}:{d.port}"


async def deliver(d: Any, out: Outgoing) -> None:
    """Send ``out`` to destination ``d`` (one of the delivery schemas)."""
    if d.kind == "email":
        from paymux.registers.delivery.smtp import send_email

        await asyncio.to_thread(send_email, d, out)
    elif d.kind == "ftp":
        from paymux.registers.delivery.ftp import upload_ftp

        await asyncio.to_thread(upload_ftp, d, out)
    elif d.kind == "sftp":
        from paymux.registers.delivery.sftp import upload_sftp

        await upload_sftp(d, out)
    else:  # pragma: no cover - the schema admits no other kind
        raise DeliveryError(f"unknown delivery kind {d.kind!r}")
