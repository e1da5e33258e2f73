"""The inbound gateways' routes: ``/{protocol}/{gateway}...`` for every installed inbound protocol.

Order of the gates, the same for every protocol: the gateway must exist and speak the route's
protocol (404), the client address must be allowed (403), the address and the login must not have
failed too often lately (429, ``auth/throttle.py``), the request must authenticate as the gateway
requires (401: login/password, client certificate, the protocol's signature); each answered in the
protocol's format (:meth:`~paymux.gateways.base.InboundProtocol.gate`). Then every answer is HTTP
200 in the protocol's format with its result code. Nothing is stored for a request refused at a
gate; every authenticated request of a command that changes something (pay, cancel) is stored
with its answer (``inbound_exchanges``), with the payment when there is one. A body longer than
``PAYMUX_BODY_LIMIT_GATEWAY`` is refused (413) before it is read (``api/edge.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from paymux.gateways import exchanges, machinery
from paymux.gateways.base import (
    InboundProtocol,
    InboundRefusal,
    InboundRequest,
    InboundRoute,
    Outcome,
    inbound_protocols,
)
from paymux.gateways.registry import address_allowed, client_address, registry_of
from paymux.runtime import Hub

log = logging.getLogger("paymux.gateways")


def _result(code: int | str) -> int:
    """The code as kept with the exchange (an integer column; protocols' codes are numbers)."""
    try:
        return int(code)
    except (TypeError, ValueError):
        return -1


async def handle(cls: type[InboundProtocol], action: str, gateway: str, request: Request) -> Response:
    """One request to a gateway of protocol ``cls`` at the route of ``action``."""
    started = time.monotonic()
    hub: Hub = request.app.state.hub
    registry = registry_of(hub)
    gw = await registry.get(gateway)
    if gw is None or gw.protocol != cls.name:
        bare = cls({})
        return bare.gate(None, "unknown", 404, f"unknown gateway {gateway[:64]!r}", bare.echo(request), {})
    proto = registry.protocol(gw)
    echo = proto.echo(request)
    peer = request.client.host if request.client else None
    address = client_address(gw, peer, request.headers.get("x-forwarded-for"))
    if not address_allowed(gw, address):
        return proto.gate(gw, "address", 403, f"address {address} is not allowed", echo, {})
    incoming = await proto.read(request, action)
    echo = incoming.echo or echo
    throttle = hub.auth_throttle
    who = f"gateway:{gw.code}:{proto.login(request, incoming)[:64]}"
    refusal = throttle.refusal(address or "", who)
    if refusal is not None:
        wait = str(refusal.seconds)
        said = f"too many failed attempts; try again in {wait} s"
        return proto.gate(gw, "throttled", 429, said, echo, {"Retry-After": wait})
    if not await proto.authenticate(request, hub, gw, incoming):
        throttle.failed(address or "", who)
        return proto.gate(gw, "unauthenticated", 401, "authentication failed", echo, proto.challenge(gw))

    raw: dict[str, str] = {}
    command = proto.command_of({}, action) if action else "?"
    req: InboundRequest | None = None
    outcome: Outcome | None = None
    code: int | str
    comment: str
    try:
        if incoming.error is not None:
            raise incoming.error
        raw = proto.params(incoming)
        command = proto.command_of(raw, action)
        echo = proto.echo_of(raw, echo)
        snap = await hub.catalog.get()
        channel = snap.channels.get(gw.channel_id)
        if not gw.enabled or channel is None or not channel.enabled:
            outcome = Outcome("unavailable", f"gateway {gw.code} is disabled")
        else:
            req = proto.parse(gw, raw, action)
            outcome = await machinery.perform(hub, gw, channel, req)
        code = proto.code_for(outcome, req.command if req is not None else command, req)
        comment = outcome.comment or proto.comment_for(code)
    except InboundRefusal as r:
        outcome, code, comment = None, r.code, r.comment
    except Exception:
        log.exception("%s gateway %s: %s failed", cls.name, gw.code, command)
        outcome = Outcome("temporary")
        code = proto.code_for(outcome, command, req)
        comment = proto.comment_for(code)
    response = proto.render(gw, command, req, code, comment, outcome, echo)
    if proto.recorded(command):
        await exchanges.record(
            hub,
            gateway_id=gw.id,
            payment_id=outcome.payment_id if outcome is not None else None,
            command=command[:16],
            txn_id=(echo or None) and echo[:64],
            result=_result(code),
            http_status=response.status_code,
            method=request.method,
            remote_addr=(address or "")[:64] or None,
            request=exchanges.masked_params(raw, proto.secret_params),
            response=proto.answer_text(response),
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
    return response


def _endpoint(cls: type[InboundProtocol], route: InboundRoute) -> Callable[..., Awaitable[Response]]:
    async def endpoint(gateway: str, request: Request) -> Response:
        return await handle(cls, route.action, gateway, request)

    endpoint.__doc__ = route.summary or f"{cls.name} {route.action}".strip()
    endpoint.__name__ = f"{cls.name}_{route.action or 'gateway'}"
    return endpoint


def router() -> APIRouter:
    """The routes of every installed inbound protocol."""
    out = APIRouter(tags=["gateways"])
    for name, cls in sorted(inbound_protocols().items()):
        for route in cls.routes:
            endpoint = _endpoint(cls, route)
            op = route.operation_id or f"{name}{'_' + route.action if route.action else ''}"
            for method in route.methods:
                out.add_api_route(
                    f"/{name}/{{gateway}}{route.path}",
                    endpoint,
                    methods=[method],
                    response_class=Response,
                    responses=cls.responses,
                    operation_id=f"{op}_{method.lower()}",
                    summary=route.summary or None,
                )
    return out
