"""Running the app under uvicorn inside an asyncio program (serve, demo, tests, bench)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
from collections.abc import AsyncIterator, Iterator

import uvicorn

from paymux.api.app import create_app
from paymux.http_protocol import CoalescingHttpToolsProtocol
from paymux.runtime import Hub
from paymux.server_tls import ServerTLS
from paymux.settings import Settings


def _config(
    hub: Hub, host: str, port: int, run_workers: bool, log_level: str, tls: ServerTLS | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(hub, run_workers=run_workers),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=CoalescingHttpToolsProtocol,  # an answer's start and body leave in one write
        lifespan="on",
        timeout_graceful_shutdown=10,
        # the app sees the real TCP peer: gateways and the back office decide themselves which
        # proxies' X-Forwarded-For and certificate headers they trust
        proxy_headers=False,
        **(tls.uvicorn_options() if tls is not None else {}),
    )


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program embedding it."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class HubServer(uvicorn.Server):
    """``paymux serve``'s server: SIGINT and SIGTERM stop it gracefully, as they stop uvicorn, but are
    not raised again once it has stopped. uvicorn raises them again to end the process the signal's
    way, which ended it before the hub was closed: SIGTERM's default action killed the process,
    SIGINT made asyncio cancel the hub's close half-way (its database connections were not closed,
    SQLite's WAL not checkpointed). The process now ends (status 0) after the hub has closed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle_heap() -> None:
    """Move what a long-running process allocated at start (modules, the app, the ORM's registries)
    out of the garbage collector's way: a full collection then scans only what was made since, so it
    takes a few milliseconds instead of about 100 ms, a pause every request in flight would wait out.
    Young objects are collected every 20,000 allocations instead of 700: less collector work per
    payment, for a little more garbage held between collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


async def serve_hub(
    settings: Settings, host: str, port: int, *, run_workers: bool = True, tls: ServerTLS | None = None
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); HTTPS when ``tls`` is given."""
    hub = Hub(settings)
    try:
        config = _config(hub, host, port, run_workers, settings.log_level, tls)
        async with contextlib.AsyncExitStack() as listeners:
            if settings.iso8583_enabled:  # ATMs and POS terminals over TCP (paymux.iso8583)
                from paymux.iso8583.config import load_config
                from paymux.iso8583.server import running_iso8583

                iso = load_config(settings.iso8583_config)
                await listeners.enter_async_context(running_iso8583(hub, iso))
            settle_heap()
            await HubServer(config).serve()
    finally:
        await hub.close()


@contextlib.asynccontextmanager
async def running_hub(
    hub: Hub,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    run_workers: bool = True,
    log_level: str = "warning",
    tls: ServerTLS | None = None,
) -> AsyncIterator[str]:
    """Serve ``hub`` in this event loop for the duration of the block; yields its base URL."""
    server = EmbeddedServer(_config(hub, host, port, run_workers, log_level, tls))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.01)
    sock_port = port
    for s in server.servers:
        for sock in s.sockets:
            sock_port = sock.getsockname()[1]
            break
    try:
        yield f"{'https' if tls is not None else 'http'}://{host}:{sock_port}"
    finally:
        server.should_exit = True
        await task
