"""Emulator of an SMS gateway speaking the JSON/HTTP SMS protocol (:mod:`paymux.notifications.sms`).

``create_app(token=None)`` returns an ASGI app (its :class:`SmsOutbox` is ``app.state.outbox``):

``POST /messages``               ``{"id", "to", "from", "text"}``: accepted (201, ``{"id", "status"}``);
                                 the same ``id`` again is answered 200 with the stored message (sent once)
``GET  /messages``               the messages accepted, oldest first (``?to=`` filters by number)
``POST /_emulator/fail``         ``{"count": n, "status": 500}``: the next n messages are refused with
                                 that status (``count`` -1: until told otherwise)
``POST /_emulator/reset``        no messages, no failures

With a token, ``POST /messages`` needs ``Authorization: Bearer <token>`` (401 without it). Run it with
``paymux emulator sms --port P``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PHONE = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


@dataclass
class SmsOutbox:
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_count: int = 0
    fail_status: int = 500
    refused: int = 0  # messages refused on request so far

    def by_id(self, message_id: str) -> dict[str, Any] | None:
        return next((m for m in self.messages if m["id"] == message_id), None)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(token: str | None = None) -> FastAPI:
    app = FastAPI(title="paymux SMS gateway emulator")
    outbox = SmsOutbox()
    app.state.outbox = outbox

    @app.post("/messages")
    async def accept(request: Request) -> JSONResponse:
        if token and request.headers.get("authorization") != f"Bearer {token}":
            return _error(401, "a bearer token is required")
        if outbox.fail_count != 0:
            if outbox.fail_count > 0:
                outbox.fail_count -= 1
            outbox.refused += 1
            return _error(outbox.fail_status, "failing on request (emulator)")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        to, text, mid = body.get("to"), body.get("text"), body.get("id")
        if not isinstance(to, str) or not PHONE.match(to):
            return _error(422, "to must be an E.164 phone number")
        if not isinstance(text, str) or not text:
            return _error(422, "text is required")
        if mid is not None and not isinstance(mid, str):
            return _error(422, "id must be a string")
        if mid is not None and (found := outbox.by_id(mid)) is not None:
            return JSONResponse({"id": found["id"], "status": "accepted", "duplicate": True})
        message = {
            "id": mid or f"sms-{len(outbox.messages) + 1}",
            "to": to,
            "from": body.get("from") if isinstance(body.get("from"), str) else None,
            "text": text,
            "received_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        outbox.messages.append(message)
        return JSONResponse({"id": message["id"], "status": "accepted"}, status_code=201)

    @app.get("/messages")
    async def listing(to: str | None = None) -> dict[str, Any]:
        return {"messages": [m for m in outbox.messages if to is None or m["to"] == to]}

    @app.post("/_emulator/fail")
    async def fail(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        count = body.get("count", 1) if isinstance(body, dict) else 1
        status = body.get("status", 500) if isinstance(body, dict) else 500
        if (
            not isinstance(count, int)
            or count < -1
            or not isinstance(status, int)
            or not 400 <= status <= 599
        ):
            return _error(422, "count is an integer (-1: always), status 400 to 599")
        outbox.fail_count, outbox.fail_status = count, status
        return JSONResponse({"count": count, "status": status})

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, Any]:
        outbox.messages.clear()
        outbox.fail_count, outbox.refused = 0, 0
        return {"messages": 0}

    return app
