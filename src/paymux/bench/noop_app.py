"""The HTTP ceiling of ``paymux bench``: a no-op payment endpoint on the hub's server stack.

The same stack as ``paymux serve`` (FastAPI on uvicorn, its event loop and httptools, no
access log) and the same request body model, but no authentication, no database and no business
logic: the body is parsed and validated as a :class:`~paymux.payments.schemas.PaymentIn` and a
small JSON answer is returned with status 201. Run it as ``paymux serve`` runs the hub (uvicorn
with the hub's HTTP protocol, :mod:`paymux.http_protocol`, and the same settings)::

    python -m paymux.bench.noop_app --port 8000
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from paymux import event_loop
from paymux.http_protocol import CoalescingHttpToolsProtocol
from paymux.invoices.service import parse_items
from paymux.payments.schemas import PaymentIn
from paymux.settings import Settings

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


@app.post("/api/v1/invoices")
async def create_invoices(request: Request) -> Response:
    """The invoice intake's ceiling: a batch parsed and every item validated as the intake does
    (:func:`paymux.invoices.service.parse_items`), nothing stored; the numbers and statuses answered."""
    body = orjson.loads(await request.body())
    items = body["invoices"] if isinstance(body, dict) else [body]
    good, bad = parse_items(items)
    results = [{"index": i, "number": item.number, "status": 201} for i, item, *_ in good]
    return Response(
        orjson.dumps({"created": len(good), "invalid": len(bad), "results": results}),
        media_type="application/json",
    )


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the no-op app with the settings ``paymux serve`` gives uvicorn."""
    parser = argparse.ArgumentParser(prog="python -m paymux.bench.noop_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    # the hub's event loop (PAYMUX_EVENT_LOOP), its servers accepting connections as the hub's do
    event_loop.run(uvicorn.Server(config).serve(), Settings().event_loop)


if __name__ == "__main__":
    main()
