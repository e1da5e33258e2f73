"""The home page shows what waits for the user's role, each counted with a link it may open; the menu
is grouped by area and shows only what the role may open."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

from sqlalchemy import update

from paymux.auth.permissions import role_permissions
from paymux.backoffice.framework import AREAS, SECTIONS
from paymux.backoffice.sections import load
from paymux.backoffice.settings import BackofficeSettings
from paymux.payments.models import Payment
from paymux.reconciliation.models import AMOUNT_DIFFERS, MATCHED, Reconciliation, ReconciliationLine
from paymux.settlement.models import BalanceAlertRule, PaymentOrder
from test_backoffice_ops_support import agent_org
from test_backoffice_ops_tariffs import FEE_2PCT, _propose
from test_backoffice_support import ROLE_CODES, Bo, login
from test_reports import add
from test_settlement_support import catalog, settle_env


def waiting(html: str) -> dict[str, tuple[str, str]]:
    """key -> (link, text) of the home page's list."""
    items = re.findall(r'<li id="waiting-([\w-]+)"[^>]*><a href="([^"]+)">([^<]+)</a>', html)
    return {k: (html_lib.unescape(link), html_lib.unescape(text)) for k, link, text in items}


def menu(html: str) -> list[tuple[str, list[str]]]:
    """(area, entry paths) of the menu beside the page."""
    nav = html.split('<nav class="menu"', 1)[1].split("</nav>", 1)[0]
    out = []
    for block in re.findall(r'<div class="area[^"]*">(.*?)</div>', nav, re.S):
        title = re.search(r'<p class="area-title">([^<]+)</p>', block)
        out.append((title.group(1) if title else "", re.findall(r'<a href="([^"]+)"', block)))
    return out


async def test_home_shows_what_waits_for_each_role(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        snap = await env.hub.catalog.get()
        now = dt.datetime.now(dt.UTC)
        await add(env, "p2", 10_00, now)
        await add(env, "p2", 20_00, now, status="failed")
        async with env.hub.sessions() as s:
            await s.execute(update(Payment).where(Payment.status == "failed").values(needs_attention=True))
            s.add(
                BalanceAlertRule(
                    provider_id=snap.providers_by_code["p1"].id, currency="RUB", threshold=100_00, emails=[]
                )
            )
            s.add(
                PaymentOrder(
                    number="PO-1",
                    provider_id=snap.providers_by_code["p2"].id,
                    currency="RUB",
                    period_start=now.date(),
                    period_end=now.date(),
                    gross=10_00,
                    amount=10_00,
                    purpose="debts",
                    created_by="acc",
                )
            )
            recon = Reconciliation(
                provider_id=snap.providers_by_code["p2"].id,
                date_from=now.date(),
                date_to=now.date(),
                period_start=now,
                period_end=now,
                source="upload",
                file_name="p2.csv",
                file_format="csv",
                file_size=1,
                file_sha256="0" * 64,
                id_kind="ours",
                created_by="acc",
            )
            s.add(recon)
            await s.flush()
            for kind in (MATCHED, AMOUNT_DIFFERS, AMOUNT_DIFFERS):
                s.add(ReconciliationLine(reconciliation_id=recon.id, kind=kind, currency="RUB"))
            await s.commit()
        await bo.user("fin", "financial_specialist")
        async with bo.client() as fin:
            await login(fin, "fin")
            await _propose(fin, FEE_2PCT)

        expected = {
            "cfo": {"attention", "low-balances", "discrepancies", "tariff-proposals", "orders-to-approve"},
            "financial_specialist": {"attention", "low-balances", "discrepancies"},  # its own proposal: not
            "operator": {"attention", "low-balances"},
            "support": {"attention"},
            "agent": set(),
        }
        for role, keys in expected.items():
            org = await agent_org(bo) if role == "agent" else None
            await bo.user(f"u-{role}", role, org=org)
            async with bo.client() as http:
                await login(http, f"u-{role}")
                page = await http.get("/backoffice/")
                assert page.status_code == 200
                found = waiting(page.text)
                assert set(found) == keys, role
                if not keys:
                    assert 'id="nothing-waiting"' in page.text
                for link, _ in found.values():  # every link opens for the role
                    assert (await http.get(link)).status_code == 200, (role, link)
                if "attention" in found:
                    assert found["attention"][1] == "1 payments need attention"
                if "discrepancies" in found:
                    assert found["discrepancies"] == (
                        f"/backoffice/reconciliation/{recon.id}?kind=discrepancies&state=open",
                        "2 discrepancies with providers' registers are open",
                    )
                main = page.text.split("<main>", 1)[1]  # not a copy of the menu
                assert "/backoffice/audit" not in main and "/backoffice/account" not in main


async def test_menu_is_grouped_by_area_with_what_the_role_may_open(db_url: str) -> None:
    load()
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        entries = {m.path: m for s in SECTIONS.values() for m in s.menu}
        assert all(
            m.area in AREAS for m in entries.values() if m.path not in ("/backoffice/", "/backoffice/account")
        )
        for role in ROLE_CODES:
            org = await agent_org(bo, "dealer") if role == "agent" else None
            await bo.user(f"m-{role}", role, org=org)
            async with bo.client() as http:
                await login(http, f"m-{role}")
                groups = menu((await http.get("/backoffice/")).text)
            areas = [a for a, _ in groups]
            assert areas[0] == "" and areas[1:] == [a for a in AREAS if a in areas[1:]], role
            held = role_permissions(role)
            shown = [p for _, paths in groups for p in paths]
            may = [m.path for m in entries.values() if m.permission is None or m.permission in held]
            assert sorted(shown) == sorted(may), role
            for area, paths in groups:
                assert paths and all(entries[p].area == area for p in paths), (role, area)
