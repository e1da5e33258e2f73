"""What every emulator app shares: its creation around a :class:`BehaviourEngine`, and the control endpoints.

:func:`emulator_app` makes the FastAPI app (the engine reopened on startup and its held requests
released on shutdown; ``app.state.engine`` and ``app.state.release_holds`` set); the protocol adds
its own routes, then :func:`mount_control` adds the control endpoints (never protected by
credentials):

``GET  /_emulator/config``        the current :class:`EmulatorConfig`
``PUT  /_emulator/config``        replace it (the ledger is kept)
``POST /_emulator/down``, ``/up``  switch the provider off / on
``GET  /_emulator/transactions``  every transaction taken, with ``pay_calls``
``POST /_emulator/reset``         forget every transaction, reseed the random generator
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def disconnect_waiter(request: Request) -> Callable[[], Awaitable[None]]:
    """A waiter that returns once the client has gone away."""

    async def wait() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    return wait


def emulator_app(title: str, engine: BehaviourEngine) -> FastAPI:
    """A new emulator app driven by ``engine`` (no routes yet)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.reopen()
        yield
        engine.release_holds()

    app = FastAPI(title=title, lifespan=lifespan, openapi_url=None)
    app.state.engine = engine
    app.state.release_holds = engine.release_holds  # used by server.run_emulator on shutdown
    return app


def mount_control(
    app: FastAPI,
    engine: BehaviourEngine,
    *,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    on_reset: Callable[[], None] | None = None,
) -> None:
    """Add the ``/_emulator/*`` endpoints to ``app``.

    ``extra_state`` adds the protocol's own keys to ``/_emulator/transactions``; ``on_reset`` forgets
    the protocol's own state on ``/_emulator/reset`` (after the engine's).
    """

    @app.get("/_emulator/config")
    async def get_config() -> Response:
        return json_response(engine.config.model_dump(mode="json"))

    @app.put("/_emulator/config")
    async def put_config(request: Request) -> Response:
        try:
            new = EmulatorConfig.model_validate_json(await request.body())
        except ValidationError as exc:
            return json_response({"detail": orjson.loads(exc.json(include_url=False))}, 422)
        engine.configure(new)
        return json_response(engine.config.model_dump(mode="json"))

    @app.post("/_emulator/down")
    async def go_down() -> Response:
        engine.set_down(True)
        return json_response({"down": True})

    @app.post("/_emulator/up")
    async def go_up() -> Response:
        engine.set_down(False)
        return json_response({"down": engine.is_down()})

    @app.get("/_emulator/transactions")
    async def transactions() -> Response:
        state: dict[str, Any] = {
            "transactions": [txn.as_json() for txn in engine.transactions()],
            "pay_calls": engine.ledger.all_pay_calls(),
        }
        if extra_state is not None:
            state.update(extra_state())
        return json_response(state)

    @app.post("/_emulator/reset")
    async def reset() -> Response:
        engine.reset()
        if on_reset is not None:
            on_reset()
        return json_response({"reset": True})
