"""Stored upload mappings over HTTP on 127.0.0.1: a biller (its API key) or an operator (the admin API,
audited) saves a named mapping, files are then uploaded by the mapping's name; names and mappings
checked (422 saying what is wrong), one biller never reads another's; the back office saves, chooses
and deletes them."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from invoices_support import AB, INV, Billing, billing_env
from paymux.audit.models import AuditEvent
from test_backoffice_support import bo_app, flash_of, follow, login, post_form

MAPS = f"{INV}/upload-mappings"
MONTHLY: dict[str, Any] = {
    "columns": {"number": "Factura", "amount": "Suma", "due_date": "Scadenta"},
    "currency": "EUR",
    "delimiter": ";",
    "date_format": "%d.%m.%Y",
    "decimal_separator": ",",
}
CSV = b"Factura;Suma;Scadenta\nM-1;120,50;31.01.2030\nM-2;10;28.02.2030\n"


async def upload(b: Billing, data: dict[str, str], url: str = f"{INV}/upload", h: Any = None) -> Any:
    return await b.http.post(url, files={"file": ("m.csv", CSV)}, data=data, headers=h or b.h)


async def test_a_biller_stores_a_mapping_and_uploads_by_its_name(db_url: str) -> None:
    async with billing_env(db_url) as b:
        assert (await b.http.get(MAPS, headers=b.h)).json() == []
        r = await b.http.put(f"{MAPS}/monthly", json=MONTHLY, headers=b.h)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "monthly" and r.json()["mapping"] == MONTHLY
        assert r.json()["updated_by"] == "biller:power"
        [listed] = (await b.http.get(MAPS, headers=b.h)).json()
        assert listed["name"] == "monthly"

        # without the mapping the file cannot be read; by its name it is
        r = await upload(b, {})
        assert r.status_code == 422
        r = await upload(b, {"mapping_name": "monthly"})
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["error"]) == (2, 0)
        assert (await b.get("M-1"))["amount"] == "120.50" and (await b.get("M-2"))["due_date"] == "2030-02-28"

        # what is wrong is said: an unknown name, both ways at once, a bad mapping or name
        r = await upload(b, {"mapping_name": "weekly"})
        assert r.status_code == 422 and "no mapping named 'weekly'" in r.json()["detail"]
        r = await upload(b, {"mapping_name": "monthly", "mapping": '{"currency": "EUR"}'})
        assert r.status_code == 422 and "not both" in r.json()["detail"]
        r = await b.http.put(f"{MAPS}/weekly", json={"columns": {"total": "Sum"}}, headers=b.h)
        assert r.status_code == 422 and "the mapping is not valid" in r.json()["detail"]
        r = await b.http.put(f"{MAPS}/weekly", json={"date_format": "dd.mm"}, headers=b.h)
        assert r.status_code == 422 and "strptime" in r.json()["detail"]
        r = await b.http.put(f"{MAPS}/-bad name", json=MONTHLY, headers=b.h)
        assert r.status_code == 422 and "name" in r.json()["detail"]
        assert (await b.http.get(f"{MAPS}/weekly", headers=b.h)).status_code == 404

        # saved again: replaced, still one
        r = await b.http.put(f"{MAPS}/monthly", json={**MONTHLY, "currency": "MDL"}, headers=b.h)
        assert r.status_code == 200 and r.json()["mapping"]["currency"] == "MDL"
        assert len((await b.http.get(MAPS, headers=b.h)).json()) == 1

        # another biller's mappings are its own
        env = b.env
        r = await env.http.post(AB, json={"code": "water", "name": "Water"}, headers=env.admin)
        assert r.status_code == 201
        key = (await env.http.post(f"{AB}/water/keys", json={}, headers=env.admin)).json()["key"]
        water = {"Authorization": f"Bearer {key}"}
        assert (await env.http.get(MAPS, headers=water)).json() == []
        assert (await env.http.get(f"{MAPS}/monthly", headers=water)).status_code == 404
        r = await upload(b, {"mapping_name": "monthly"}, h=water)
        assert r.status_code == 422

        r = await b.http.delete(f"{MAPS}/monthly", headers=b.h)
        assert r.status_code == 204
        assert (await b.http.get(f"{MAPS}/monthly", headers=b.h)).status_code == 404
        assert (await b.http.delete(f"{MAPS}/monthly", headers=b.h)).status_code == 404


async def test_an_operator_stores_mappings_for_a_biller_audited(db_url: str) -> None:
    async with billing_env(db_url) as b:
        env = b.env
        r = await env.http.put(f"{AB}/power/upload-mappings/bank-export", json=MONTHLY, headers=env.admin)
        assert r.status_code == 200, r.text
        assert (await b.http.get(f"{MAPS}/bank-export", headers=b.h)).json()["mapping"] == MONTHLY
        listed = (await env.http.get(f"{AB}/power/upload-mappings", headers=env.admin)).json()
        assert [m["name"] for m in listed] == ["bank-export"]
        r = await upload(b, {"mapping_name": "bank-export"}, url=f"{AB}/power/invoices/upload", h=env.admin)
        assert r.status_code == 200 and r.json()["created"] == 2
        assert (await env.http.get(f"{AB}/nobody/upload-mappings", headers=env.admin)).status_code == 404
        r = await env.http.delete(f"{AB}/power/upload-mappings/bank-export", headers=env.admin)
        assert r.status_code == 204
        async with env.hub.read_sessions() as s:
            actions = (
                await s.scalars(
                    select(AuditEvent.action)
                    .where(AuditEvent.target == "biller:power/mapping:bank-export")
                    .order_by(AuditEvent.seq)
                )
            ).all()
        assert actions == ["biller.upload_mapping", "biller.upload_mapping_delete"]


async def test_the_back_office_saves_chooses_and_deletes_a_mapping(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("admin")
        await login(bo.http, "admin")
        page = "/backoffice/billers/power"
        r = await post_form(
            bo.http,
            "/backoffice/billers/new",
            "/backoffice/billers/new",
            {
                "code": "power",
                "name": "Power",
                "enabled": "1",
                "methods": ["bank_transfer"],
                "timezone": "UTC",
            },
        )
        assert r.status_code == 303, r.text[:3000]
        shown = (await bo.http.get(page)).text
        assert "No stored mappings." in shown and 'id="mapping-name"' not in shown

        r = await post_form(bo.http, page, f"{page}/mappings", {"name": "monthly", "mapping": "{bad"})
        assert flash_of((await follow(bo.http, r)).text) == "The mapping is not JSON."
        r = await post_form(bo.http, page, f"{page}/mappings", {"name": "monthly", "mapping": '{"sheet": 5}'})
        assert "the mapping is not valid" in flash_of((await follow(bo.http, r)).text)
        r = await post_form(
            bo.http, page, f"{page}/mappings", {"name": "monthly", "mapping": json.dumps(MONTHLY)}
        )
        shown = (await follow(bo.http, r)).text
        assert flash_of(shown) == "The mapping is saved."
        assert re.search(r'<option value="monthly">monthly</option>', shown) and "Factura" in shown

        token = re.search(r'name="csrf_token" value="([^"]+)"', shown)
        assert token is not None
        r = await bo.http.post(
            f"{page}/upload",
            data={"csrf_token": token.group(1), "mapping_name": "monthly", "mapping": ""},
            files={"file": ("m.csv", CSV, "text/csv")},
        )
        assert r.status_code == 200 and re.search(r'id="upload-created">2<', r.text), r.text[:2000]

        r = await post_form(bo.http, page, f"{page}/mappings/delete", {"name": "monthly"})
        shown = (await follow(bo.http, r)).text
        assert flash_of(shown) == "The mapping is deleted." and "No stored mappings." in shown
