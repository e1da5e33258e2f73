"""``GET|POST /osmp/{gateway}``: the hub as an OSMP provider.

Order of the gates: the gateway must exist (404), the client address must be allowed (403),
the login/password and/or client certificate must match (401); then every answer is HTTP 200
with the OSMP result. Nothing is stored for a request refused at a gate; every authenticated
``pay`` is stored with its answer (``inbound_exchanges``), with the payment when there is one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from paymux.gateways import exchanges
from paymux.gateways.osmp import codes, params, service, xml
from paymux.gateways.osmp.codes import OsmpRefusal
from paymux.gateways.registry import (
    GatewayView,
    address_allowed,
    basic_credentials,
    client_address,
    from_trusted_proxy,
    normalize_cert_value,
    registry_of,
)
from paymux.runtime import Hub

log = logging.getLogger("paymux.gateways")

router = APIRouter(tags=["gateways"])

MEDIA = "text/xml; charset=utf-8"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_BODY = 16 * 1024


def _xml(
    status: int, txn_id: str | None, answer: service.Answer, headers: dict[str, str] | None = None
) -> Response:
    body = xml.response(
        txn_id=txn_id, result=answer.result, comment=answer.comment, prv_txn=answer.prv_txn, sum=answer.sum
    )
    return Response(body, status_code=status, media_type=MEDIA, headers=headers)


def _refused(status: int, txn_id: str | None, comment: str, **headers: str) -> Response:
    return _xml(status, txn_id, service.Answer(codes.OTHER, comment), headers or None)


async def _items(request: Request) -> list[tuple[str, str]]:
    """The query parameters, then those of a form body (urlencoded or multipart, no files)."""
    items = list(request.query_params.multi_items())
    if request.method != "POST":
        return items
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in FORM_TYPES:
        try:
            form = await request.form(max_files=0, max_fields=200, max_part_size=MAX_BODY)
        except Exception as e:  # a malformed multipart body, too many fields
            raise OsmpRefusal(codes.OTHER, f"the form cannot be read: {e}") from None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise OsmpRefusal(codes.OTHER, f"parameter {name!r} is a file")
            items.append((name, value))
    elif (await request.body()).strip():
        raise OsmpRefusal(codes.OTHER, "send parameters in the query or as a form (x-www-form-urlencoded)")
    return items


async def _authenticated(request: Request, hub: Hub, gw: GatewayView, items: list[tuple[str, str]]) -> bool:
    """Password (HTTP Basic, else the login/password parameters) and/or the client certificate."""
    if gw.login is not None:
        creds = basic_credentials(request.headers.get("authorization"))
        if creds is None:
            given = {k: v for k, v in items if k in ("login", "password")}
            if "login" in given and "password" in given:
                creds = (given["login"], given["password"])
        if creds is None or not await registry_of(hub).password_ok(gw, *creds):
            return False
    if gw.cert_header is not None:
        peer = request.client.host if request.client else None
        if not from_trusted_proxy(gw, peer):
            return False  # the certificate header is believed only from the TLS-terminating proxy
        value = request.headers.get(gw.cert_header)
        if value is None or normalize_cert_value(value) not in gw.cert_allowed:
            return False
    return True


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {}}, "description": "OSMP answer; <result> says what happened"},
    401: {"description": "login/password or client certificate refused (OSMP XML, result 300)"},
    403: {"description": "client address not allowed (OSMP XML, result 300)"},
    404: {"description": "unknown gateway (OSMP XML, result 300)"},
}


# One handler, published as two operations (distinct operation ids in the OpenAPI document).
@router.get("/osmp/{gateway}", response_class=Response, responses=_RESPONSES, operation_id="osmp_get")
@router.post("/osmp/{gateway}", response_class=Response, responses=_RESPONSES, operation_id="osmp_post")
async def osmp(gateway: str, request: Request) -> Response:
    """OSMP (QIWI provider protocol) ``command=check`` and ``command=pay`` from a payment system."""
    started = time.monotonic()
    hub: Hub = request.app.state.hub
    echo = request.query_params.get("txn_id")
    gw = await registry_of(hub).get(gateway)
    if gw is None or gw.protocol != "osmp":
        return _refused(404, echo, f"unknown gateway {gateway[:64]!r}")
    peer = request.client.host if request.client else None
    address = client_address(gw, peer, request.headers.get("x-forwarded-for"))
    if not address_allowed(gw, address):
        return _refused(403, echo, f"address {address} is not allowed")
    early: OsmpRefusal | None = None
    try:
        items = await _items(request)
    except OsmpRefusal as r:
        items, early = [], r
    if not await _authenticated(request, hub, gw, items):
        challenge = {"WWW-Authenticate": f'Basic realm="paymux osmp {gw.code}"'} if gw.login else {}
        return _refused(401, echo, "authentication failed", **challenge)

    raw: dict[str, str] = {}
    command = "?"
    answer: service.Answer
    try:
        if early is not None:
            raise early
        raw = params.collect(items)
        command = raw.get("command", "?")[:16]
        echo = raw.get("txn_id", echo)
        snap = await hub.catalog.get()
        channel = snap.channels.get(gw.channel_id)
        if not gw.enabled or channel is None or not channel.enabled:
            raise OsmpRefusal(codes.FORBIDDEN_TECHNICAL, f"gateway {gw.code} is disabled")
        req = params.parse(gw, raw)
        if req.command == "check":
            answer = await service.check(hub, gw, channel, req)
        else:
            answer = await service.pay(hub, gw, channel, req)
    except OsmpRefusal as r:
        answer = service.Answer(r.result, r.comment)
    except Exception:
        log.exception("osmp gateway %s: %s failed", gw.code, command)
        answer = service.Answer(codes.TEMPORARY, codes.COMMENTS[codes.TEMPORARY])
    response = _xml(200, echo, answer)
    if command == "pay":
        await exchanges.record(
            hub,
            gateway_id=gw.id,
            payment_id=answer.payment_id,
            command=command,
            txn_id=(echo or None) and echo[:64],
            result=answer.result,
            http_status=200,
            method=request.method,
            remote_addr=(address or "")[:64] or None,
            request=exchanges.masked_params(raw, params.SECRET_PARAMS),
            response=bytes(response.body).decode("utf-8"),
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
    return response
