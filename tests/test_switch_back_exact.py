"""Switching back restores exactly what a switch changed: the candidates it disabled are enabled, the
``onto`` candidates it enabled are disabled again with their priorities back, and the candidates it
added are removed, so the routes are as before. A candidate changed since is left as it is, and the
confirmation pages say what will change and what will remain. Back office and admin API."""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import select

from harness import BASE_CATALOG
from paymux.catalog.models import Provider, Service
from paymux.routing.models import RouteCandidate, RouteSwitchChange
from test_backoffice_ops_support import ops_env
from test_backoffice_support import flash_of, follow, form_token, login


def two_services() -> dict[str, Any]:
    """topup: p1 (1), p2 (2, disabled), p3 (3); internet: p1 (1, amount range) only."""
    cat = copy.deepcopy(BASE_CATALOG)
    topup = cat["services"][0]
    topup["route"]["candidates"][1]["enabled"] = False
    internet = copy.deepcopy(topup)
    internet.update(code="internet", name="Home internet")
    internet["route"] = {
        "strategy": "priority",
        "candidates": [{"provider": "p1", "code": "I1", "min_amount": "5.00", "max_amount": "500.00"}],
    }
    cat["services"].append(internet)
    return cat


async def routes(env: Any) -> list[tuple[Any, ...]]:
    """Every route candidate, by service and provider code (ids left out), as stored."""
    async with env.hub.read_sessions() as s:
        rows = await s.execute(
            select(Service.code, Provider.code, RouteCandidate)
            .join(Service, Service.id == RouteCandidate.service_id)
            .join(Provider, Provider.id == RouteCandidate.provider_id)
            .order_by(RouteCandidate.id)
        )
        return [
            (
                svc,
                prov,
                c.id,
                c.provider_service_code,
                c.priority,
                c.weight,
                c.min_amount,
                c.max_amount,
                c.enabled,
                c.switched_by_id,
            )
            for svc, prov, c in rows.all()
        ]


async def test_switch_onto_and_back_leaves_the_routes_exactly_as_they_were(db_url: str) -> None:
    async with ops_env(db_url, catalog=two_services(), run_workers=False) as (env, bo):
        before = await routes(env)
        await bo.user("op", "operator")
        await login(bo.http, "op")
        form = await bo.http.get("/backoffice/routing/switch?off=p1")
        choice = {"csrf_token": form_token(form.text), "off": "p1", "onto": "p2", "service": ""}
        confirm = await bo.http.post("/backoffice/routing/switch/confirm", data=choice)
        table = re.search(r'<table id="switch-changes">.*?</table>', confirm.text, re.S)
        assert table is not None
        cells = re.findall(r"<tr><td>(\w+)</td><td>(\w+)</td><td>(\w+)</td><td>([^<]*)</td></tr>", table[0])
        assert cells == [
            ("internet", "p1", "I1", "disabled"),
            ("internet", "p2", "I1", "added with priority 1"),
            ("topup", "p1", "T1", "disabled"),
            ("topup", "p2", "T2", "enabled; priority 2 → 1"),
        ]
        r = await bo.http.post("/backoffice/routing/switch", data={**choice, "confirm": "yes"})
        assert flash_of((await follow(bo.http, r)).text) == "The switch was made."
        switched = await routes(env)
        assert switched != before and len(switched) == len(before) + 1

        async with env.hub.read_sessions() as s:
            switch_id = await s.scalar(select(RouteSwitchChange.switch_id))
        page = await bo.http.get(f"/backoffice/routing/switches/{switch_id}/revert")
        table = re.search(r'<table id="revert-changes">.*?</table>', page.text, re.S)
        assert table is not None
        cells = re.findall(r"<tr><td>(\w+)</td><td>(\w+)</td><td>(\w+)</td><td>([^<]*)</td></tr>", table[0])
        assert cells == [
            ("internet", "p1", "I1", "enabled"),
            ("internet", "p2", "I1", "removed (the switch added it)"),
            ("topup", "p1", "T1", "enabled"),
            ("topup", "p2", "T2", "disabled; priority 1 → 2"),
        ]
        assert 'id="revert-kept"' not in page.text
        r = await bo.http.post(
            f"/backoffice/routing/switches/{switch_id}/revert", data={"csrf_token": form_token(page.text)}
        )
        assert flash_of((await follow(bo.http, r)).text) == "The switch was undone."
        assert await routes(env) == before
        again = await bo.http.get(f"/backoffice/routing/switches/{switch_id}/revert")
        assert "Nothing to undo." in again.text


async def test_switch_back_leaves_what_was_changed_since_and_says_so(db_url: str) -> None:
    async with ops_env(db_url, catalog=two_services(), run_workers=False) as (env, bo):
        before = await routes(env)
        made = await env.http.post(
            "/api/v1/admin/switches", json={"off": "p1", "onto": "p2", "service": "topup"}, headers=env.admin
        )
        assert made.status_code == 201, made.text
        body = made.json()
        assert {(c["provider"], tuple(c["actions"])) for c in body["changes"]} == {
            ("p1", ("disable",)),
            ("p2", ("enable", "priority")),
        }
        # someone edits p2's candidate since (the edit clears the switch's mark)
        async with env.hub.sessions() as s:
            p2 = await s.scalar(select(RouteCandidate).where(RouteCandidate.provider_service_code == "T2"))
            assert p2 is not None and p2.switched_by_id == body["switch_id"]
            p2.switched_by_id, p2.weight = None, 5
            await s.commit()
        await bo.user("op", "operator")
        await login(bo.http, "op")
        page = await bo.http.get(f"/backoffice/routing/switches/{body['switch_id']}/revert")
        kept = re.search(r'<ul id="revert-kept">(.*?)</ul>', page.text, re.S)
        assert kept is not None and "p2 (T2)" in kept[1] and "T1" not in kept[1]
        back = await env.http.post(f"/api/v1/admin/switches/{body['switch_id']}/revert", headers=env.admin)
        assert back.status_code == 200, back.text
        assert [(c["provider"], c["actions"]) for c in back.json()["changes"]] == [("p1", ["enable"])]
        after = {r[3]: r for r in await routes(env)}
        old = {r[3]: r for r in before}
        assert after["T1"] == old["T1"] and after["T3"] == old["T3"] and after["I1"] == old["I1"]
        assert after["T2"][4] == 1 and after["T2"][8] is True  # as the edit left it
