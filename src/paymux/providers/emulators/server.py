"""Run an emulator app on a real HTTP server (uvicorn).

``run_emulator`` serves inside the current event loop, for tests and embedding::

    async with run_emulator(create_app(config)) as base_url:   # e.g. "http://127.0.0.1:40123"
        ...

``serve_emulator`` blocks until interrupted, for the CLI.

When the app's ``state`` has a ``release_holds`` callable (the emulators' apps do), it is called
as soon as the server is asked to stop, so that requests held to emulate lost answers or latency
end at once instead of keeping the shutdown waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from paymux.http_protocol import CoalescingHttpToolsProtocol

SHUTDOWN_TIMEOUT = 5  # seconds a stopping server waits for requests in progress before cancelling them


def _release_hook(app: ASGIApp) -> Callable[[], None] | None:
    hook = getattr(getattr(app, "state", None), "release_holds", None)
    return hook if callable(hook) else None


class _EmulatorServer(uvicorn.Server):
    """A uvicorn server that releases held requests on exit and may leave signals alone."""

    def __init__(
        self, config: uvicorn.Config, *, handle_signals: bool, on_exit: Callable[[], None] | None
    ) -> None:
        super().__init__(config)
        self._handle_signals = handle_signals
        self._on_exit = on_exit
        self._stopping = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    def stop(self) -> None:
        """Ask the server to stop (from the loop's thread); the main loop notices at once."""
        self.should_exit = True
        self._stopping.set()

    async def main_loop(self) -> None:
        # uvicorn's loop polls should_exit every 0.1 s; this one also wakes as soon as stop() is called
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            try:
                async with asyncio.timeout(0.1):
                    await self._stopping.wait()
            except TimeoutError:
                pass

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        if should_exit and self._on_exit is not None:
            self._on_exit()
        return should_exit


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP
    # (without it every answer on a kept-alive connection waits ~40 ms for a delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app: ASGIApp, log_level: str, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=log_level in ("debug", "trace"),
        ws="none",
        http=CoalescingHttpToolsProtocol,  # an answer's start and body leave in one write
        lifespan="auto",
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
        **kwargs,
    )


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process on a startup failure; not ours to exit
        raise RuntimeError(f"the emulator server failed to start (exit code {exc.code})") from None


@contextlib.asynccontextmanager
async def run_emulator(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` in the running loop; yields the base URL with the real port.

    Port 0 picks a free port. The server accepts connections when the body starts; on exit it is
    shut down and every request it was serving has ended.
    """
    sock = _bind(host, port)
    base_url = _base_url(host, sock.getsockname()[1])
    release = _release_hook(app)
    server = _EmulatorServer(_config(app, log_level), handle_signals=False, on_exit=release)
    task = asyncio.create_task(_serve(server, sock), name=f"emulator {base_url}")
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the emulator server stopped while starting")
            await asyncio.sleep(0.005)
        yield base_url
    finally:
        server.stop()
        if release is not None:
            release()
        try:
            await task
        finally:
            sock.close()


def serve_emulator(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 8101, *, log_level: str = "info"
) -> None:
    """Serve ``app`` until interrupted (Ctrl+C / SIGTERM)."""
    server = _EmulatorServer(
        _config(app, log_level, host=host, port=port), handle_signals=True, on_exit=_release_hook(app)
    )
    server.run()
