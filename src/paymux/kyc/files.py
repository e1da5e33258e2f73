"""Checking an uploaded file: its type by its first bytes (JPEG, PNG, PDF), its size, its SHA-256.

Shared by KYC documents and support tickets' attachments. The name a client gives is kept only for
showing (control characters and path parts taken out); the type is never taken from it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


class UploadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_UPLOADS_", extra="ignore")

    max_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        le=50 * 1024 * 1024,
        description="the largest KYC document or ticket attachment accepted, in bytes",
    )


class UploadRefused(ValueError):
    """A file that is empty, too large or not a JPEG, PNG or PDF (the message is an English msgid)."""


@dataclass(frozen=True)
class CheckedFile:
    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) of ``data`` by its first bytes, or None."""
    for magic, content_type, ext in MAGIC:
        if data.startswith(magic):
            return content_type, ext
    return None


def clean_name(name: str | None, ext: str) -> str:
    base = _UNSAFE.sub("", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()[:150]
    return base or f"document{ext}"


def check(data: bytes, filename: str | None, max_bytes: int | None = None) -> CheckedFile:
    """The file if it may be kept; ``UploadRefused`` otherwise."""
    limit = max_bytes if max_bytes is not None else UploadSettings().max_bytes
    if not data:
        raise UploadRefused("The file is empty.")
    if len(data) > limit:
        raise UploadRefused("The file is larger than the limit.")
    found = sniff(data)
    if found is None:
        raise UploadRefused("Only JPEG, PNG and PDF files are accepted.")
    content_type, ext = found
    return CheckedFile(
        clean_name(filename, ext), content_type, len(data), hashlib.sha256(data).hexdigest(), data
    )
