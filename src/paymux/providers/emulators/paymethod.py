"""What the payment-method processor emulators share (:mod:`.acquirer`, :mod:`.openbank`): signed
merchant requests (``Paymux-Signature``, HMAC-SHA256 with the shared secret), the sessions they
keep, and signed callbacks to the hub, sent now or later (a late confirmation).

Control endpoints (never signed) for tests and demos:

``GET  /_emulator/sessions``                 every session with its callbacks' answers
``POST /_emulator/sessions/{id}/callback``   send the session's callback (again) now
``POST /_emulator/callbacks``                ``{"drop": true}``: callbacks are lost (not sent)
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import secrets
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from paymux.invoices.methods.base import CallbackRejected, sign, verify


@dataclass
class Session:
    id: str
    reference: str
    amount: int
    currency: str
    return_url: str
    callback_url: str
    description: str = ""
    status: str = "pending"  # what the status API answers: pending until the outcome is told
    outcome: str | None = None  # approved / declined once decided
    late: bool = False
    card_last4: str | None = None
    callbacks: list[int] = field(default_factory=list)  # HTTP status of each callback sent
    extra: dict[str, Any] = field(default_factory=dict)

    def event(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
        }


class Processor:
    """The state of one emulated processor."""

    def __init__(self, secret: str, prefix: str, *, late_seconds: float = 2.0) -> None:
        self.secret = secret
        self.prefix = prefix
        self.late_seconds = late_seconds
        self.sessions: dict[str, Session] = {}
        self.by_reference: dict[str, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.http = httpx.AsyncClient(timeout=5)
        self.drop_callbacks = False  # emulate callbacks that never arrive (the status API still tells)

    def release(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    async def signed_json(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            verify(self.secret, request.headers, body)
        except CallbackRejected as e:
            raise HTTPException(401, f"signature: {e}") from None
        if not body:
            return {}
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HTTPException(400, "not JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "not an object")
        return data

    def new_session(self, data: dict[str, Any]) -> Session:
        ref, amount, currency = data.get("reference"), data.get("amount"), data.get("currency")
        back, cb = data.get("return_url"), data.get("callback_url")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
            raise HTTPException(400, "reference")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise HTTPException(400, "amount (minor units)")
        if not isinstance(currency, str) or len(currency) != 3:
            raise HTTPException(400, "currency")
        for name, url in (("return_url", back), ("callback_url", cb)):
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise HTTPException(400, name)
        if ref in self.by_reference:  # the same attempt again: the same session
            return self.sessions[self.by_reference[ref]]
        s = Session(
            id=f"{self.prefix}_{secrets.token_hex(8)}",
            reference=ref,
            amount=amount,
            currency=currency,
            return_url=str(back),
            callback_url=str(cb),
            description=str(data.get("description") or "")[:140],
        )
        self.sessions[s.id] = s
        self.by_reference[ref] = s.id
        return s

    def get(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            raise HTTPException(404, "no such session")
        return s

    async def send_callback(self, s: Session, *, tries: int = 3) -> int:
        body = orjson.dumps(s.event())
        code = 0
        if self.drop_callbacks:
            s.callbacks.append(0)
            return 0
        for i in range(tries):
            headers = {"Content-Type": "application/json", "Paymux-Signature": sign(self.secret, body)}
            try:
                r = await self.http.post(s.callback_url, content=body, headers=headers)
                code = r.status_code
            except httpx.HTTPError:
                code = 0
            s.callbacks.append(code)
            if 200 <= code < 300 or 400 <= code < 500:
                break
            await asyncio.sleep(0.2 * (i + 1))
        return code

    async def decide(self, s: Session, outcome: str, *, delay: float | None = None) -> None:
        """Settle the session: the status API and a signed callback tell ``outcome`` now, or only
        after ``delay`` seconds (a late answer)."""
        s.outcome = outcome
        if delay is None or delay <= 0:
            s.status = outcome
            await self.send_callback(s)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            s.status = outcome
            await self.send_callback(s)

        task = asyncio.create_task(later())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def mount(self, app: FastAPI) -> None:
        app.state.processor = self
        app.state.release_holds = self.release

        @app.get("/_emulator/sessions", include_in_schema=False)
        async def sessions() -> Response:
            return Response(
                orjson.dumps([asdict(s) for s in self.sessions.values()]), media_type="application/json"
            )

        @app.post("/_emulator/callbacks", include_in_schema=False)
        async def callbacks(request: Request) -> Response:
            data = orjson.loads(await request.body() or b"{}")
            self.drop_callbacks = bool(data.get("drop")) if isinstance(data, dict) else False
            return Response(orjson.dumps({"drop": self.drop_callbacks}), media_type="application/json")

        @app.post("/_emulator/sessions/{sid}/callback", include_in_schema=False)
        async def resend(sid: str) -> Response:
            s = self.get(sid)
            code = await self.send_callback(s, tries=1)
            return Response(orjson.dumps({"status": code}), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.release()
            await self.http.aclose()


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """A plain emulator page (no scripts)."""
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>body{{font:16px/1.5 system-ui,Arial,sans-serif;"
        "max-width:480px;margin:0 auto;padding:16px}label{display:block;margin:8px 0 2px}"
        "input,button{font:inherit;min-height:44px;width:100%;padding:8px}button{margin-top:12px}"
        ".err{color:#8a1c14}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status_code)


def money_text(amount: int, currency: str) -> str:
    from paymux.money import format_amount

    try:
        return f"{format_amount(amount, currency)} {currency}"
    except Exception:  # an unknown currency in an emulator: show minor units
        return f"{amount} (minor units) {currency}"
