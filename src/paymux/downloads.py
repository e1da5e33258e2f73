"""A file sent for download from memory (exports, statements, reports): one place for the headers."""

from __future__ import annotations

from fastapi.responses import Response

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def attachment(data: bytes, name: str, media_type: str = XLSX) -> Response:
    """``data`` as a file named ``name`` (``Content-Disposition: attachment``)."""
    return Response(
        data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
