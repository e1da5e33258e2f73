"""Helpers for the KYC, support and texts tests (no tests here): a back-office client on a hub,
small valid and invalid files."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import AsyncIterator

import httpx

from paymux.api.app import create_app
from paymux.backoffice.settings import BackofficeSettings
from paymux.runtime import Hub
from test_backoffice_support import add_user, login


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
NOT_AN_IMAGE = b"MZ\x90\x00 this is an executable, not a passport"


@contextlib.asynccontextmanager
async def bo_client(hub: Hub, username: str, role: str) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in back-office browser (over ASGI) for a new user of ``role`` on ``hub``."""
    await add_user(hub, username, role)
    app = create_app(hub)
    app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        r = await login(http, username)
        assert r.status_code == 303, r.text[:300]
        yield http
