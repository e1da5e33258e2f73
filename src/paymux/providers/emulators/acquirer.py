"""Emulator of a card acquirer with a hosted checkout and 3-D Secure (the ``card`` payment method,
:mod:`paymux.invoices.methods.card`); ``paymux emulator acquirer``.

The merchant (the hub) creates a session by a signed ``POST /api/sessions`` and sends the payer to
its ``checkout_url``; the payer enters a card, passes the issuer's ACS challenge (``/acs/{id}``) and
is sent back to the merchant's ``return_url``. The outcome is told by a signed callback to the
``callback_url`` and by the signed status API ``GET /api/sessions/{id}``.

Test cards (any future expiry, any 3-digit CVC):

==========================  ==================================================================
``4242 4242 4242 4242``     approved
``5555 5555 5555 4444``     approved
``4000 0000 0000 0002``     declined (by the issuer)
``4000 0000 0000 9995``     declined (insufficient funds)
``4000 0000 0000 0259``     approved late: the payer returns while it is pending; the callback
                            (and the status API) tell it only ``late_seconds`` later
``4000 0000 0000 0119``     declined late
any other valid number      declined (card not accepted)
==========================  ==================================================================

Cancelling at the ACS challenge declines the payment.

``POST /api/sessions/{id}/refunds`` (signed, ``{"reference", "amount", "currency"}``) refunds part or
all of an approved session: at most what is left of it; the same ``reference`` again answers the same
refund. Refunds are listed with the session (``/_emulator/sessions``).
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from paymux.providers.emulators.paymethod import Processor, Session, money_text, page

TEST_CARDS: dict[str, tuple[str, bool]] = {  # number -> (outcome, late)
    "4242424242424242": ("approved", False),
    "5555555555554444": ("approved", False),
    "4000000000000002": ("declined", False),
    "4000000000009995": ("declined", False),
    "4000000000000259": ("approved", True),
    "4000000000000119": ("declined", True),
}


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _checkout_form(s: Session, error: str = "") -> str:
    err = f'<p class="err" role="alert">{html.escape(error)}</p>' if error else ""
    return (
        f"<p>Merchant order {html.escape(s.description)}: <strong>{money_text(s.amount, s.currency)}"
        f"</strong></p>{err}"
        f'<form method="post" action="/checkout/{s.id}">'
        '<label for="number">Card number</label>'
        '<input id="number" name="number" inputmode="numeric" autocomplete="cc-number" required>'
        '<label for="expiry">Expiry (MM/YY)</label>'
        '<input id="expiry" name="expiry" autocomplete="cc-exp" required>'
        '<label for="cvc">CVC</label>'
        '<input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" required>'
        '<button type="submit" id="pay">Pay</button></form>'
    )


def create_app(secret: str, *, late_seconds: float = 2.0) -> FastAPI:
    proc = Processor(secret, "cs", late_seconds=late_seconds)
    app = FastAPI(title="paymux acquirer emulator", lifespan=proc.lifespan, docs_url=None, redoc_url=None)
    proc.mount(app)

    @app.post("/api/sessions")
    async def create_session(request: Request) -> JSONResponse:
        s = proc.new_session(await proc.signed_json(request))
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {"id": s.id, "status": s.status, "checkout_url": f"{base}/checkout/{s.id}"}, status_code=201
        )

    @app.get("/api/sessions/{sid}")
    async def session_status(sid: str, request: Request) -> JSONResponse:
        await proc.signed_json(request)
        return JSONResponse(proc.get(sid).event())

    @app.post("/api/sessions/{sid}/refunds")
    async def refund(sid: str, request: Request) -> JSONResponse:
        data = await proc.signed_json(request)
        s = proc.get(sid)
        ref, amount, currency = data.get("reference"), data.get("amount"), data.get("currency")
        refunds: list[dict[str, Any]] = s.extra.setdefault("refunds", [])
        for done in refunds:
            if done["reference"] == ref:
                return JSONResponse(done)
        if s.status != "approved":
            return JSONResponse({"error": "the payment is not approved"}, status_code=409)
        if not isinstance(ref, str) or not 1 <= len(ref) <= 64 or currency != s.currency:
            return JSONResponse({"error": "reference and the payment's currency"}, status_code=400)
        left = s.amount - sum(int(r["amount"]) for r in refunds)
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= left:
            return JSONResponse({"error": f"amount: 1 to {left} minor units"}, status_code=400)
        done = {
            "id": f"rf_{sid}_{len(refunds) + 1}",
            "reference": ref,
            "status": "refunded",
            "amount": amount,
        }
        refunds.append(done)
        return JSONResponse(done, status_code=201)

    @app.get("/checkout/{sid}")
    async def checkout(sid: str) -> Response:
        s = proc.get(sid)
        if s.outcome is not None:
            return RedirectResponse(s.return_url, status_code=303)
        return page("Card payment (emulator)", _checkout_form(s))

    @app.post("/checkout/{sid}")
    async def checkout_post(sid: str, request: Request) -> Response:
        s = proc.get(sid)
        if s.outcome is not None:
            return RedirectResponse(s.return_url, status_code=303)
        form = await request.form()
        number = str(form.get("number") or "").replace(" ", "").replace("-", "")
        expiry = str(form.get("expiry") or "").strip()
        cvc = str(form.get("cvc") or "").strip()
        error = ""
        if not luhn_ok(number):
            error = "The card number is not valid."
        elif len(expiry) != 5 or expiry[2] != "/" or not (expiry[:2] + expiry[3:]).isdigit():
            error = "The expiry is MM/YY."
        elif not (cvc.isdigit() and len(cvc) in (3, 4)):
            error = "The CVC is 3 or 4 digits."
        if error:
            return page("Card payment (emulator)", _checkout_form(s, error), 422)
        s.card_last4 = number[-4:]
        s.extra["card"] = number
        return RedirectResponse(f"/acs/{s.id}", status_code=303)

    @app.get("/acs/{sid}")
    async def acs(sid: str) -> Response:
        s = proc.get(sid)
        if s.outcome is not None or s.card_last4 is None:
            return RedirectResponse(s.return_url if s.outcome else f"/checkout/{s.id}", status_code=303)
        body = (
            f"<p>Confirm the payment of <strong>{money_text(s.amount, s.currency)}</strong> with your card "
            f"ending {html.escape(s.card_last4)}.</p>"
            f'<form method="post" action="/acs/{s.id}">'
            '<button type="submit" name="action" value="confirm" id="confirm">Confirm</button>'
            '<button type="submit" name="action" value="cancel" id="cancel">Cancel</button></form>'
        )
        return page("3-D Secure: your bank (emulator)", body)

    @app.post("/acs/{sid}")
    async def acs_post(sid: str, request: Request) -> Response:
        s = proc.get(sid)
        if s.outcome is None and s.card_last4 is not None:
            form = await request.form()
            outcome, late = TEST_CARDS.get(str(s.extra.get("card")), ("declined", False))
            if form.get("action") != "confirm":
                outcome, late = "declined", False
            s.late = late
            await proc.decide(s, outcome, delay=proc.late_seconds if late else None)
        return RedirectResponse(s.return_url, status_code=303)

    def info() -> dict[str, Any]:
        return {"test_cards": {k: v[0] + (" late" if v[1] else "") for k, v in TEST_CARDS.items()}}

    app.state.info = info
    return app
