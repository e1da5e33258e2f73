"""The payment acceptance endpoint as a lean ASGI path.

``POST /api/v1/payments`` is the hub's hot path. The app (``api/app.py``) hands it to :func:`respond`
before any of the framework's middleware, routing and dependency injection (about a third of the
CPU per request), with exactly the same rules: :func:`create_payment` is also what the documented FastAPI
route in ``payments/endpoints.py`` calls, so both give the same answers and problem documents.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from paymux.api.deps import channel_for_headers
from paymux.catalog.snapshot import Snapshot
from paymux.errors import Problem, internal_error, invalid_request, not_found
from paymux.payments import service
from paymux.payments.schemas import PaymentIn, PaymentOut, payment_out
from paymux.runtime import Hub

log = logging.getLogger("paymux.api")

PATH = "/api/v1/payments"
MAX_BODY = 64 * 1024


async def create_payment(hub: Hub, headers: Mapping[str, str], body: bytes) -> tuple[int, PaymentOut]:
    """Authenticate, validate and accept; (201, payment) for a new one, (200, payment) for a repeat."""
    channel = await channel_for_headers(hub, headers, body)
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


async def respond(hub: Hub, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``POST /api/v1/payments`` (every failure is a problem document, never an exception)."""
    status, payload, media = await _answer(hub, scope, receive)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _answer(hub: Hub, scope: Scope, receive: Receive) -> tuple[int, bytes, bytes]:
    problem = b"application/problem+json"
    try:
        body = await _read_body(receive)
        status, out = await create_payment(hub, _Headers.of(scope), body)
        return status, out.model_dump_json().encode(), b"application/json"
    except Problem as e:
        return e.status, orjson.dumps(e.to_dict(instance=PATH)), problem
    except ValidationError as e:
        return 422, orjson.dumps(invalid_request(e.errors(include_url=False), PATH)), problem
    except Exception:
        log.exception("unhandled error on %s", PATH)
        return 500, orjson.dumps(internal_error(PATH)), problem


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "client-disconnected", "The client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Problem(413, "body-too-large", "Request body too large", f"at most {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
