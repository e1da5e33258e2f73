"""The back office's inbound gateways screen (Catalog · Inbound gateways): list, edit, create,
enable/disable through the gateways' upsert, audited, with the protocol's secrets and the password
never shown and kept when left as they are; the gateways answer with the change at once."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.gateways.models import InboundGateway
from test_backoffice_ops_support import ops_env
from test_backoffice_support import form_token, login
from test_gateway_cyberplat import HUB, PaymentSystem, catalog

PASSWORD = "osmp-secret-4242"


def textarea(page: str, name: str) -> str:
    m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, name
    return html.unescape(m.group(1))


def value(page: str, name: str) -> str:
    m = re.search(rf'<input (?:type="\w+" )?name="{name}"[^>]*value="([^"]*)"', page)
    assert m, name
    return html.unescape(m.group(1))


def selected(page: str, name: str) -> str:
    m = re.search(rf'<select name="{name}".*?</select>', page, re.S)
    assert m, name
    chosen = re.search(r'<option value="([^"]*)" selected>', m.group(0))
    assert chosen, name
    return chosen.group(1)


def form_of(page: str) -> dict[str, str]:
    """What a browser posts back for the gateway form, unchanged."""
    data = {"csrf_token": form_token(page), "name": value(page, "name"), "enabled": "1", "password": ""}
    for name in ("protocol", "channel", "check", "check_txn_id", "pay_result"):
        data[name] = selected(page, name)
    for name in ("services", "default_service", "service_param", "ignore_params", "login"):
        data[name] = value(page, name)
    for name in ("allow_ips", "trusted_proxies"):
        data[name] = value(page, name)
    for name in ("limits", "client_cert", "config"):
        data[name] = textarea(page, name)
    return data


async def _audit(hub, action: str) -> AuditEvent:  # type: ignore[no-untyped-def]
    async with hub.read_sessions() as s:
        ev = await s.scalar(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
        )
    assert ev is not None, action
    return ev


async def _osmp_check(env, login: str, password: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    params = {"command": "check", "txn_id": "1", "account": "9001234567", "sum": "100.00"}
    return await env.http.get("/osmp/newgw", params=params, auth=(login, password))


async def test_gateways_screen_lists_edits_creates_and_disables(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")
    cat = catalog()
    cat["channels"].append({"code": "new-ch", "name": "New payment system", "kind": "gateway"})
    async with ops_env(db_url, catalog=cat, run_workers=False) as (env, bo):
        await bo.user("op", "operator")
        await login(bo.http, "op")

        listing = (await bo.http.get("/backoffice/catalog/gateways")).text
        assert "/backoffice/catalog/gateways/cp" in listing and "cyberplat" in listing

        # the form shows the protocol's settings with the hub's private key masked
        page = (await bo.http.get("/backoffice/catalog/gateways/cp")).text
        assert "PRIVATE KEY" not in page
        assert "private_key: '***'" in textarea(page, "config")
        assert selected(page, "protocol") == "cyberplat" and selected(page, "channel") == "cp-ch"
        data = form_of(page)
        data["limits"] = "RUB: {min: '10.00', max: '200.00'}"
        r = await bo.http.post("/backoffice/catalog/gateways/cp", data=data)
        assert r.status_code == 303, r.text
        async with bo.hub.read_sessions() as s:
            row = await s.scalar(select(InboundGateway).where(InboundGateway.code == "cp"))
        assert row is not None and row.settings["limits"]["RUB"]["max"] == 20000
        assert row.settings["config"]["private_key"] == HUB.private_pem  # kept
        ev = await _audit(bo.hub, "gateway.update")
        assert ev.actor == "user:op" and ev.target == "gateway:cp"
        assert ev.before["limits"]["RUB"]["max"] == "5000.00" and ev.after["limits"]["RUB"]["max"] == "200.00"
        assert ev.after["config"]["private_key"] == "***" and "PRIVATE KEY" not in str(ev.after)
        # in force at once, answers still signed with the kept key
        ps = PaymentSystem(env)
        assert (await ps.check("BO1", amount="300.00")).error == "7"
        ok = await ps.check("BO2", amount="100.00")
        assert (ok.signed, ok.error) == (True, "0")

        # a new OSMP gateway with a login; its password is never shown and kept when left empty
        page = (await bo.http.get("/backoffice/catalog/new/gateways")).text
        new = {
            "csrf_token": form_token(page),
            "code": "newgw",
            "name": "New payment system",
            "enabled": "1",
            "protocol": "osmp",
            "channel": "new-ch",
            "services": "topup",
            "default_service": "topup",
            "service_param": "service",
            "check": "local",
            "login": "newgw",
            "password": PASSWORD,
        }
        r = await bo.http.post("/backoffice/catalog/new/gateways", data=new)
        assert r.status_code == 303, r.text
        assert "<result>0</result>" in (await _osmp_check(env, "newgw", PASSWORD)).text
        page = (await bo.http.get("/backoffice/catalog/gateways/newgw")).text
        assert PASSWORD not in page and "$argon2" not in page
        data = form_of(page)
        data["name"] = "Renamed"
        assert (await bo.http.post("/backoffice/catalog/gateways/newgw", data=data)).status_code == 303
        assert "<result>0</result>" in (await _osmp_check(env, "newgw", PASSWORD)).text
        assert (await _osmp_check(env, "newgw", "wrong-password")).status_code == 401

        # refusals are shown on the form: an unknown service, a bad config, an unknown protocol
        for change, words in [
            ({"services": "topup, ghost"}, "ghost"),
            ({"protocol": "cyberplat"}, "peer_public_key"),
            ({"protocol": "nope"}, "unknown inbound protocol"),
            ({"limits": "RUB: [unclosed"}, "limits"),
        ]:
            r = await bo.http.post("/backoffice/catalog/gateways/newgw", data={**data, **change})
            assert r.status_code == 422 and words in html.unescape(r.text), (change, r.text[-2000:])

        # disabled: the gateway refuses with its protocol's code
        page = (await bo.http.get("/backoffice/catalog/gateways/cp")).text
        r = await bo.http.post(
            "/backoffice/catalog/gateways/cp/disable", data={"csrf_token": form_token(page)}
        )
        assert r.status_code == 303
        assert (await ps.check("BO3")).error == "25"
        assert (await _audit(bo.hub, "gateway.disable")).target == "gateway:cp"
