"""The FastAPI application: channel API, admin API, health, problem+json errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from paymux import __version__
from paymux.errors import PROBLEM_BASE, Problem
from paymux.runtime import Hub

log = logging.getLogger("paymux.api")

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def create_app(hub: Hub | None = None, *, run_workers: bool = False) -> FastAPI:
    """Build the app. With ``run_workers`` the background workers run inside it (``paymux serve``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        h = hub or Hub()
        app.state.hub = h
        worker_task = None
        worker = None
        if run_workers:
            from paymux.payments.processing import Worker

            worker = Worker(h)
            worker_task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            if hub is None:
                await h.close()

    app = FastAPI(
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
        errors = [
            {"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        body = {
            "type": PROBLEM_BASE + "invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": detail,
            "instance": request.url.path,
            "errors": errors,
        }
        return problem_response(422, body)

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
        body = {
            "type": PROBLEM_BASE + "internal",
            "title": "Internal error",
            "status": 500,
            "instance": request.url.path,
        }
        return problem_response(500, body)

    from paymux.admin.endpoints import router as admin_router
    from paymux.payments.endpoints import router as channel_router

    app.include_router(channel_router)
    app.include_router(admin_router)

    @app.get("/health", tags=["system"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
