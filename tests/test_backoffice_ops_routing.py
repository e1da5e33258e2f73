"""Routing screen: routes with their providers' health, the switch through a confirmation page (audited),
queued payments moving to the new provider, switching back."""

from __future__ import annotations

import asyncio
import io
import re
import time

from openpyxl import load_workbook
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.catalog.models import Provider
from paymux.payments.models import Payment
from paymux.payments.processing import Worker
from paymux.routing.models import RouteCandidate, RouteSwitch
from test_backoffice_ops_support import ops_env
from test_backoffice_support import form_token, login


async def _p1_enabled(bo) -> bool:  # type: ignore[no-untyped-def]
    async with bo.hub.read_sessions() as s:
        p1 = await s.scalar(select(Provider.id).where(Provider.code == "p1"))
        return bool(await s.scalar(select(RouteCandidate.enabled).where(RouteCandidate.provider_id == p1)))


async def test_switch_with_confirmation_moves_queued_payments_and_switches_back(db_url: str) -> None:
    async with ops_env(db_url, run_workers=False) as (env, bo):
        ids = []
        for _ in range(3):
            r = await env.pay("term")
            assert r.status_code in (200, 201, 202)
            ids.append(r.json()["id"])
        await bo.user("op", "operator")
        await bo.user("sup", "support")
        await login(bo.http, "op")

        page = await bo.http.get("/backoffice/routing")
        assert page.status_code == 200 and "3 found" in page.text
        assert re.findall(
            r"<td>topup</td><td>[^<]*</td><td class=\"num\">(\d)</td><td>(p\d)</td>", page.text
        ) == [
            ("1", "p1"),
            ("2", "p2"),
            ("3", "p3"),
        ]
        x = await bo.http.get("/backoffice/routing?provider=p2&export=xlsx")
        rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
        assert (
            rows[0][:4] == ("Service", "Strategy", "Priority", "Provider")
            and rows[1][3] == "p2"
            and len(rows) == 2
        )

        form = await bo.http.get("/backoffice/routing/switch?off=p1")
        token = form_token(form.text)
        choice = {"csrf_token": token, "off": "p1", "onto": "p3", "service": ""}
        confirm = await bo.http.post("/backoffice/routing/switch/confirm", data=choice)
        assert confirm.status_code == 200
        assert re.search(r'id="switch-services">topup<', confirm.text)
        assert re.search(r'id="switch-queued">[^<]*: 3<', confirm.text)
        assert await _p1_enabled(bo)  # the preview changed nothing
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(RouteSwitch.id)) is None

        # without the confirmation nothing happens; a user without routing.write is refused
        r = await bo.http.post("/backoffice/routing/switch", data=choice)
        assert r.status_code == 422 and await _p1_enabled(bo)
        async with bo.client() as sup:
            await login(sup, "sup")
            assert (await sup.get("/backoffice/routing")).status_code == 200
            page = await sup.get("/backoffice/routing")
            r = await sup.post(
                "/backoffice/routing/switch",
                data={**choice, "csrf_token": form_token(page.text), "confirm": "yes"},
            )
            assert r.status_code == 403 and await _p1_enabled(bo)

        r = await bo.http.post("/backoffice/routing/switch", data={**choice, "confirm": "yes"})
        assert r.status_code == 303 and not await _p1_enabled(bo)
        async with bo.hub.read_sessions() as s:
            ev = await s.scalar(select(AuditEvent).where(AuditEvent.action == "routing.switch"))
        assert ev is not None and ev.actor == "user:op" and ev.target == "provider:p1"
        assert ev.after["services"] == ["topup"] and ev.after["queued"] == 3 and ev.after["onto"] == "p3"

        # the queued payments (never sent to p1) are moved by the workers to p3
        worker = Worker(env.hub)
        task = asyncio.create_task(worker.run())
        try:
            deadline = time.monotonic() + 15
            while True:
                async with bo.hub.read_sessions() as s:
                    rows = (
                        await s.execute(
                            select(Payment.status, Payment.provider_id).where(Payment.id.in_(ids))
                        )
                    ).all()
                    p3 = await s.scalar(select(Provider.id).where(Provider.code == "p3"))
                if all(st == "succeeded" for st, _ in rows) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        finally:
            worker.stop()
            await task
        assert [st for st, _ in rows] == ["succeeded"] * 3 and {pid for _, pid in rows} == {p3}
        assert env.pay_calls("p1") == {}  # nothing was ever sent to p1

        # switch back, through its confirmation page
        async with bo.hub.read_sessions() as s:
            switch_id = await s.scalar(select(RouteSwitch.id))
        page = await bo.http.get(f"/backoffice/routing/switches/{switch_id}/revert")
        assert page.status_code == 200
        assert "<tr><td>topup</td><td>p1</td><td>T1</td><td>enabled</td></tr>" in page.text
        assert "<tr><td>topup</td><td>p3</td><td>T3</td><td>priority 1 → 3</td></tr>" in page.text
        r = await bo.http.post(
            f"/backoffice/routing/switches/{switch_id}/revert", data={"csrf_token": form_token(page.text)}
        )
        assert r.status_code == 303 and await _p1_enabled(bo)
        async with bo.hub.read_sessions() as s:
            back = await s.scalar(select(AuditEvent).where(AuditEvent.action == "routing.switch_back"))
        assert back is not None and back.after["candidates_changed"] == 2  # p1 enabled, p3 moved back


async def test_switch_errors_are_readable(db_url: str) -> None:
    async with ops_env(db_url, run_workers=False) as (_env, bo):
        await bo.user("op", "operator")
        await login(bo.http, "op")
        page = await bo.http.get("/backoffice/routing/switch")
        token = form_token(page.text)
        r = await bo.http.post(
            "/backoffice/routing/switch/confirm", data={"csrf_token": token, "off": "p1", "onto": "p1"}
        )
        assert r.status_code == 422 and "onto itself" in r.text
        r = await bo.http.post("/backoffice/routing/switch/confirm", data={"csrf_token": token})
        assert r.status_code == 422 and "Choose the provider to switch off." in r.text
