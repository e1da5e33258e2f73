"""The home page: what waits for the signed-in user's role (approvals, failed sends, low balances,
discrepancies...), each counted with a link to the page to act on it (see ``paymux.backoffice.waiting``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    MenuEntry,
    ReadDbDep,
    Section,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.waiting import waiting_for

router = section_router()
register(Section("home", router, menu=(MenuEntry("Start", "/backoffice/", None, 0),)))

Reader = Annotated[Principal, Depends(require_before_reading(None))]


@router.get("/")
async def home(request: Request, session: ReadDbDep, me: Reader) -> Response:
    return render(request, "home.html", waiting=await waiting_for(session, me, request.app.state.hub))
