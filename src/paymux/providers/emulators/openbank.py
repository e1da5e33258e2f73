"""Emulator of a bank's payment initiation (the ``open_banking`` method,
:mod:`paymux.invoices.methods.openbanking`, and a processor for the generic ``redirect`` method);
``paymux emulator openbank``.

- ``POST /api/payments`` (signed): a payment to initiate; answers ``{"id", "consent_url"}``;
- ``GET /consent/{id}``: the payer's consent page (authorise or reject), then back to the merchant's
  ``return_url``; the bank confirms by a signed callback ``confirm_seconds`` later (0: before the
  payer is sent back);
- ``GET /api/payments/{id}`` and ``GET /api/references/{reference}`` (signed): the status;
- ``GET /redirect?reference=&amount=&currency=&return_url=&callback_url=``: the entry of the generic
  ``redirect`` method (``url_template``), then the same consent page.
"""

from __future__ import annotations

import html

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from paymux.providers.emulators.paymethod import Processor, money_text, page


def create_app(secret: str, *, confirm_seconds: float = 0.5) -> FastAPI:
    proc = Processor(secret, "pi", late_seconds=confirm_seconds)
    app = FastAPI(title="paymux open banking emulator", lifespan=proc.lifespan, docs_url=None, redoc_url=None)
    proc.mount(app)

    @app.post("/api/payments")
    async def create_payment(request: Request) -> JSONResponse:
        data = await proc.signed_json(request)
        s = proc.new_session(data)
        creditor = data.get("creditor")
        s.extra["creditor"] = creditor if isinstance(creditor, dict) else {}
        s.extra["remittance"] = str(data.get("remittance") or "")[:35]
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {"id": s.id, "status": s.status, "consent_url": f"{base}/consent/{s.id}"}, status_code=201
        )

    @app.get("/api/payments/{sid}")
    async def payment_status(sid: str, request: Request) -> JSONResponse:
        await proc.signed_json(request)
        return JSONResponse(proc.get(sid).event())

    @app.get("/api/references/{reference}")
    async def reference_status(reference: str, request: Request) -> JSONResponse:
        await proc.signed_json(request)
        sid = proc.by_reference.get(reference)
        if sid is None:
            raise HTTPException(404, "no such reference")
        return JSONResponse(proc.get(sid).event())

    @app.get("/redirect")
    async def redirect_entry(
        reference: str = Query(max_length=64),
        amount: int = Query(gt=0),
        currency: str = Query(min_length=3, max_length=3),
        return_url: str = Query(max_length=2000),
        callback_url: str = Query(max_length=2000),
    ) -> Response:
        s = proc.new_session(
            {
                "reference": reference,
                "amount": amount,
                "currency": currency,
                "return_url": return_url,
                "callback_url": callback_url,
            }
        )
        return RedirectResponse(f"/consent/{s.id}", status_code=303)

    @app.get("/consent/{sid}")
    async def consent(sid: str) -> Response:
        s = proc.get(sid)
        if s.outcome is not None:
            return RedirectResponse(s.return_url, status_code=303)
        creditor = s.extra.get("creditor") or {}
        to = html.escape(str(creditor.get("name") or "the merchant"))
        iban = html.escape(str(creditor.get("iban") or ""))
        body = (
            f"<p>Pay <strong>{money_text(s.amount, s.currency)}</strong> to {to} {iban}"
            f" from your account <strong>MD00 EMUL 0000 0000 0000 0001</strong>?</p>"
            f'<form method="post" action="/consent/{s.id}">'
            '<button type="submit" name="action" value="authorise" id="authorise">Authorise</button>'
            '<button type="submit" name="action" value="reject" id="reject">Reject</button></form>'
        )
        return page("Your bank: confirm the payment (emulator)", body)

    @app.post("/consent/{sid}")
    async def consent_post(sid: str, request: Request) -> Response:
        s = proc.get(sid)
        if s.outcome is None:
            form = await request.form()
            outcome = "approved" if form.get("action") == "authorise" else "declined"
            await proc.decide(s, outcome, delay=proc.late_seconds)
        return RedirectResponse(s.return_url, status_code=303)

    return app
