"""An emulator of PayOnline's hosted payment form and its CallbackUrl, for tests and the demo.

``GET /{lang}/payment/`` checks the merchant's query (``MerchantId``, ``OrderId``, ``Amount``,
``Currency``, optional ``ValidUntil`` and ``OrderDescription``, ``SecurityKey``: the MD5 rule of
:func:`paymux.invoices.methods.payonline.security_key`) and shows a card form; a wrong key answers
PayOnline's code 4024, an order past ``ValidUntil`` 4028, an unknown merchant 4027. Submitting the
form with ``action=pay`` approves, ``action=decline`` declines: the emulator POSTs the callback
(``DateTime``, ``TransactionID``, ``OrderId``, ``Amount``, ``Currency``, ``PaymentAmount``,
``PaymentCurrency``, ``CardNumber``, ``SecurityKey``; ``ErrorCode`` when declined) to the merchant's
callback URL, then sends the payer to ``ReturnUrl`` (or ``FailUrl``).

Control endpoints (tests, demo): ``GET /_emulator/transactions``; ``POST /_emulator/config``
``{"callback_url": ...}``; ``POST /_emulator/transactions/{id}/callback`` sends it again.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paymux.invoices.methods.payonline import security_key

_AMOUNT = re.compile(r"^\d{1,13}\.\d{2}\Z")
_CARD = re.compile(r"^\d{13,19}\Z")
SIGNED = ("MerchantId", "OrderId", "Amount", "Currency", "ValidUntil", "OrderDescription")


@dataclass
class Transaction:
    id: int
    order_id: str
    amount: str
    currency: str
    status: str  # Settled / Declined
    card: str
    at: str
    callbacks: list[int] = field(default_factory=list)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f'<meta name="viewport" content="width=device-width"></head><body><h1>{html.escape(title)}</h1>'
        f"{body}</body></html>",
        status_code=status,
    )


def _refusal(code: int, message: str) -> HTMLResponse:
    return _page(
        "PayOnline: error", f'<p data-code="{code}">Code={code}&amp;Message={html.escape(message)}</p>', 400
    )


def create_app(merchant_id: str, private_key: str, callback_url: str | None = None) -> FastAPI:
    """The emulator of one PayOnline merchant account (``merchant_id`` and its private key)."""
    app = FastAPI(title="paymux PayOnline emulator", docs_url=None, redoc_url=None, openapi_url=None)
    state: dict[str, Any] = {"callback_url": callback_url}
    transactions: dict[int, Transaction] = {}
    ids = itertools.count(1_000_001)
    app.state.transactions = transactions

    def check(params: dict[str, str]) -> HTMLResponse | None:
        if params.get("MerchantId") != merchant_id:
            return _refusal(4027, "Incorrect merchant")
        if not params.get("OrderId") or len(params["OrderId"]) > 50:
            return _refusal(4025, "Incorrect order ID")
        if not _AMOUNT.match(params.get("Amount", "")):
            return _refusal(4300, "Incorrect params")
        if not re.fullmatch(r"[A-Z]{3}", params.get("Currency", "")):
            return _refusal(4026, "Incorrect currency")
        signed = [(k, params[k]) for k in SIGNED if k in params]
        if params.get("SecurityKey") != security_key(signed, private_key):
            return _refusal(4024, "Incorrect security key")
        if "ValidUntil" in params:
            try:
                until = dt.datetime.strptime(params["ValidUntil"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
            except ValueError:
                return _refusal(4028, "Incorrect valid until")
            if until < dt.datetime.now(dt.UTC):
                return _refusal(4028, "Incorrect valid until")
        return None

    async def send_callback(txn: Transaction) -> int:
        url = state.get("callback_url")
        if not url:
            return 0
        fields = [
            ("DateTime", txn.at),
            ("TransactionID", str(txn.id)),
            ("OrderId", txn.order_id),
            ("Amount", txn.amount),
            ("Currency", txn.currency),
        ]
        form = [*fields, ("PaymentAmount", txn.amount), ("PaymentCurrency", txn.currency)]
        form += [("CardNumber", txn.card), ("SecurityKey", security_key(fields, private_key))]
        if txn.status == "Declined":
            form.append(("ErrorCode", "3"))
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(
                    url,
                    content=urlencode(form).encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            code = r.status_code
        except httpx.HTTPError:
            code = -1
        txn.callbacks.append(code)
        return code

    @app.get("/{lang}/payment/")
    async def form(lang: str, request: Request) -> Response:
        params = dict(request.query_params)
        refused = check(params)
        if refused is not None:
            return refused
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        body = (
            f"<p>{html.escape(params.get('OrderDescription', ''))}</p>"
            f"<p id=amount>{html.escape(params['Amount'])} {html.escape(params['Currency'])}</p>"
            f'<form method="post" action="/{html.escape(lang)}/payment/">{hidden}'
            "<label for=card>Card number</label>"
            '<input id=card name="CardNumber" inputmode="numeric" required>'
            '<button name="action" value="pay">Pay</button>'
            '<button name="action" value="decline">Decline</button>'
            "</form>"
        )
        return _page("PayOnline: card payment", body)

    @app.post("/{lang}/payment/")
    async def pay(lang: str, request: Request) -> Response:
        params = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        refused = check(params)
        if refused is not None:
            return refused
        card = params.get("CardNumber", "").replace(" ", "")
        if not _CARD.match(card):
            return _refusal(4004, "Incorrect card number")
        approved = params.get("action") != "decline"
        txn = Transaction(
            id=next(ids),
            order_id=params["OrderId"],
            amount=params["Amount"],
            currency=params["Currency"],
            status="Settled" if approved else "Declined",
            card="*" * 12 + card[-4:],
            at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
        transactions[txn.id] = txn
        await send_callback(txn)
        target = params.get("ReturnUrl" if approved else "FailUrl") or params.get("ReturnUrl")
        if not target:
            return _page("PayOnline: done", f"<p>{txn.status}</p>")
        return RedirectResponse(target, status_code=303)

    @app.get("/_emulator/transactions")
    async def listing() -> list[dict[str, Any]]:
        return [asdict(t) for t in transactions.values()]

    @app.post("/_emulator/config")
    async def configure(request: Request) -> dict[str, Any]:
        data = await request.json()
        if not isinstance(data, dict) or not isinstance(data.get("callback_url"), str):
            raise HTTPException(422, "callback_url (a string) is required")
        state["callback_url"] = data["callback_url"]
        return {"callback_url": state["callback_url"]}

    @app.post("/_emulator/transactions/{txn_id}/callback")
    async def resend(txn_id: int) -> dict[str, Any]:
        txn = transactions.get(txn_id)
        if txn is None:
            raise HTTPException(404, "no such transaction")
        return {"status": await send_callback(txn)}

    return app
