"""The payment acceptance endpoint as a lean ASGI path.

``POST /api/v1/payments`` is the hub's hot path. The app (``api/app.py``) hands it to :func:`respond`
before any of the framework's middleware, routing and dependency injection (about a third of the
CPU per request), with exactly the same rules: :func:`create_payment` is also what the documented FastAPI
route in ``payments/endpoints.py`` calls, so both give the same answers and problem documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from paymux.api.deps import channel_for_headers
from paymux.api.limits import BodyTooLarge
from paymux.auth.proxy import proxy_settings, scope_client_ip
from paymux.catalog.snapshot import Snapshot
from paymux.errors import Problem, internal_error, invalid_request, not_found
from paymux.payments import service
from paymux.payments.schemas import PaymentIn, PaymentOut, payment_out
from paymux.request_id import REQUEST_ID, accepted
from paymux.runtime import Hub

log = logging.getLogger("paymux.api")

PATH = "/api/v1/payments"


async def create_payment(
    hub: Hub, headers: Mapping[str, str], body: bytes, address: Callable[[], str]
) -> tuple[int, PaymentOut]:
    """Authenticate, validate and accept; (201, payment) for a new one, (200, payment) for a repeat."""
    channel = await channel_for_headers(hub, headers, body, address)
    request = PaymentIn.model_validate_json(body)
    payment, created = await service.accept(hub, channel, request)
    return (201 if created else 200), await payment_view(hub, payment)


async def payment_view(hub: Hub, p: Any) -> PaymentOut:
    """The API view of a payment row, with its service and provider codes."""
    snap: Snapshot = await hub.catalog.get()
    svc = snap.services_by_id.get(p.service_id)
    prov = snap.providers.get(p.provider_id)
    if svc is None or prov is None:
        hub.catalog_changed()
        snap = await hub.catalog.get()
        svc, prov = snap.services_by_id.get(p.service_id), snap.providers.get(p.provider_id)
    if svc is None or prov is None:
        raise not_found(f"catalog entry of payment {p.id}")
    return payment_out(p, svc.code, prov.code)


class _Headers(dict[str, str]):
    @classmethod
    def of(cls, scope: Scope) -> _Headers:
        return cls((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])


def handles(scope: Scope) -> bool:
    """Whether the request is the one this path answers."""
    return scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"


async def respond(hub: Hub, scope: Scope, receive: Receive, send: Send, app: Any = None) -> None:
    """Answer ``POST /api/v1/payments`` (every failure is a problem document, never an exception).

    The request edge's rules (``api/edge.py``) hold here too: the request id (answer header, problem
    documents, log lines), ``Cache-Control: no-store``, the channel API's body limit, the bearer
    challenge of a 401 and the throttling of failed keys. ``app`` names the trusted proxies.
    """
    headers = _Headers.of(scope)
    rid = accepted(headers.get("x-request-id"), hub.settings.request_id_from_client)
    token = REQUEST_ID.set(rid)
    try:
        status, payload, media, extra = await _answer(hub, scope, headers, receive, rid, app)
    finally:
        REQUEST_ID.reset(token)
    out = [
        (b"content-type", media),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-request-id", rid.encode()),
    ]
    if extra:
        out += extra
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": payload})


_NONE: list[tuple[bytes, bytes]] = []


async def _answer(
    hub: Hub, scope: Scope, headers: _Headers, receive: Receive, rid: str, app: Any
) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    problem = b"application/problem+json"
    try:
        body = await _read_body(receive, headers, hub.settings.body_limit_channel)

        def address() -> str:
            return scope_client_ip(scope, headers.get("x-forwarded-for"), proxy_settings(app))

        status, out = await create_payment(hub, headers, body, address)
        return status, out.model_dump_json().encode(), b"application/json", _NONE
    except Problem as e:
        doc = e.to_dict(instance=PATH)
        doc["request_id"] = rid
        extra = (
            [(k.lower().encode(), v.encode("latin-1")) for k, v in e.headers.items()] if e.headers else _NONE
        )
        return e.status, orjson.dumps(doc), problem, extra
    except ValidationError as e:
        doc = invalid_request(e.errors(include_url=False), PATH)
        doc["request_id"] = rid
        return 422, orjson.dumps(doc), problem, _NONE
    except Exception:
        log.exception("unhandled error on %s", PATH)
        doc = internal_error(PATH)
        doc["request_id"] = rid
        return 500, orjson.dumps(doc), problem, _NONE


async def _read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to be longer than ``limit``: by its declared
    length before anything is read, or while it arrives."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "client-disconnected", "The client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
