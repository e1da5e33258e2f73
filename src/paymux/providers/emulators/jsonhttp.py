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
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from paymux.money import MoneyError, parse_amount
from paymux.providers.emulators.behaviour import BehaviourEngine, Decision, EmulatorConfig
from paymux.providers.emulators.control import disconnect_waiter, emulator_app, json_response, mount_control


class BadRequest(ValueError):
    """A protocol request the emulator cannot understand (answered with HTTP 400)."""


def _error(code: str, message: str, *, temporary: bool, status_code: int = 200) -> Response:
    body = {"result": "error", "code": code, "message": message, "temporary": temporary}
    return json_response(body, status_code)


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


def create_app(config: EmulatorConfig | None = None, *, engine: BehaviourEngine | None = None) -> FastAPI:
    """The JSON/HTTP emulator app; ``app.state.engine`` is its :class:`BehaviourEngine`."""
    engine = engine or BehaviourEngine(config or EmulatorConfig())
    app = emulator_app("paymux JSON/HTTP provider emulator", engine)

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
            await engine.hold(engine.config.lost_hold_ms, disconnect_waiter(request))
        if decision.broken_response:
            return Response(b"Internal Server Error", status_code=500, media_type="text/plain")
        return json_response(body)

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
            return json_response(
                {"status": "not_found", "provider_txn_id": None, "code": None, "message": None}
            )
        return json_response(
            {
                "status": txn.status,
                "provider_txn_id": txn.provider_txn_id,
                "code": txn.code,
                "message": txn.message,
            }
        )

    mount_control(app, engine)

    return app


def _error_body(decision: Decision) -> dict[str, Any]:
    return {
        "result": "error",
        "code": decision.code,
        "message": decision.message,
        "temporary": decision.kind == "temporary",
    }
