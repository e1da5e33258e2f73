"""Pages that only read do not hold SQLite's writer turn while they work: they sign the user in with
a short writable session, then read through a read-only one, so payments are not kept waiting by a
search, an export or a report (on PostgreSQL there is no turn; the pages must still work there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from paymux.backoffice.sections import (
    audit,
    balances,
    dashboard,
    monitoring,
    payments,
    queues,
    reconciliation,
    registers,
    reports,
    routing,
    settlement,
    tariffs,
    users,
)
from paymux.backoffice.sections import catalog as catalog_section
from paymux.backoffice.settings import BackofficeSettings
from test_backoffice_support import Bo, login
from test_settlement_support import at, catalog, settle_env

MODULES = {"reports": reports, "payments": payments, "audit": audit, "dashboard": dashboard}
MODULES |= {"queues": queues, "monitoring": monitoring, "settlement": settlement, "registers": registers}
MODULES |= {"reconciliation": reconciliation, "tariffs": tariffs, "balances": balances}
MODULES |= {"users": users, "catalog": catalog_section, "routing": routing}
PAGES = [
    ("reports", "/backoffice/reports?group_by=provider&grain=day&first=2026-05-01&last=2026-05-31"),
    ("reports", "/backoffice/reports/comparison?first=2026-05-01&last=2026-05-31"),
    ("reports", "/backoffice/reports?export=xlsx&first=2026-05-01&last=2026-05-31"),
    ("payments", "/backoffice/payments"),
    ("payments", "/backoffice/payments?export=xlsx"),
    ("payments", "/backoffice/payments/{id}"),
    ("audit", "/backoffice/audit"),
    ("dashboard", "/backoffice/dashboard"),
    ("queues", "/backoffice/queues"),
    ("monitoring", "/backoffice/monitoring"),
    ("settlement", "/backoffice/settlement"),
    ("settlement", "/backoffice/settlement/providers/p2"),
    ("settlement", "/backoffice/settlement/orders"),
    ("registers", "/backoffice/registers/tasks"),
    ("reconciliation", "/backoffice/reconciliation"),
    ("tariffs", "/backoffice/tariffs"),
    ("balances", "/backoffice/balances"),
    ("balances", "/backoffice/balances/p1"),
    ("users", "/backoffice/users"),
    ("catalog", "/backoffice/catalog/services"),
    ("catalog", "/backoffice/catalog/services/topup"),
    ("routing", "/backoffice/routing"),
]


@pytest.mark.parametrize(("module", "url"), PAGES)
async def test_reading_pages_leave_the_writer_free(
    db_url: str, module: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        payment = await env.pay("p1", 15_00, at("2026-05-03T10:00:00+00:00"))
        await bo.user("boss", "administrator")
        assert (await login(bo.http, "boss")).status_code == 303
        turn = env.hub._write_turn
        seen: list[bool] = []

        def watching(make: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                seen.append(turn.held if turn is not None else False)  # while the page is being made
                return make(*args, **kwargs)

            return wrapped

        for name in ("render", "respond", "workbook", "attachment", "attachment_built"):
            if hasattr(MODULES[module], name):
                monkeypatch.setattr(MODULES[module], name, watching(getattr(MODULES[module], name)))
        r = await bo.http.get(url.format(id=payment))
        assert r.status_code == 200, r.text[:300]
        assert seen and not any(seen), f"{url} held the writer's turn while it was made"


def _calls(dependant: Any) -> list[Any]:
    out = []
    for d in dependant.dependencies:
        out.append(d.call)
        out.extend(_calls(d))
    return out


def test_no_page_signs_in_before_reading_while_holding_a_writable_session() -> None:
    """``require_before_reading`` opens and closes a writable session of its own: a page that also
    takes ``DbDep`` would hold the writer's turn while it waits for it (SQLite: for ever)."""
    from fastapi.routing import APIRoute, _IncludedRouter

    from paymux.api.app import create_app
    from paymux.backoffice.framework import db

    routes: list[Any] = []
    for r in create_app().router.routes:
        if isinstance(r, _IncludedRouter):  # however the routers are nested
            routes.extend(r.effective_route_contexts())
        elif isinstance(r, APIRoute):
            routes.append(r)
    reading = []
    for route in routes:
        calls = _calls(route.dependant)
        if any(getattr(c, "__name__", "").startswith("require_before_reading") for c in calls):
            reading.append(route.path_format)
            assert db not in calls, f"{route.path_format} takes DbDep and require_before_reading"
    assert "/backoffice/reports" in reading and "/backoffice/payments" in reading
