"""uvloop's loop with TCP servers that accept every waiting connection per turn (paymux.bulk_accept)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest

from paymux import bulk_accept, event_loop
from paymux.bulk_accept import BulkAcceptServer
from tls_support import Pki, make_pki

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


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _tls_echo(port: int, ctx: ssl.SSLContext, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(data)
    answer = await reader.readexactly(len(data))
    writer.close()
    return answer


def test_tls_connections_are_let_in_at_once_and_handshake_in_the_loop(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A TLS server accepts every waiting connection per turn too (each then makes its handshake);
    a failed handshake is logged as such, not as an error, and the server goes on; closing it drops
    handshakes still waiting instead of waiting for them."""
    caplog.set_level(logging.INFO, logger="paymux.server")

    async def main() -> tuple[int, float]:
        loop: Any = asyncio.get_running_loop()
        handed: list[Any] = []
        hand_over = loop.connect_accepted_socket

        async def recording(factory: Any, sock: socket.socket, **kwargs: Any) -> Any:
            handed.append(kwargs.get("ssl"))
            return await hand_over(factory, sock, **kwargs)

        loop.connect_accepted_socket = recording
        context = pki.server_context(ssl.CERT_REQUIRED)
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=128, ssl=context)
        assert isinstance(server, BulkAcceptServer)
        port = server.sockets[0].getsockname()[1]
        try:
            assert await _tls_echo(port, pki.client_context(cert=True), b"paid") == b"PAID"
            transport = Echo.made[-1]
            assert transport.get_extra_info("sslcontext") is context  # uvicorn: scheme https
            assert transport.get_extra_info("peercert")["subject"] == ((("commonName", "terminal-0001"),),)
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await _tls_echo(port, pki.client_context(), b"no certificate")
            assert await _echo_refused(port)  # not TLS at all
            assert await _tls_echo(port, pki.client_context(cert=True), b"again") == b"AGAIN"
            handed.clear()
            # a burst of connections that never start their handshake
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
            turns = await _turns_until(lambda: len(handed) == BURST)
            assert all(c is context for c in handed)
            started = time.monotonic()
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)
            closing = time.monotonic() - started
            for c in clients:
                c.close()
        finally:
            server.close()
        return turns, closing

    turns, closing = _on_bulk_loop(main)
    assert turns <= 5
    assert closing < 5  # not the 60 s a handshake may take
    failed = [r for r in caplog.records if "TLS handshake with 127.0.0.1 failed" in r.getMessage()]
    assert len(failed) >= 2 and all(r.levelno == logging.INFO for r in failed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _echo_refused(port: int) -> bool:
    """Plain bytes to a TLS server: the connection is closed without an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        data = b""
    writer.close()
    return not data.startswith(b"HTTP/")
