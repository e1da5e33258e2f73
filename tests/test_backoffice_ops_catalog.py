"""Catalog screens: lists, create, edit, enable/disable through the catalog service layer; every change
audited with before/after; secrets masked on screen and kept when left masked; the hub sees changes."""

from __future__ import annotations

import copy
import html
import io
import re

from openpyxl import load_workbook
from sqlalchemy import select

from harness import BASE_CATALOG
from paymux.audit.models import AuditEvent
from paymux.catalog.models import Agent, Channel, Provider
from paymux.payments.models import Payment
from test_backoffice_ops_support import ops_env, pay_all
from test_backoffice_support import form_token, login

SECRET = "s3cret-token-value-0001"


def textarea(page: str, name: str) -> str:
    m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, name
    return html.unescape(m.group(1))


def inputs(page: str) -> dict[str, str]:
    return {
        n: html.unescape(v)
        for n, v in re.findall(r'<input (?:type="number" min="1" )?name="(\w+)"[^>]*value="([^"]*)"', page)
    }


async def _audit(bo, action: str) -> AuditEvent:  # type: ignore[no-untyped-def]
    async with bo.hub.read_sessions() as s:
        ev = await s.scalar(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
        )
    assert ev is not None, action
    return ev


async def test_catalog_edit_create_enable_audited_with_secrets_masked(db_url: str) -> None:
    cat = copy.deepcopy(BASE_CATALOG)
    cat["providers"][0]["config"] = {"token": SECRET}
    async with ops_env(db_url, catalog=cat, emulators={"p1": {"token": SECRET}}) as (env, bo):
        await bo.user("op", "operator")
        await login(bo.http, "op")

        # provider: the token is masked on screen, kept when left masked, masked in the audit log
        page = (await bo.http.get("/backoffice/catalog/providers/p1")).text
        assert SECRET not in page and "token: '***'" in textarea(page, "config")
        config = textarea(page, "config").replace("timeout: '1'", "timeout: '2'")
        data = {
            "csrf_token": form_token(page),
            "name": "Provider one (renamed)",
            "enabled": "1",
            "protocol": "jsonhttp",
            "config": config,
            "timezone": "UTC",
            "settlement": "prepaid",
            "overdraft": textarea(page, "overdraft"),
            **{k: v for k, v in inputs(page).items() if k.startswith("breaker_")},
        }
        r = await bo.http.post("/backoffice/catalog/providers/p1", data=data)
        assert r.status_code == 303, r.text
        async with bo.hub.read_sessions() as s:
            p1 = await s.scalar(select(Provider).where(Provider.code == "p1"))
        assert p1 is not None and p1.name == "Provider one (renamed)"
        assert p1.config["token"] == SECRET and p1.config["timeout"] == "2"
        ev = await _audit(bo, "provider.update")
        assert ev.actor == "user:op" and ev.target == "provider:p1"
        assert ev.before["name"] == "Provider one" and ev.after["name"] == "Provider one (renamed)"
        assert ev.after["config"]["token"] == "***" and SECRET not in str(ev.after)
        done = await pay_all(env, [{}])  # p1 still has its token: the emulator accepts the payment
        assert done[0]["status"] == "succeeded" and done[0]["provider"] == "p1"

        # a bad value is refused with a readable message and changes nothing
        bad = {**data, "config": "url: [unclosed"}
        r = await bo.http.post("/backoffice/catalog/providers/p1", data=bad)
        assert r.status_code == 422 and "not readable YAML" in r.text

        # service route edited on its page: p2 first; the hub routes new payments accordingly
        page = (await bo.http.get("/backoffice/catalog/services/topup")).text
        cands = textarea(page, "candidates")
        assert "provider: p1" in cands
        swapped = cands.replace("provider: p1", "provider: PX").replace("provider: p2", "provider: p1")
        swapped = swapped.replace("provider: PX", "provider: p2").replace("code: T1", "code: TX")
        swapped = swapped.replace("code: T2", "code: T1").replace("code: TX", "code: T2")
        fields = {
            k: v
            for k, v in inputs(page).items()
            if k in ("category", "account_pattern", "min_amount", "max_amount")
        }
        r = await bo.http.post(
            "/backoffice/catalog/services/topup",
            data={
                "csrf_token": form_token(page),
                "name": "Mobile top-up",
                "enabled": "1",
                "currency": "RUB",
                "strategy": "priority",
                "candidates": swapped,
                **fields,
            },
        )
        assert r.status_code == 303, r.text
        assert (await _audit(bo, "service.update")).after["route"]["candidates"][0]["provider"] == "p2"
        done = await pay_all(env, [{}])
        assert done[0]["provider"] == "p2"

        # disable / enable a service: audited, and payments refused meanwhile
        page = (await bo.http.get("/backoffice/catalog/services/topup")).text
        r = await bo.http.post(
            "/backoffice/catalog/services/topup/disable", data={"csrf_token": form_token(page)}
        )
        assert r.status_code == 303
        ev = await _audit(bo, "service.disable")
        assert ev.before["enabled"] is True and ev.after["enabled"] is False
        assert (await env.pay()).status_code >= 400
        await bo.http.post("/backoffice/catalog/services/topup/enable", data={"csrf_token": form_token(page)})
        assert (await _audit(bo, "service.enable")).after["enabled"] is True
        assert (await env.pay()).status_code in (200, 201, 202)

        # create an agent; a second one with the same code is refused
        page = (await bo.http.get("/backoffice/catalog/new/agents")).text
        new = {"csrf_token": form_token(page), "code": "north", "name": "North dealer", "enabled": "1"}
        assert (await bo.http.post("/backoffice/catalog/new/agents", data=new)).status_code == 303
        ev = await _audit(bo, "agent.create")
        assert ev.before is None and ev.after == {
            "code": "north",
            "name": "North dealer",
            "enabled": True,
            "manager": None,
        }
        r = await bo.http.post("/backoffice/catalog/new/agents", data=new)
        assert r.status_code == 422 and "already exists" in r.text
        async with bo.hub.read_sessions() as s:
            assert len((await s.scalars(select(Agent).where(Agent.code == "north"))).all()) == 1

        # channel HMAC secret: write-only on screen, kept when the field is left empty
        page = (await bo.http.get("/backoffice/catalog/channels/web")).text
        chan = {
            "csrf_token": form_token(page),
            "name": "Internet bank",
            "enabled": "1",
            "kind": "internet_bank",
            "group": "online",
            "signing_mode": "hmac",
            "hmac_secret": "0123456789abcdef-secret",
        }
        assert (await bo.http.post("/backoffice/catalog/channels/web", data=chan)).status_code == 303
        page = (await bo.http.get("/backoffice/catalog/channels/web")).text
        assert "0123456789abcdef-secret" not in page and "leave empty to keep it" in page
        r = await bo.http.post(
            "/backoffice/catalog/channels/web", data={**chan, "hmac_secret": "", "name": "Internet bank 2"}
        )
        assert r.status_code == 303
        async with bo.hub.read_sessions() as s:
            web = await s.scalar(select(Channel).where(Channel.code == "web"))
        assert (
            web is not None and web.hmac_secret == "0123456789abcdef-secret" and web.name == "Internet bank 2"
        )
        ev = await _audit(bo, "channel.update")
        assert ev.after["signing"]["hmac_secret"] == "***"

        # lists: search, filter, sort, export
        r = await bo.http.get("/backoffice/catalog/providers?q=two")
        assert "1 found" in r.text and ">p2</a>" in r.text
        r = await bo.http.get("/backoffice/catalog/providers?settlement=postpaid&sort=code&dir=desc")
        assert re.findall(r'catalog/providers/(p\d)"', r.text) == ["p3", "p2"]
        x = await bo.http.get("/backoffice/catalog/agents?export=xlsx")
        rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
        assert rows[0] == ("Code", "Name", "Enabled") and ("north", "North dealer", True) in rows
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(Payment.id).limit(1)) is not None


async def test_catalog_read_only_roles_cannot_change(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        await bo.user("sup", "support")
        await login(bo.http, "sup")
        page = await bo.http.get("/backoffice/catalog/services/topup")
        assert page.status_code == 200 and 'id="save"' not in page.text and "disabled" in page.text
        r = await bo.http.post(
            "/backoffice/catalog/services/topup/disable", data={"csrf_token": form_token(page.text)}
        )
        assert r.status_code == 403
        assert (await bo.http.get("/backoffice/catalog/new/agents")).status_code == 403
