"""The lean HTTP/1.1 client under ProviderClient.post_bytes: answer framings, keep-alive, the pool,
TLS, and requests it refuses to send. Real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest

from paymux.providers.lean_http import LeanHttp
from registers_servers import self_signed
from test_provider_transport import Handler, raw_server, read_request

T = {"connect_timeout": 5.0, "read_timeout": 5.0, "pool_timeout": 5.0}


def serving(answers: list[bytes], seen: list[bytes], conns: list[int]) -> Handler:
    """A keep-alive server writing answers[i] to the i-th request; counts its connections."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        while True:
            try:
                head, body = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                break
            seen.append(head + body)
            answer = answers[len(seen) - 1]
            writer.write(answer)
            await writer.drain()
            if b"Connection: close" in answer:
                break
        writer.close()

    return handler


async def test_framings_interim_answers_and_keep_alive() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nthird",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfourth, to the end of the connection",
    ]
    seen: list[bytes] = []
    conns: list[int] = []
    client = LeanHttp()
    async with raw_server(serving(answers, seen, conns)) as url:
        got = [await client.post(f"{url}/pay?a=1", b"{}", {"X-Key": "v"}, **T) for _ in range(4)]
    await client.aclose()
    assert [(s, b) for s, _, b in got] == [
        (200, b"first"),
        (200, b"second"),
        (201, b"third"),
        (200, b"fourth, to the end of the connection"),
    ]
    assert len(conns) == 1  # one kept-alive connection served all four
    assert seen[0].startswith(b"POST /pay?a=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"X-Key: v\r\n" in seen[0] and seen[0].endswith(b"Content-Length: 2\r\n\r\n{}")


async def test_credentials_in_the_url_go_as_basic_authorization() -> None:
    seen: list[bytes] = []
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"] * 2
    client = LeanHttp()
    async with raw_server(serving(answers, seen, [])) as url:
        userinfo_url = url.replace("http://", "http://bench%40user:p%3Ass@")
        await client.post(f"{userinfo_url}/pay", b"{}", {}, **T)
        await client.post(f"{userinfo_url}/pay", b"{}", {"Authorization": "Bearer t"}, **T)
    await client.aclose()
    # base64 of "bench@user:p:ss"; the URL's credentials win over a header, as with httpx
    assert all(b"Authorization: Basic YmVuY2hAdXNlcjpwOnNz\r\n" in r for r in seen)
    assert all(r.count(b"Authorization") == 1 for r in seen)


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"] * 2
    seen: list[bytes] = []
    conns: list[int] = []

    async def close_after_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        seen.append(b"".join(await read_request(reader)))
        writer.write(answers[0])
        await writer.drain()
        writer.close()  # keep-alive was promised, and the server closes anyway while idle

    client = LeanHttp()
    async with raw_server(close_after_one) as url:
        assert (await client.post(f"{url}/x", b"", {}, **T))[0] == 200
        await asyncio.sleep(0.2)  # the close reaches the client
        assert (await client.post(f"{url}/x", b"", {}, **T))[0] == 200
    await client.aclose()
    assert len(conns) == 2 and len(seen) == 2


async def test_a_full_pool_is_a_pool_timeout_and_the_request_is_not_sent() -> None:
    seen: list[bytes] = []
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(b"".join(await read_request(reader)))
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    client = LeanHttp(max_connections=1)
    async with raw_server(slow) as url:
        first = asyncio.create_task(client.post(f"{url}/x", b"1", {}, **T))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):
            await client.post(f"{url}/x", b"2", {}, connect_timeout=5.0, read_timeout=5.0, pool_timeout=0.2)
        release.set()
        assert (await first)[0] == 200
    await client.aclose()
    assert len(seen) == 1  # the second never left


async def test_a_malformed_answer_is_a_read_side_error() -> None:
    answers = [b"this is not HTTP at all\r\n\r\n"]
    client = LeanHttp()
    async with raw_server(serving(answers, [], [])) as url:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{url}/x", b"", {}, **T)
    await client.aclose()


async def test_refused_requests_are_never_sent() -> None:
    client = LeanHttp()
    with pytest.raises(httpx.ConnectError, match="not sent"):
        await client.post("http://127.0.0.1:9/x", b"", {"X-Evil": "a\r\nInjected: 1"}, **T)
    with pytest.raises(httpx.UnsupportedProtocol):
        await client.post("ftp://127.0.0.1/x", b"", {}, **T)


async def test_https_checks_the_certificate_and_a_failed_handshake_is_a_connect_error(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    server_tls = cert.server_context()
    seen: list[bytes] = []
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"] * 2
    server = await asyncio.start_server(serving(answers, seen, []), "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    async with server:
        trusting = LeanHttp(ssl_context=ssl.create_default_context(cafile=str(cert.cert_file)))
        status, _, body = await trusting.post(f"https://127.0.0.1:{port}/pay", b"{}", {}, **T)
        await trusting.aclose()
        assert (status, body) == (200, b"secret")
        untrusting = LeanHttp()  # the system's CAs: the self-signed certificate is refused
        with pytest.raises(httpx.ConnectError):
            await untrusting.post(f"https://127.0.0.1:{port}/pay", b"{}", {}, **T)
        await untrusting.aclose()
    assert len(seen) == 1  # nothing went out over the refused handshake


def test_the_same_on_uvloop() -> None:
    """`paymux serve` runs on uvloop, whose transports are not asyncio.Transport subclasses."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[tuple[int, bytes]]:
        answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"] * 2
        conns: list[int] = []
        client = LeanHttp()
        async with raw_server(serving(answers, [], conns)) as url:
            got = [await client.post(f"{url}/pay", b"{}", {}, **T) for _ in range(2)]
        await client.aclose()
        assert len(conns) == 1
        return [(s, b) for s, _, b in got]

    assert uvloop.run(main()) == [(200, b"ok"), (200, b"ok")]
