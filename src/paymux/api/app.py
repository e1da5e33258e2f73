"""The FastAPI application: channel API, admin API, health, problem+json errors."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from paymux import __version__, request_id
from paymux.api.edge import Edge
from paymux.auth import passwords
from paymux.catalog.service import CatalogError
from paymux.db.engine import TextWithNul
from paymux.errors import Problem, internal_error, invalid, invalid_request
from paymux.payments import fastpath
from paymux.runtime import Hub

log = logging.getLogger("paymux.api")

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem document, with the request's id (``request_id``) and the problem's own headers."""
    rid = request_id.current()
    if rid is not None:
        body["request_id"] = rid
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _invalid_page(request: Request, detail: str) -> Response:
    """A back-office request with a value that is not valid (an id out of range...): a readable page."""
    from paymux.backoffice.framework import error_page

    message = "The request has a value that is not valid here."
    return error_page(request, 422, "Invalid request", message, detail)


def _refused_value(exc: Exception) -> bool:
    """Whether ``exc`` is the database refusing a value: an integer too large for SQLite, a DBAPI
    DataError, a PostgreSQL data exception (SQLSTATE class 22: a NUL in text, out of range...)."""
    if isinstance(exc, OverflowError | DataError | TextWithNul):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def _telemetry_off() -> dict[str, Any]:
    """FastAPI's built-in OpenTelemetry hooks cost CPU on every request; off unless PAYMUX_OTEL=true."""
    if (
        "telemetry" not in inspect.signature(FastAPI.__init__).parameters
        or os.getenv("PAYMUX_OTEL") == "true"
    ):
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}


class PaymuxApp(FastAPI):
    """The FastAPI app behind the request edge (``api/edge.py``), with ``POST /api/v1/payments``
    answered ahead of the edge and the framework by its lean path, which applies the edge's rules."""

    _edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if fastpath.handles(scope):
            await fastpath.respond(self.state.hub, scope, receive, send, self)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        edge = self._edge
        if edge is None:
            edge = self._edge = Edge(self._framework, self.state.hub.settings, self)
        await edge(scope, receive, send)

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(hub: Hub | None = None, *, run_workers: bool = False) -> FastAPI:
    """Build the app. With ``run_workers`` the background workers run inside it (``paymux serve``)."""

    request_id.install_log_records()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        h = hub or Hub()
        app.state.hub = h
        await passwords.warm_up()
        worker_task = None
        worker = None
        background = contextlib.AsyncExitStack()
        if run_workers:
            from paymux.payments.processing import Worker
            from paymux.worker.background import running_background

            worker = Worker(h)
            worker_task = asyncio.create_task(worker.run())
            await background.enter_async_context(running_background(h))
        try:
            yield
        finally:
            await background.aclose()
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            if hub is None:
                await h.close()

    app = PaymuxApp(
        **_telemetry_off(),
        title="paymux",
        version=__version__,
        description="Payments hub: one entry point for every channel. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    if hub is not None:
        app.state.hub = hub

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.to_dict(instance=request.url.path), exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        doc = invalid_request(exc.errors(), request.url.path)
        if request.url.path.startswith("/backoffice"):
            return _invalid_page(request, doc["detail"])
        return problem_response(422, doc)

    @app.exception_handler(CatalogError)
    async def _catalog(request: Request, exc: CatalogError) -> Response:
        # a reference to an unknown catalog item (or an item that cannot be stored) no route caught
        if request.url.path.startswith("/backoffice"):
            return _invalid_page(request, str(exc))
        return problem_response(422, invalid("invalid-catalog", str(exc)).to_dict(instance=request.url.path))

    @app.exception_handler(OverflowError)
    @app.exception_handler(TextWithNul)
    @app.exception_handler(DBAPIError)
    async def _data(request: Request, exc: Exception) -> Response:
        # A safety net: ids and text are checked where they come in (``api/params.py``); a value the
        # database still cannot take (a NUL in free text, on both databases) is the request's fault, answered
        # 422 (and logged). Any other database error is a 500.
        if not _refused_value(exc):
            return await _unexpected(request, exc)
        log.warning("value refused by the database on %s: %s", request.url.path, exc)
        if request.url.path.startswith("/backoffice"):
            return _invalid_page(request, "")
        problem = invalid("invalid-value", "a value of the request cannot be stored (out of range, invalid)")
        return problem_response(422, problem.to_dict(instance=request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, internal_error(request.url.path))

    from paymux.admin.credentials import router as credentials_router
    from paymux.admin.endpoints import router as admin_router
    from paymux.gateways.admin import router as gateways_admin_router
    from paymux.gateways.endpoints import router as inbound_router
    from paymux.payments.endpoints import router as channel_router

    app.include_router(channel_router)
    app.include_router(admin_router)
    app.include_router(credentials_router)

    from paymux.backoffice import mount as mount_backoffice

    mount_backoffice(app)
    from paymux.registers.endpoints import router as registers_router

    app.include_router(registers_router)
    from paymux.reconciliation.endpoints import router as reconciliation_router

    app.include_router(reconciliation_router)
    app.include_router(gateways_admin_router)
    app.include_router(inbound_router())
    from paymux.settlement.endpoints import router as settlement_router

    app.include_router(settlement_router)
    from paymux.tariffs.proposal_endpoints import router as tariff_proposals_router

    app.include_router(tariff_proposals_router)
    from paymux.reports.endpoints import router as reports_router

    app.include_router(reports_router)
    from paymux.rates.endpoints import router as rates_router

    app.include_router(rates_router)
    from paymux.notifications.endpoints import router as notifications_router

    app.include_router(notifications_router)
    from paymux.recurring.admin import router as recurring_admin_router
    from paymux.recurring.endpoints import router as recurring_router

    app.include_router(recurring_router)
    app.include_router(recurring_admin_router)
    from paymux.recurring.reminder_endpoints import router as reminders_router

    app.include_router(reminders_router)
    from paymux.invoices.admin import router as invoices_admin_router
    from paymux.invoices.collection_admin import router as invoices_collection_router
    from paymux.invoices.endpoints import router as invoices_router

    app.include_router(invoices_router)
    app.include_router(invoices_admin_router)
    app.include_router(invoices_collection_router)
    from paymux.invoices.paypage import router as paypage_router

    app.include_router(paypage_router)
    from paymux.wallets.admin import router as wallets_admin_router
    from paymux.wallets.api import router as wallets_router
    from paymux.wallets.fraud_admin import router as wallets_fraud_router

    app.include_router(wallets_router)
    from paymux.auth.oauth import router as oauth_router

    app.include_router(oauth_router)
    app.include_router(wallets_admin_router)
    from paymux.wallets.contracts_admin import router as wallet_contracts_router

    app.include_router(wallet_contracts_router)
    app.include_router(wallets_fraud_router)
    from paymux.kyc.api import router as kyc_router
    from paymux.support.api import router as support_router

    app.include_router(kyc_router)
    app.include_router(support_router)
    from paymux.cashdesks.admin import router as cashdesks_admin_router
    from paymux.cashdesks.customer_api import router as redeem_router

    app.include_router(redeem_router)
    app.include_router(cashdesks_admin_router)

    @app.get("/health", tags=["system"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
