"""uvicorn's httptools protocol, with the writes of one loop turn sent as one.

An ASGI answer is two messages, its start (status line and headers) and its body, and uvicorn
writes each to the socket as it comes: two ``send()`` calls and, with ``TCP_NODELAY``, two packets
for every answer, and a client that may wake up for each. Here a connection's writes are gathered
until the end of the loop turn they were made in and sent as one: an answer written in one go (as
every JSON answer of the hub is) leaves in one packet. Nothing waits longer than the current turn
of the loop; closing, aborting or handing the connection on (an upgrade) sends or drops what is
gathered first, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_AT = 64 * 1024  # bytes gathered that are sent without waiting for the end of the turn


class CoalescingTransport:
    """A transport that gathers the writes of one loop turn and sends them together."""

    __slots__ = ("_chunks", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_AT:  # a long body goes on at once, under the transport's flow control
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for data in chunks:
            self.write(data)

    def flush(self) -> None:
        """Send what was gathered (nothing once the connection is closing)."""
        if not self._chunks:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._chunks.clear()
        self._size = 0
        self._transport.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
