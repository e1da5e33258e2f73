"""The request edge: rules every HTTP request and its answer go through, ahead of the framework.

A plain ASGI layer (no framework middleware, a few microseconds per request) that ``PaymuxApp``
(``api/app.py``) puts in front of everything but ``POST /api/v1/payments``, whose lean path
(``payments/fastpath.py``) applies the same rules itself:

- **request id**: a well-formed ``X-Request-ID`` sent by the client, else a new one
  (``request_id.py``); set for the request's log lines, returned in the ``X-Request-ID`` header and
  in every problem document;
- **body limit** of the route's class (``api/limits.py``): a declared ``Content-Length`` over it is
  answered 413 before the app runs and before any of the body is read; a chunked body is counted as
  it arrives and the app's reading fails with 413 once it goes over;
- ``Cache-Control: no-store`` on every answer that does not set its own (payment data must not be
  kept by caches on the way); a static asset sets its own;
- every 401 of the API carries a bearer challenge (``WWW-Authenticate``), if its route did not set one;
- **control characters** in the path or the query string (``api/params.py``) are refused: a 422
  problem document, or a page in the back office. The inbound gateways (``/osmp/...``,
  ``/cyberplat/...``: ``gateways.base.inbound_prefixes``) answer them in their own protocol.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymux.api.limits import BodyLimits, BodyTooLarge
from paymux.api.params import control_characters
from paymux.errors import Problem, bearer_challenge
from paymux.gateways.base import inbound_prefixes
from paymux.request_id import REQUEST_ID, accepted
from paymux.settings import Settings

PROBLEM_JSON = b"application/problem+json"
_CHALLENGE = bearer_challenge().encode()


class Edge:
    """The edge in front of ``app``."""

    __slots__ = ("app", "limits", "owner", "trust_client_ids")

    def __init__(self, app: ASGIApp, settings: Settings, owner: Any = None) -> None:
        self.app = app
        self.owner = owner  # the application (the back office's pages read its state)
        self.limits = BodyLimits.of(settings)
        self.trust_client_ids = settings.request_id_from_client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length: bytes | None = None
        chunked = False
        sent_id: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-request-id":
                sent_id = value
        rid = accepted(sent_id, self.trust_client_ids)
        token = REQUEST_ID.set(rid)
        try:
            limit = self.limits.for_request(scope["method"], scope["path"])
            if self.owner is not None and "app" not in scope:
                scope["app"] = self.owner
            if length is not None and length.isdigit() and int(length) > limit:
                await too_large(scope, send, rid, limit)
                return
            where = control_characters(scope["path"], scope["query_string"])
            if where is not None and not scope["path"].startswith(inbound_prefixes()):
                await refused(scope, send, rid, ControlCharacters(where))
                return
            answer = Answer(scope, send, rid)
            if chunked:
                receive = answer.counting(receive, limit)
            try:
                await self.app(scope, receive, answer.send)
            except Exception:
                if answer.complete or answer.replaced:
                    return  # answered; the app's error handler logged it
                raise
            if answer.tripped is not None and not answer.started:
                await too_large(scope, send, rid, answer.tripped)
        finally:
            REQUEST_ID.reset(token)


class Answer:
    """One request's answer as the app sends it, with the edge's headers added."""

    __slots__ = ("_send", "api", "complete", "path", "replaced", "rid", "scope", "started", "tripped")

    def __init__(self, scope: Scope, send: Send, rid: str) -> None:
        self.scope = scope
        self._send = send
        self.rid = rid
        self.path: str = scope["path"]
        self.api = self.path.startswith("/api/")
        self.started = False
        self.complete = False
        self.tripped: int | None = None  # the limit a chunked body went over
        self.replaced = False  # the app's answer was replaced by the 413

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.tripped is not None:
                self.replaced = self.started = True
                await too_large(self.scope, self._send, self.rid, self.tripped)
                return
            self.started = True
            message = {**message, "headers": self._headers(message)}
        elif kind == "http.response.body":
            if self.replaced:
                return
            if not message.get("more_body", False):
                self.complete = True
        await self._send(message)

    def _headers(self, message: Message) -> list[tuple[bytes, bytes]]:
        headers = list(message.get("headers") or ())
        cache = challenge = False
        for name, _ in headers:
            if name == b"cache-control":
                cache = True
            elif name == b"www-authenticate":
                challenge = True
        headers.append((b"x-request-id", self.rid.encode()))
        if not cache:
            headers.append((b"cache-control", b"no-store"))
        if not challenge and message["status"] == 401 and self.api:
            headers.append((b"www-authenticate", _CHALLENGE))
        return headers

    def counting(self, receive: Receive, limit: int) -> Receive:
        """``receive`` that fails with 413 once the body went over ``limit`` bytes."""
        size = 0

        async def counted() -> Message:
            nonlocal size
            if self.tripped is not None:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    self.tripped = limit
                    raise BodyTooLarge(limit)
            return message

        return counted


class ControlCharacters(Problem):
    """The path or the query string has a control character (422)."""

    def __init__(self, where: str) -> None:
        super().__init__(
            422,
            "control-characters",
            "Control characters are not allowed",
            f"the {where} has a control character (U+0000-U+001F, U+007F-U+009F)",
        )


async def too_large(scope: Scope, send: Send, rid: str, limit: int) -> None:
    """The 413 answer: a problem document, or a page in the back office."""
    await refused(scope, send, rid, BodyTooLarge(limit))


_PAGES = {
    413: ("Too large", "The form or file is larger than the server accepts."),
    422: ("Invalid request", "The address has characters that are not allowed."),
}


async def refused(scope: Scope, send: Send, rid: str, problem: Problem) -> None:
    """``problem`` answered by the edge: a problem document, or a page in the back office."""
    path: str = scope["path"]
    headers = [(b"x-request-id", rid.encode()), (b"cache-control", b"no-store")]
    if path.startswith("/backoffice"):
        from paymux.backoffice.framework import error_page

        title, message = _PAGES[problem.status]
        detail = f"{problem.extra['limit']} bytes at most" if isinstance(problem, BodyTooLarge) else ""
        page = error_page(Request(scope), problem.status, title, message, detail)
        page.headers.update({"x-request-id": rid, "cache-control": "no-store"})
        await page(scope, _no_receive, send)
        return
    doc: dict[str, Any] = problem.to_dict(instance=path)
    doc["request_id"] = rid
    body = orjson.dumps(doc)
    headers += [(b"content-type", PROBLEM_JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _no_receive() -> Message:  # a plain response never reads the request
    return {"type": "http.disconnect"}
