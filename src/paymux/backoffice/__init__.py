"""The back office: server-rendered pages under /backoffice (see docs/backoffice.md)."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Add every back-office section's router to ``app``."""
    from paymux.backoffice.framework import SECTIONS
    from paymux.backoffice.sections import load

    load()
    for section in SECTIONS.values():
        app.include_router(section.router)
