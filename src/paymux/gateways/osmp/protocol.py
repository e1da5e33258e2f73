"""``GET|POST /osmp/{gateway}``: the hub as an OSMP provider (``getInfo``, ``check``, ``pay``).

The OSMP inbound protocol on the gateway machinery (``paymux.gateways.base``): parameters in the
query or a form body (``params.py``), login/password by HTTP Basic or the ``login``/``password``
parameters and/or a client certificate, the answer a small XML ``<response>`` (``xml.py``) with
the OSMP result codes (``codes.py``). Gates answer in the same XML with result 300: unknown
gateway 404, address not allowed 403, too many failed attempts 429, authentication failed 401;
every other answer is HTTP 200. OSMP has no status nor cancel command.
"""

from __future__ import annotations

from fastapi import Request, Response
from starlette.datastructures import UploadFile

from paymux.gateways.base import (
    Gate,
    InboundProtocol,
    InboundRequest,
    InboundRoute,
    Incoming,
    Outcome,
)
from paymux.gateways.osmp import codes, params, xml
from paymux.gateways.osmp.codes import OsmpRefusal
from paymux.gateways.registry import GatewayView

MEDIA = "text/xml; charset=utf-8"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_BODY = 16 * 1024


class OsmpInbound(InboundProtocol):
    """OSMP (the QIWI provider protocol): ``command=getInfo``, ``check`` and ``pay``."""

    name = "osmp"
    routes = (
        InboundRoute(
            "",
            "",
            ("GET", "POST"),
            "osmp",
            "OSMP (QIWI provider protocol) command=getInfo, check and pay from a payment system",
        ),
    )
    responses = {
        200: {"content": {"text/xml": {}}, "description": "OSMP answer; <result> says what happened"},
        401: {"description": "login/password or client certificate refused (OSMP XML, result 300)"},
        403: {"description": "client address not allowed (OSMP XML, result 300)"},
        429: {
            "description": "too many failed logins from the address or for the login (OSMP XML, result 300)"
        },
        404: {"description": "unknown gateway (OSMP XML, result 300)"},
    }
    secret_params = params.SECRET_PARAMS
    reserved_params = frozenset(
        {"command", "txn_id", "txn_date", "account", "sum", "ccy", "login", "password"}
    )
    login_params = ("login", "password")

    def echo(self, request: Request) -> str | None:
        return request.query_params.get("txn_id")

    async def read(self, request: Request, action: str) -> Incoming:
        """The query parameters, then those of a form body (urlencoded or multipart, no files)."""
        items = list(request.query_params.multi_items())
        if request.method != "POST":
            return Incoming(items)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype in FORM_TYPES:
            try:
                form = await request.form(max_files=0, max_fields=200, max_part_size=MAX_BODY)
            except Exception as e:  # a malformed multipart body, too many fields
                return Incoming([], OsmpRefusal(codes.OTHER, f"the form cannot be read: {e}"))
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    return Incoming([], OsmpRefusal(codes.OTHER, f"parameter {name!r} is a file"))
                items.append((name, value))
        elif (await request.body()).strip():
            return Incoming(
                [],
                OsmpRefusal(codes.OTHER, "send parameters in the query or as a form (x-www-form-urlencoded)"),
            )
        return Incoming(items)

    def params(self, incoming: Incoming) -> dict[str, str]:
        return params.collect(incoming.items)

    def command_of(self, raw: dict[str, str], action: str) -> str:
        return raw.get("command", "?")[:16]

    def echo_of(self, raw: dict[str, str], echo: str | None) -> str | None:
        return raw.get("txn_id", echo)

    def parse(self, gw: GatewayView, raw: dict[str, str], action: str) -> InboundRequest:
        req = params.parse(gw, raw)
        return InboundRequest(
            command="pay" if req.command == "pay" else "check",
            txn_id=req.txn_id,
            account=req.account,
            amount=req.sum,
            service=req.service,
            currency=req.ccy,
            fields=req.fields,
            txn_date=req.txn_date,
            lookup=req.command == "getInfo",
            upstream_check_id=req.txn_id if req.command == "check" else None,
            verb=req.command,
        )

    def code_for(self, outcome: Outcome, command: str, req: InboundRequest | None) -> int:
        if outcome.reason == "refused":
            return codes.from_provider_code(outcome.provider_code)
        return codes.BY_REASON[outcome.reason]

    def comment_for(self, code: int | str) -> str:
        return codes.COMMENTS.get(int(code), str(code))

    def render(
        self,
        gw: GatewayView,
        command: str,
        req: InboundRequest | None,
        code: int | str,
        comment: str,
        outcome: Outcome | None,
        echo: str | None,
    ) -> Response:
        # a getInfo has no txn_id: its answer has no osmp_txn_id unless one was sent
        txn_id = echo if command == "getInfo" else echo or ""
        return _xml(200, txn_id, int(code), comment, outcome)

    def gate(
        self,
        gw: GatewayView | None,
        gate: Gate,
        status: int,
        comment: str,
        echo: str | None,
        headers: dict[str, str],
    ) -> Response:
        return _xml(status, echo or "", codes.OTHER, comment, None, headers or None)

    def recorded(self, command: str) -> bool:
        return command == "pay"

    def answer_text(self, response: Response) -> str:
        return bytes(response.body).decode("utf-8")


def _xml(
    status: int,
    txn_id: str | None,
    result: int,
    comment: str,
    outcome: Outcome | None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = xml.response(
        txn_id=txn_id,
        result=result,
        comment=comment,
        prv_txn=outcome.payment_id if outcome else None,
        sum=outcome.sum if outcome else None,
        fields=outcome.fields if outcome else None,
    )
    return Response(body, status_code=status, media_type=MEDIA, headers=headers)
