"""uvloop's loop with TCP servers that accept every waiting connection per turn (paymux.bulk_accept)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest

from paymux import bulk_accept, event_loop
from paymux.bulk_accept import BulkAcceptServer

BURST = 50


class Echo(asyncio.Protocol):
    made: ClassVar[list[Any]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's transports are not asyncio.Transport subclasses
        Echo.made.append(self.transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


def _on_bulk_loop(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    Echo.made = []
    return event_loop.run(fn(), "uvloop")


async def _turns_until(done: Callable[[], bool], limit: int = 500) -> int:
    """Turns of the loop (each polls for I/O once) until ``done()``."""
    for turn in range(1, limit + 1):
        await asyncio.sleep(0)
        if done():
            return turn
    raise AssertionError(f"not done after {limit} turns")


async def _echo(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = await reader.readexactly(len(data))
    writer.close()
    return answer


def test_a_burst_of_connections_is_let_in_at_once() -> None:
    """Connections waiting in the backlog are accepted in the same turn, not one per turn (libuv's
    way since 1.45, which let a busy hub take a new connection only every few milliseconds)."""

    async def main() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=128)
        assert isinstance(server, BulkAcceptServer)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
        try:
            turns = await _turns_until(lambda: len(Echo.made) == BURST)
            nodelay = all(
                t.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for t in Echo.made
            )
            assert await _echo(port, b"paid") == b"PAID"
        finally:
            for c in clients:
                c.close()
            server.close()
            await server.wait_closed()
        return turns, nodelay

    turns, nodelay = _on_bulk_loop(main)
    assert turns <= 5  # one turn accepts, the next hands each connection to its protocol
    assert nodelay  # answers are not held back by Nagle's algorithm


def test_close_stops_listening_and_leaves_connections_made() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert server.is_serving()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _turns_until(lambda: len(Echo.made) == 1)
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"still here")  # the connection made before close goes on
        assert await reader.readexactly(10) == b"STILL HERE"
        writer.close()

    _on_bulk_loop(main)


def test_a_given_socket_is_served_and_other_options_stay_with_uvloop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = await loop.create_server(Echo, sock=sock, start_serving=False)
        assert isinstance(server, BulkAcceptServer) and not server.is_serving()
        await server.start_serving()
        assert await _echo(sock.getsockname()[1], b"given") == b"GIVEN"
        server.close()
        await server.wait_closed()
        # options this server does not handle go to uvloop's own
        other = await loop.create_server(Echo, "127.0.0.1", 0, reuse_port=True)
        assert not isinstance(other, BulkAcceptServer)
        assert await _echo(other.sockets[0].getsockname()[1], b"uv") == b"UV"
        other.close()

    _on_bulk_loop(main)


def test_listening_on_every_address_of_a_name() -> None:
    socks = bulk_accept.listening_sockets("localhost", 0, 16)
    try:
        families = {s.family for s in socks}
        assert socket.AF_INET in families
        assert all(not s.getblocking() for s in socks)
    finally:
        for s in socks:
            s.close()


class _OutOfFiles(socket.socket):
    """A listening socket whose first accept fails as when the process has no descriptors left."""

    failures = 0

    def accept(self) -> tuple[socket.socket, Any]:
        if _OutOfFiles.failures == 0:
            _OutOfFiles.failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_out_of_descriptors_pauses_accepting_and_loses_no_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bulk_accept, "_PAUSE_ON_RESOURCES", 0.05)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = _OutOfFiles(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = await loop.create_server(Echo, sock=sock)
        try:
            answer = await asyncio.wait_for(_echo(sock.getsockname()[1], b"later"), 10)
        finally:
            server.close()
            await server.wait_closed()
        assert answer == b"LATER"

    _on_bulk_loop(main)
    assert _OutOfFiles.failures == 1
    assert "cannot accept connections now" in caplog.text
