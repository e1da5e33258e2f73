"""A lean HTTP/1.1 client for the protocols' hot path (:meth:`ProviderClient.post_bytes`).

A provider call is a POST of a few hundred bytes on a kept-alive connection. Through aiohttp it
also builds URL and header objects, runs tracing and cookie hooks and starts a task for the body:
about a tenth of the hub's main thread at full load. This client keeps only what the call needs:

* keep-alive connections per origin (scheme, host, port), at most ``max_connections`` in use at
  once; an idle connection the server closed is dropped when it closes;
* the answer parsed by httptools (the HTTP/1.1 parser under uvicorn): ``Content-Length``, chunked,
  or (without either) delimited by the end of the connection; ``1xx`` interim answers skipped;
* TLS by the standard library (``https``), with the server's name checked; ``user:password@`` in
  the URL is sent as HTTP Basic authorization;
* the failure mapping of :mod:`paymux.providers.transport`, which keeps a payment from being paid
  twice: only a failure to *establish* a connection (refused, unreachable, DNS, TLS handshake, connect
  timeout) or to get one from the pool in time is a ``ConnectError`` / ``ConnectTimeout`` /
  ``PoolTimeout``; once the request is written, every failure (a dropped connection, a read timeout,
  a malformed answer) is a read-side error.

No proxies, redirects, cookies or compression are asked for (providers are called directly; a
content coding a provider sends anyway is decoded by the caller).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import httptools
import httpx

from paymux.providers import send_guard

Origin = tuple[str, str, int]


@functools.lru_cache(maxsize=256)
def _target(url: str) -> tuple[Origin, bytes]:
    """The origin of ``url`` and the start of a request to it (request line and Host header)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise httpx.UnsupportedProtocol(f"cannot send to {url!r}: only http:// and https:// URLs")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default else f"{shown}:{port}"
    head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
    if parts.username is not None:  # user:password@ in the URL: HTTP Basic, as aiohttp and httpx send it
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("latin-1")
        head += b"Authorization: Basic " + base64.b64encode(pair) + b"\r\n"
    return (scheme, host, port), head


class _Connection(asyncio.Protocol):
    """One connection: writes a request, parses its answer, tells the waiting caller."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]] | None = None
        self._parser: Any = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._framed = False  # the answer says where it ends (Content-Length or chunked)
        self._got_headers = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have the same methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(httpx.RemoteProtocolError(f"malformed answer: {e}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._got_headers and not self._framed:  # an answer delimited by the end of the connection
            self._finish(keep_alive=False)
        else:
            why = str(exc) if exc else "the provider closed the connection before answering in full"
            self._fail(httpx.ReadError(why))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._got_headers = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one
            self._clear()  # follows, parsed by the same parser (it may be in this very chunk)
            return
        self._finish(keep_alive=bool(self._parser.should_keep_alive()))

    # the caller's side
    def request(self, data: bytes) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]]:
        assert self.transport is not None
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def timed_out(self) -> None:
        self._fail(httpx.ReadTimeout("the provider did not answer within the read timeout"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._clear()

    def _clear(self) -> None:
        self._status = 0
        self._headers = []
        self._body = []
        self._framed = False
        self._got_headers = False

    def _finish(self, keep_alive: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._headers, b"".join(self._body), keep_alive))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class LeanHttp:
    """Keep-alive connections to providers and POSTs over them (create and use in one event loop)."""

    def __init__(self, *, max_connections: int = 512, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl = ssl_context
        self._open: set[_Connection] = set()

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        pool_timeout: float | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """POST ``body``: the answer's status, headers and body (httpx's exceptions on failure)."""
        origin, head = _target(url)
        request = _request_bytes(head, headers, body)
        if not self._slots.locked() or pool_timeout is None:
            await self._slots.acquire()  # no wait (and no task) while a connection is free
        else:
            try:
                await asyncio.wait_for(self._slots.acquire(), pool_timeout)
            except TimeoutError:
                raise httpx.PoolTimeout(
                    "no free connection to the provider within the pool timeout"
                ) from None
        try:
            conn = await self._connection(origin, connect_timeout)
            return await self._exchange(origin, conn, request, read_timeout)
        finally:
            self._slots.release()

    async def _connection(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:  # set by close() and when the server closed it
                return conn
            self._open.discard(conn)
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl or _default_tls()
        try:
            connecting = loop.create_connection(
                _Connection, host, port, ssl=tls, server_hostname=host if tls is not None else None
            )
            if connect_timeout is None:
                _, conn = await connecting
            else:
                _, conn = await asyncio.wait_for(connecting, connect_timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within the connect timeout") from None
        except (OSError, ssl.SSLError) as e:  # refused, unreachable, DNS, TLS handshake
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {e}") from e
        self._open.add(conn)
        return conn

    async def _exchange(
        self, origin: Origin, conn: _Connection, request: bytes, read_timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            send_guard.before_send()  # nothing awaited between this check and the write below
        except send_guard.LeaseExpired:
            self._idle.setdefault(origin, deque()).append(conn)  # unused: back to the pool
            raise
        answer = conn.request(request)  # from here on the request may have reached the provider
        timer = (
            asyncio.get_running_loop().call_later(read_timeout, conn.timed_out)
            if read_timeout is not None
            else None
        )
        try:
            status, headers, body, keep_alive = await answer
        except BaseException:
            conn.close()  # half an exchange on it, or cancelled: never reused
            self._open.discard(conn)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if keep_alive and not conn.closed:
            self._idle.setdefault(origin, deque()).append(conn)
        else:
            conn.close()
            self._open.discard(conn)
        return status, headers, body

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()


def _request_bytes(head: bytes, headers: dict[str, str], body: bytes) -> bytes:
    lines = [head]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection") or (
            name.lower() == "authorization" and b"\r\nAuthorization: " in head
        ):
            continue  # this client's to set
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            # never sent: the provider cannot have seen it
            raise httpx.ConnectError(f"header {name!r} holds a line break or colon; the request was not sent")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()
