"""Emulator of a provider speaking the generic JSON/HTTP protocol (:mod:`paymux.providers.jsonhttp`).

``create_app(config)`` returns an ASGI app with the protocol endpoints ``POST /check``, ``/pay`` and
``/status``, driven by a :class:`~paymux.providers.emulators.behaviour.BehaviourEngine`, plus control
endpoints for tests and demos (never protected by the token):

``GET  /_emulator/config``        the current :class:`EmulatorConfig`
``PUT  /_emulator/config``        replace it (the ledger is kept)
``POST /_emulator/down``, ``/up``  switch the provider off / on (while down: HTTP 503, temporary)
``GET  /_emulator/transactions``  every transaction taken, with ``pay_calls``
``POST /_emulator/reset``         forget every transaction, reseed the random generator

When the config has a ``token``, protocol requests must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from paymux.money import MoneyError, parse_amount
from paymux.providers.emulators.behaviour import BehaviourEngine, Decision, EmulatorConfig


class BadRequest(ValueError):
    """A protocol request the emulator cannot understand (answered with HTTP 400)."""


def _json(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def _error(code: str, message: str, *, temporary: bool, status_code: int = 200) -> Response:
    body = {"result": "error", "code": code, "message": message, "temporary": temporary}
    return _json(body, status_code)


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} is required and must be a non-empty string")
    return value


def _amount(body: dict[str, Any]) -> tuple[int, str]:
    currency = _field(body, "currency")
    try:
        return parse_amount(_field(body, "amount"), currency), currency
    except MoneyError as exc:
        raise BadRequest(str(exc)) from None


def _txn_date(body: dict[str, Any]) -> str:
    text = _field(body, "txn_date")
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"txn_date {text!r} is not an ISO 8601 date-time") from None
    return text


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    fields = data.get("fields", {})
    if fields is not None and not isinstance(fields, dict):
        raise BadRequest("fields must be an object")
    return data


def _disconnect_waiter(request: Request) -> Callable[[], Awaitable[None]]:
    """A waiter that returns once the client has gone away."""

    async def wait() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    return wait


def create_app(config: EmulatorConfig | None = None, *, engine: BehaviourEngine | None = None) -> FastAPI:
    """The JSON/HTTP emulator app; ``app.state.engine`` is its :class:`BehaviourEngine`."""
    engine = engine or BehaviourEngine(config or EmulatorConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.reopen()
        yield
        engine.release_holds()

    app = FastAPI(title="paymux JSON/HTTP provider emulator", lifespan=lifespan, openapi_url=None)
    app.state.engine = engine
    app.state.release_holds = engine.release_holds  # used by server.run_emulator on shutdown

    def refusal(request: Request) -> Response | None:
        """The answer when the request may not be served at all (bad token, provider down)."""
        token = engine.config.token
        given = request.headers.get("authorization", "")
        if token and not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error("unauthorized", "missing or wrong bearer token", temporary=False, status_code=401)
        if engine.is_down():
            return _error(
                "unavailable", "the provider is temporarily unavailable", temporary=True, status_code=503
            )
        return None

    async def serve(account: str | None) -> bool:
        """Wait the configured latency; ``False`` if the emulator is shutting down meanwhile."""
        return await engine.sleep(engine.delay_ms(account))

    async def answer(request: Request, decision: Decision, body: dict[str, Any]) -> Response:
        if decision.lose_response:
            await engine.hold(engine.config.lost_hold_ms, _disconnect_waiter(request))
        if decision.broken_response:
            return Response(b"Internal Server Error", status_code=500, media_type="text/plain")
        return _json(body)

    @app.post("/check")
    async def check(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        try:
            body = await _body(request)
            _field(body, "txn_id")
            account = _field(body, "account")
            amount, currency = _amount(body)
        except BadRequest as exc:
            return _error("bad_request", str(exc), temporary=False, status_code=400)
        if not await serve(account):
            return _error("unavailable", "the provider is shutting down", temporary=True, status_code=503)
        decision = engine.decide_check(account, amount, currency)
        if decision.kind == "ok":
            return await answer(request, decision, {"result": "ok", "info": decision.info})
        if decision.kind == "rejected":
            return await answer(
                request, decision, {"result": "rejected", "code": decision.code, "message": decision.message}
            )
        return await answer(request, decision, _error_body(decision))

    @app.post("/pay")
    async def pay(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        try:
            body = await _body(request)
            txn_id = _field(body, "txn_id")
            txn_date = _txn_date(body)
            service = str(body.get("service") or "")
            account = _field(body, "account")
            amount, currency = _amount(body)
        except BadRequest as exc:
            return _error("bad_request", str(exc), temporary=False, status_code=400)
        if not await serve(account):
            return _error("unavailable", "the provider is shutting down", temporary=True, status_code=503)
        decision = engine.decide_pay(txn_id, account, amount, currency, service, txn_date)
        if decision.kind in ("ok", "pending") and decision.txn is not None:
            status = "succeeded" if decision.kind == "ok" else "pending"
            return await answer(
                request,
                decision,
                {"result": "ok", "status": status, "provider_txn_id": decision.txn.provider_txn_id},
            )
        reply = _error_body(decision)
        if decision.txn is not None:
            reply["provider_txn_id"] = decision.txn.provider_txn_id
        return await answer(request, decision, reply)

    @app.post("/status")
    async def status(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        try:
            txn_id = _field(await _body(request), "txn_id")
        except BadRequest as exc:
            return _error("bad_request", str(exc), temporary=False, status_code=400)
        txn = engine.lookup(txn_id)
        if not await serve(txn.account if txn else None):
            return _error("unavailable", "the provider is shutting down", temporary=True, status_code=503)
        txn = engine.lookup(txn_id)  # a pending payment may have settled while we waited
        if txn is None:
            return _json({"status": "not_found", "provider_txn_id": None, "code": None, "message": None})
        return _json(
            {
                "status": txn.status,
                "provider_txn_id": txn.provider_txn_id,
                "code": txn.code,
                "message": txn.message,
            }
        )

    @app.get("/_emulator/config")
    async def get_config() -> Response:
        return _json(engine.config.model_dump(mode="json"))

    @app.put("/_emulator/config")
    async def put_config(request: Request) -> Response:
        try:
            new = EmulatorConfig.model_validate_json(await request.body())
        except ValidationError as exc:
            return _json({"detail": orjson.loads(exc.json(include_url=False))}, 422)
        engine.configure(new)
        return _json(engine.config.model_dump(mode="json"))

    @app.post("/_emulator/down")
    async def go_down() -> Response:
        engine.set_down(True)
        return _json({"down": True})

    @app.post("/_emulator/up")
    async def go_up() -> Response:
        engine.set_down(False)
        return _json({"down": engine.is_down()})

    @app.get("/_emulator/transactions")
    async def transactions() -> Response:
        return _json(
            {
                "transactions": [txn.as_json() for txn in engine.transactions()],
                "pay_calls": engine.ledger.all_pay_calls(),
            }
        )

    @app.post("/_emulator/reset")
    async def reset() -> Response:
        engine.reset()
        return _json({"reset": True})

    return app


def _error_body(decision: Decision) -> dict[str, Any]:
    return {
        "result": "error",
        "code": decision.code,
        "message": decision.message,
        "temporary": decision.kind == "temporary",
    }
