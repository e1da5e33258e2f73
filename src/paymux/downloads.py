"""A file sent for download from memory (exports, statements, reports): one place for the headers."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from paymux import offload

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def attachment(data: bytes, name: str, media_type: str = XLSX) -> Response:
    """``data`` as a file named ``name`` (``Content-Disposition: attachment``)."""
    return Response(data, media_type=media_type, headers=_disposition(name))


class BuiltAttachment(Response):
    """A file whose bytes ``build`` makes in a thread as the answer is sent: writing a workbook of many
    rows takes seconds of CPU, which would otherwise hold up every other request of the process."""

    def __init__(self, build: Callable[[], bytes], name: str, media_type: str = XLSX) -> None:
        super().__init__(b"", media_type=media_type, headers=_disposition(name))
        self._build = build

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.body = await offload.in_thread(self._build)
        self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def attachment_built(build: Callable[[], bytes], name: str, media_type: str = XLSX) -> Response:
    """Like :func:`attachment`, with the bytes made by ``build()`` in a thread when sent."""
    return BuiltAttachment(build, name, media_type)
