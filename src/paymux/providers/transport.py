"""An httpx transport on aiohttp's connection pool, for the hub's calls to providers.

Protocol plug-ins keep the ``httpx.AsyncClient`` API; underneath, the requests go through an
aiohttp ``ClientSession``. The JSON/HTTP protocol's hot path (:meth:`ProviderClient.post_bytes`)
uses the lean client of :mod:`paymux.providers.lean_http` instead, with the same failure mapping.
httpcore's pool scans every connection (and asks each socket whether it
is readable) on every request, so its cost grows with the number of payments in flight: about
3 ms of CPU per request at 32 in flight here, against about 0.4 ms through this transport.

The mapping of failures is what keeps a payment from being paid twice, so it is strict: only a
failure to *establish* the connection becomes :class:`httpx.ConnectError` /
:class:`httpx.ConnectTimeout` (the request certainly did not reach the provider: the hub may send it
elsewhere). Everything after that (a dropped connection, a read timeout, a broken answer) becomes a
read-side error, which protocols classify as "the answer was lost".
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import http.cookiejar
import ssl
import zlib
from typing import Any

import aiohttp
import httpx

from paymux.providers import send_guard
from paymux.providers.lean_http import LeanHttp


def _timeouts(request: httpx.Request) -> aiohttp.ClientTimeout:
    t: dict[str, Any] = request.extensions.get("timeout", {})
    return _client_timeout(t.get("connect"), t.get("read"), t.get("pool"))


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    acquire = None if connect is None and pool is None else (connect or 0) + (pool or 0)
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=read)


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Any,
    body: bytes | None,
    timeouts: aiohttp.ClientTimeout,
    request: httpx.Request,
) -> tuple[aiohttp.ClientResponse, bytes]:
    """One request through aiohttp; its failures mapped to httpx's (see the module's docstring)."""
    try:
        response = await session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            timeout=timeouts,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
    except aiohttp.ClientConnectorError as e:  # refused, unreachable, DNS, TLS handshake
        raise httpx.ConnectError(str(e) or type(e).__name__, request=request) from e
    except aiohttp.ConnectionTimeoutError as e:  # no connection within the connect timeout
        raise httpx.ConnectTimeout(str(e) or "connect timeout", request=request) from e
    except (TimeoutError, aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError) as e:
        raise httpx.ReadTimeout(str(e) or "read timeout", request=request) from e
    except aiohttp.ClientError as e:  # sent (perhaps in part) and then something broke
        raise httpx.ReadError(str(e) or type(e).__name__, request=request) from e
    try:
        raw = await response.read()
    except (TimeoutError, aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError) as e:
        raise httpx.ReadTimeout(str(e) or "read timeout", request=request) from e
    except aiohttp.ClientError as e:
        raise httpx.ReadError(str(e) or type(e).__name__, request=request) from e
    finally:
        response.release()
    return response, raw


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one aiohttp session (created in the running loop on first use)."""

    def __init__(self, *, max_connections: int = 512, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max_connections = max_connections
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ssl=self._ssl if self._ssl is not None else True
            )
            # no cookies kept between payments, no headers of aiohttp's own beyond what HTTP needs
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        send_guard.before_send()
        response, raw = await _send(
            self._client(),
            request.method,
            str(request.url),
            list(request.headers.multi_items()),
            body,
            _timeouts(request),
            request,
        )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=httpx.ByteStream(raw),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _NoCookies(http.cookiejar.CookieJar):
    """Providers get no cookies back: every payment's exchange stands on its own."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


class ProviderClient(httpx.AsyncClient):
    """The ``httpx.AsyncClient`` the hub gives each provider's protocol, plus :meth:`post_bytes`:
    a POST straight through a lean HTTP/1.1 client (:mod:`.lean_http`), without httpx's request and
    response objects or aiohttp's request machinery (most of the client's CPU per payment on the
    delivery path)."""

    def __init__(self, timeout: httpx.Timeout | float | None, max_connections: int) -> None:
        self._aiohttp = AiohttpTransport(max_connections=max_connections)
        self._max_connections = max_connections
        self._lean: LeanHttp | None = None
        self._lean_loop: asyncio.AbstractEventLoop | None = None
        super().__init__(timeout=timeout, transport=self._aiohttp, cookies=_NoCookies())

    def _lean_client(self) -> LeanHttp:
        loop = asyncio.get_running_loop()
        if self._lean is None or self._lean_loop is not loop:  # connections belong to one loop
            self._lean = LeanHttp(max_connections=self._max_connections)
            self._lean_loop = loop
        return self._lean

    async def post_bytes(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: httpx.Timeout
    ) -> tuple[int, bytes]:
        """POST ``content``; the status and body, or httpx's exceptions as the transport maps them."""
        status, answer_headers, raw = await self._lean_client().post(
            url,
            content,
            headers,
            connect_timeout=timeouts.connect,
            read_timeout=timeouts.read,
            pool_timeout=timeouts.pool,
        )
        coding = next((v for k, v in answer_headers if k.lower() == b"content-encoding"), None)
        return status, _decoded(coding.decode("latin-1") if coding is not None else None, raw)

    async def aclose(self) -> None:
        if self._lean is not None:
            await self._lean.aclose()
            self._lean = None
        await super().aclose()


def _decoded(encoding: str | None, raw: bytes) -> bytes:
    """The body without its content coding (none is asked for, but a provider may send one)."""
    coding = (encoding or "identity").strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return gzip.decompress(raw)
        if coding == "deflate":
            try:
                return zlib.decompress(raw)
            except zlib.error:
                return zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    except (OSError, EOFError, zlib.error) as e:
        raise httpx.DecodingError(f"cannot decode a {coding} answer: {e}") from e
    if coding != "identity":
        raise httpx.DecodingError(f"unsupported content coding {coding!r}")
    return raw


async def post_bytes(
    http: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str], timeouts: httpx.Timeout
) -> tuple[int, bytes]:
    """POST through ``http``: the fast path of a :class:`ProviderClient`, else httpx's own."""
    if isinstance(http, ProviderClient):
        return await http.post_bytes(url, content, headers, timeouts)
    response = await http.post(url, content=content, headers=headers, timeout=timeouts)
    return response.status_code, response.content


def provider_client(
    timeout: httpx.Timeout | float | None = 10.0, max_connections: int = 512
) -> ProviderClient:
    """An ``httpx.AsyncClient`` as the hub gives one to each provider's protocol."""
    return ProviderClient(timeout, max_connections)
