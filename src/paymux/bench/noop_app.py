"""The HTTP ceiling of ``paymux bench``: a no-op payment endpoint on the hub's server stack.

The same stack as ``paymux serve`` (FastAPI on uvicorn, uvloop and httptools when installed, no
access log) and the same request body model, but no authentication, no database and no business
logic: the body is parsed and validated as a :class:`~paymux.payments.schemas.PaymentIn` and a
small JSON answer is returned with status 201. Run it as ``paymux serve`` runs the hub::

    python -m uvicorn paymux.bench.noop_app:app --port 8000 --no-access-log --lifespan on
"""

from __future__ import annotations

import itertools

from fastapi import FastAPI

from paymux.payments.schemas import PaymentIn

app = FastAPI(title="paymux bench no-op", docs_url=None, redoc_url=None)
_ids = itertools.count(1)


@app.post("/api/v1/payments", status_code=201)
async def create_payment(body: PaymentIn) -> dict[str, object]:
    """Accept nothing: validate the body and answer as if a payment had been accepted."""
    return {
        "id": next(_ids),
        "external_id": body.external_id,
        "status": "accepted",
        "service": body.service,
        "account": body.account,
        "amount": body.amount,
        "currency": body.currency,
    }


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
