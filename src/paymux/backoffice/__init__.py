"""The back office: server-rendered pages under /backoffice (see docs/backoffice.md)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response


def mount(app: FastAPI) -> None:
    """Add every back-office section's router to ``app``."""
    from paymux.backoffice.framework import SECTIONS
    from paymux.backoffice.sections import load
    from paymux.backoffice.sections.auth_pages import static_file

    load()
    for section in SECTIONS.values():
        app.include_router(section.router)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """The icon browsers ask every site for (the pages also name ``static/icon.svg``)."""
        return static_file("favicon.ico")
