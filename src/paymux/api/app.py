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
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from paymux import __version__
from paymux.auth import passwords
from paymux.errors import Problem, internal_error, invalid_request
from paymux.payments import fastpath
from paymux.runtime import Hub

log = logging.getLogger("paymux.api")

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _telemetry_off() -> dict[str, Any]:
    """FastAPI's built-in OpenTelemetry hooks cost CPU on every request; off unless PAYMUX_OTEL=true."""
    if (
        "telemetry" not in inspect.signature(FastAPI.__init__).parameters
        or os.getenv("PAYMUX_OTEL") == "true"
    ):
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}


class PaymuxApp(FastAPI):
    """The FastAPI app, with ``POST /api/v1/payments`` answered ahead of its middleware stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if fastpath.handles(scope):
            await fastpath.respond(self.state.hub, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(hub: Hub | None = None, *, run_workers: bool = False) -> FastAPI:
    """Build the app. With ``run_workers`` the background workers run inside it (``paymux serve``)."""

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
        return problem_response(exc.status, exc.to_dict(instance=request.url.path))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, invalid_request(exc.errors(), request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, body)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, internal_error(request.url.path))

    from paymux.admin.endpoints import router as admin_router
    from paymux.gateways.admin import router as gateways_admin_router
    from paymux.gateways.osmp.endpoints import router as osmp_router
    from paymux.payments.endpoints import router as channel_router

    app.include_router(channel_router)
    app.include_router(admin_router)

    from paymux.backoffice import mount as mount_backoffice

    mount_backoffice(app)
    from paymux.registers.endpoints import router as registers_router

    app.include_router(registers_router)
    from paymux.reconciliation.endpoints import router as reconciliation_router

    app.include_router(reconciliation_router)
    app.include_router(gateways_admin_router)
    app.include_router(osmp_router)
    from paymux.settlement.endpoints import router as settlement_router

    app.include_router(settlement_router)
    from paymux.tariffs.proposal_endpoints import router as tariff_proposals_router

    app.include_router(tariff_proposals_router)
    from paymux.reports.endpoints import router as reports_router

    app.include_router(reports_router)
    from paymux.rates.endpoints import router as rates_router

    app.include_router(rates_router)

    @app.get("/health", tags=["system"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
