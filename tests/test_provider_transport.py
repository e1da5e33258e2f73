"""The hub's HTTP transport to providers: what reaches the server, and how each failure is named.

Only a failure to connect may be a ConnectError/ConnectTimeout (the hub then sends the payment
elsewhere); a request that may have reached the provider must fail as a read-side error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from paymux.providers.transport import ProviderClient, post_bytes, provider_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def send(http: ProviderClient, way: str, url: str) -> int:
    """POST a small JSON body the protocols' way: through httpx's API, or the fast path."""
    if way == "httpx":
        return (await http.post(url, json={"txn": 1})).status_code
    status, _ = await post_bytes(
        http, url, b'{"txn":1}', {"Content-Type": "application/json"}, httpx.Timeout(http.timeout.read)
    )
    return status


WAYS = pytest.mark.parametrize("way", ["httpx", "fast"])


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answering(seen: list[tuple[bytes, bytes]], answer: Callable[[int], bytes]) -> Handler:
    """A keep-alive server handler: records each request and writes ``answer(n)`` to the n-th."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(answer(len(seen)))
            await writer.drain()
        writer.close()

    return handler


async def test_request_and_answer_pass_through_unchanged() -> None:
    seen: list[tuple[bytes, bytes]] = []

    def answer(n: int) -> bytes:
        body = gzip.compress(b'{"ok": true}')
        return (
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"X-Twice: a\r\nX-Twice: b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    async with raw_server(answering(seen, answer)) as url, provider_client() as http:
        for n in range(3):  # one kept-alive connection serves them all
            r = await http.post(f"{url}/pay?x=1", json={"n": n}, headers={"Authorization": "Bearer s"})
            assert r.status_code == 201 and r.json() == {"ok": True}
            assert r.headers.get_list("x-twice") == ["a", "b"]
    assert len(seen) == 3
    head, body = seen[0]
    assert head.startswith(b"POST /pay?x=1 HTTP/1.1\r\n")
    assert b"authorization: Bearer s" in head.lower().replace(b"bearer", b"Bearer")
    assert body == b'{"n":0}'
    assert head.lower().count(b"content-type:") == 1 and b"application/json" in head


async def test_the_fast_path_sends_the_same_request_and_decodes_the_answer() -> None:
    seen: list[tuple[bytes, bytes]] = []

    def answer(n: int) -> bytes:
        body = gzip.compress(b'{"ok": true}') if n == 1 else b'{"plain": 1}'
        coding = b"Content-Encoding: gzip\r\n" if n == 1 else b""
        return b"HTTP/1.1 201 Created\r\n" + coding + b"Content-Length: %d\r\n\r\n" % len(body) + body

    headers = {"Content-Type": "application/json", "Authorization": "Bearer s"}
    async with raw_server(answering(seen, answer)) as url, provider_client() as http:
        first = await post_bytes(http, f"{url}/pay", b'{"n":0}', headers, httpx.Timeout(5))
        second = await post_bytes(http, f"{url}/pay", b'{"n":1}', headers, httpx.Timeout(5))
    assert first == (201, b'{"ok": true}') and second == (201, b'{"plain": 1}')
    head, body = seen[0]
    assert head.startswith(b"POST /pay HTTP/1.1\r\n") and body == b'{"n":0}'
    assert head.lower().count(b"content-type:") == 1 and b"authorization: bearer s" in head.lower()
    assert b"accept-encoding" not in head.lower() and b"user-agent" not in head.lower()


@WAYS
async def test_nothing_listening_is_a_connect_error(way: str) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with provider_client() as http:
        with pytest.raises(httpx.ConnectError):
            await send(http, way, f"http://127.0.0.1:{port}/pay")


@WAYS
async def test_a_connection_dropped_after_the_request_is_not_a_connect_error(way: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # the provider got the payment ... and the answer is lost
        writer.close()

    async with raw_server(handler) as url, provider_client() as http:
        with pytest.raises(httpx.TransportError) as caught:
            await send(http, way, f"{url}/pay")
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


@WAYS
async def test_a_half_sent_answer_is_a_read_error(way: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"resu')
        await writer.drain()
        writer.close()

    async with raw_server(handler) as url, provider_client() as http:
        with pytest.raises(httpx.ReadError):
            await send(http, way, f"{url}/pay")


@WAYS
async def test_a_slow_answer_is_a_read_timeout(way: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(2)
        writer.close()

    async with raw_server(handler) as url, provider_client(timeout=httpx.Timeout(0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await send(http, way, f"{url}/pay")


@WAYS
async def test_cookies_set_by_a_provider_are_not_sent_back(way: str) -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            heads.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
        writer.close()

    async with raw_server(handler) as url, provider_client() as http:
        await send(http, way, f"{url}/pay")
        await send(http, way, f"{url}/pay")
    assert len(heads) == 2 and b"sid=abc" not in heads[1].lower()
