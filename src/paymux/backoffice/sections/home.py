"""The start page: what the signed-in user may open."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from paymux.backoffice.framework import MenuEntry, PrincipalDep, Section, register, render, section_router

router = section_router()
register(Section("home", router, menu=(MenuEntry("Start", "/backoffice/", None, 0),)))


@router.get("/")
async def home(request: Request, _: PrincipalDep) -> Response:
    return render(request, "home.html")
