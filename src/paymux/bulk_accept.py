"""TCP servers that accept every waiting connection each time their socket is readable.

libuv (under uvloop) accepts ONE connection per turn of the event loop since version 1.45. On a busy
hub a turn lasts milliseconds (a group-commit batch, a few dozen requests), so a burst of new
connections is let in one per turn: clients that open a connection per request (terminals, scripts,
proxies without keep-alive) waited up to hundreds of milliseconds before the hub even read their
request, and at concurrency 64 such clients got a quarter of the payments per second that
asyncio's own loop gives them (which accepts up to ``backlog`` connections per turn).

:class:`BulkAcceptLoop` is uvloop's loop with :meth:`~BulkAcceptLoop.create_server` answered by a
:class:`BulkAcceptServer`: it listens on plain sockets, accepts everything waiting in one go and hands
each connection to the loop with ``connect_accepted_socket`` (uvloop's fast transports, as before;
with TLS, uvloop's TLS protocol over them, the handshake made there). Options it does not handle
stay with uvloop's own server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable, Iterable
from typing import Any

import uvloop

log = logging.getLogger("paymux.server")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
# out of file descriptors or memory: stop accepting for a moment (the connections wait in the backlog)
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_PAUSE_ON_RESOURCES = 1.0  # seconds


def listening_sockets(host: str | Iterable[str] | None, port: int, backlog: int) -> list[socket.socket]:
    """Non-blocking sockets listening on every address ``host`` resolves to (all, when None)."""
    if host is None or host == "":
        hosts: list[str | None] = [None]
    else:
        hosts = [host] if isinstance(host, str) else list(host)
    seen: set[tuple[int, Any]] = set()
    socks: list[socket.socket] = []
    try:
        for h in hosts:
            for family, kind, proto, _, addr in socket.getaddrinfo(
                h, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            ):
                if (family, addr) in seen:
                    continue
                seen.add((family, addr))
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
        for sock in socks:
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class BulkAcceptServer(asyncio.AbstractServer):
    """Listens on ``sockets``; each time one is readable, accepts up to ``backlog`` connections."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        protocol_factory: ProtocolFactory,
        backlog: int,
        ssl: ssl_module.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
    ) -> None:
        self._loop = loop
        self._sockets = sockets
        self._factory = protocol_factory
        self._backlog = max(1, backlog)
        self._ssl = ssl
        self._handshake_timeout = ssl_handshake_timeout
        self._serving = False
        self._closed = loop.create_future()
        self._starting: set[asyncio.Task[Any]] = set()  # connections being handed to the loop

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving or self._closed.done():
            return
        self._serving = True
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.shield(self._closed)

    def close(self) -> None:
        """Stop listening (connections already made go on; TLS handshakes still under way are
        dropped, as a client that never completes one would otherwise hold the shutdown)."""
        if self._closed.done():
            return
        for sock in self._sockets:
            if self._serving:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._serving = False
        self._closed.set_result(None)
        if self._ssl is not None:
            for task in self._starting:
                task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up before we got to it
            except OSError as e:
                if e.errno in _RESOURCE_ERRNOS:
                    log.error("cannot accept connections now (%s); again in %.0f s", e, _PAUSE_ON_RESOURCES)
                    self._loop.remove_reader(sock.fileno())
                    self._loop.call_later(_PAUSE_ON_RESOURCES, self._resume, sock)
                    return
                log.warning("accepting a connection failed: %s", e)
                continue
            conn.setblocking(False)  # uvloop's transport sets TCP_NODELAY on it
            task = self._loop.create_task(self._hand_over(conn, addr))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    def _resume(self, sock: socket.socket) -> None:
        if self._serving and not self._closed.done():
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    async def _hand_over(self, conn: socket.socket, addr: Any) -> None:
        try:
            if self._ssl is None:
                await self._loop.connect_accepted_socket(self._factory, conn)
            else:  # the protocol sees the connection once the handshake is done
                await self._loop.connect_accepted_socket(
                    self._factory, conn, ssl=self._ssl, ssl_handshake_timeout=self._handshake_timeout
                )
        except asyncio.CancelledError:  # the server closed during the handshake
            conn.close()  # (a socket uvloop took is only marked closed: uvloop closes its descriptor)
            raise
        except OSError as e:
            if self._ssl is None:
                log.exception("a connection could not be set up")
            else:  # not TLS, no or an untrusted client certificate, a client that left
                peer = addr[0] if isinstance(addr, tuple) and addr else addr
                log.info("TLS handshake with %s failed: %s", peer, e)
            conn.close()
        except Exception:
            log.exception("a connection could not be set up")
            conn.close()


class BulkAcceptLoop(uvloop.Loop):
    """uvloop, with TCP servers (plain or TLS) that accept every waiting connection per turn."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: ProtocolFactory,
        host: str | Iterable[str] | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        handshake_timeout = kwargs.pop("ssl_handshake_timeout", None)
        if kwargs or (ssl is not None and not isinstance(ssl, ssl_module.SSLContext)):
            if handshake_timeout is not None:
                kwargs["ssl_handshake_timeout"] = handshake_timeout
            uv: Any = super()  # uvloop's own server (its overloads do not take these types as one)
            server: asyncio.AbstractServer = await uv.create_server(
                protocol_factory,
                host,
                port,
                sock=sock,
                backlog=backlog,
                ssl=ssl,
                start_serving=start_serving,
                **kwargs,
            )
            return server
        if sock is not None:
            sock.listen(backlog)
            sock.setblocking(False)
            socks = [sock]
        else:
            socks = listening_sockets(host, port or 0, backlog)
        bulk = BulkAcceptServer(self, socks, protocol_factory, backlog, ssl, handshake_timeout)
        if start_serving:
            await bulk.start_serving()
        return bulk


def new_event_loop() -> asyncio.AbstractEventLoop:
    return BulkAcceptLoop()
