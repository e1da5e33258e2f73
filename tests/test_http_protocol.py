"""The HTTP protocol of the hub's server: an answer's writes leave as one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from paymux.http_protocol import FLUSH_AT, CoalescingHttpToolsProtocol, CoalescingTransport


class FakeTransport(asyncio.Transport):
    """Records what reaches the socket."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.protocol: asyncio.BaseProtocol | None = None
        self.events: list[str] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True
        self.events.append("close")

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.events.append("eof")

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol
        self.events.append("set_protocol")

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        self.events.append("pause_reading")

    def resume_reading(self) -> None:
        pass


async def turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_turn_leave_together_after_it() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    t.write(b"HTTP/1.1 201 Created\r\n\r\n")
    t.write(b"")
    t.write(memoryview(b'{"id": 1}'))
    assert real.writes == []  # nothing before the turn ends
    assert t.get_write_buffer_size() == 7 + len(b"HTTP/1.1 201 Created\r\n\r\n") + 9
    await turn()
    assert real.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"id": 1}']
    t.write(b"next")
    await turn()
    assert real.writes[1:] == [b"next"]
    assert t.get_write_buffer_size() == 7


async def test_close_eof_and_upgrade_send_what_is_gathered_first() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    t.write(b"a")
    t.write_eof()
    t.write(b"b")
    t.set_protocol(asyncio.Protocol())
    t.write(b"c")
    t.close()
    assert real.writes == [b"a", b"b", b"c"]
    assert real.events == ["write", "eof", "write", "set_protocol", "write", "close"]
    await turn()  # the flushes scheduled meanwhile find nothing left
    assert real.writes == [b"a", b"b", b"c"]


async def test_abort_drops_what_is_gathered_and_a_closing_transport_gets_nothing() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    t.write(b"lost")
    t.abort()
    await turn()
    assert real.writes == [] and real.aborted
    real2 = FakeTransport()
    t2 = CoalescingTransport(real2, asyncio.get_running_loop())
    t2.writelines([b"x", b"y"])
    real2.closed = True  # the peer went away before the turn ended
    await turn()
    assert real2.writes == []


async def test_a_long_body_goes_on_at_once() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    t.write(b"h" * 10)
    t.write(b"b" * FLUSH_AT)
    assert real.writes == [b"h" * 10 + b"b" * FLUSH_AT]
    t.write(b"tail")
    await turn()
    assert real.writes[1:] == [b"tail"]


async def test_other_calls_reach_the_transport() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())
    assert t.get_extra_info("peername") == ("127.0.0.1", 5000)
    t.pause_reading()
    assert real.events == ["pause_reading"]
    assert not t.is_closing()


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = b'{"echo": "' + body + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _protocol(real: FakeTransport) -> CoalescingHttpToolsProtocol:
    config = uvicorn.Config(_app, http=CoalescingHttpToolsProtocol, lifespan="off", log_level="warning")
    config.load()
    assert config.http_protocol_class is CoalescingHttpToolsProtocol
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    protocol.connection_made(real)
    return protocol


async def test_uvicorn_answers_in_one_write() -> None:
    real = FakeTransport()
    protocol = _protocol(real)
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
    for _ in range(20):
        await turn()
        if real.writes:
            break
    await turn()
    assert len(real.writes) == 1
    answer = real.writes[0]
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")
    assert answer.endswith(b'\r\n\r\n{"echo": "hi"}')
    assert not real.closed  # kept alive
    protocol.connection_lost(None)


async def test_uvicorn_closes_after_the_answer_when_asked() -> None:
    real = FakeTransport()
    protocol = _protocol(real)
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz")
    for _ in range(20):
        await turn()
        if real.closed:
            break
    assert real.events == ["write", "close"]
    assert real.writes[0].endswith(b'{"echo": "z"}')
    protocol.connection_lost(None)


async def test_the_hub_and_the_emulators_serve_with_it(tmp_path: Path) -> None:
    from paymux.providers.emulators import server as emulator_server
    from paymux.runtime import Hub
    from paymux.server import _config
    from paymux.settings import Settings

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    assert emulator_server._config(app, "warning").http is CoalescingHttpToolsProtocol
    hub = Hub(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"))
    try:
        assert _config(hub, "127.0.0.1", 0, False, "warning").http is CoalescingHttpToolsProtocol
    finally:
        await hub.close()
