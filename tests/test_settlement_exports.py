"""Payment order files: refused (409, naming each setting) without our own bank details or a payee's
account, nothing exported; their dates and times in the business timezone (PAYMUX_BUSINESS_TIMEZONE)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from browser_support import serving_backoffice
from paymux.audit.models import AuditEvent
from paymux.settings import Settings
from paymux.settlement.models import PaymentOrder
from paymux.settlement.statements.onec import read as read_1c
from test_backoffice_support import add_user, form_token, login
from test_settlement_orders import _approved, _debts, pain001_schema
from test_settlement_support import P2_ACCOUNT, P2_IBAN, P2_INN, SEnv, at, catalog, settle_env

DEBTOR = "PAYMUX_SETTLEMENT_DEBTOR_"
PAIN_NS = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.03}"


@pytest.fixture(autouse=True)
def no_debtor(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(DEBTOR):
            monkeypatch.delenv(name)


async def _orders(env: SEnv, *, p3: bool = False) -> list[PaymentOrder]:
    await _debts(env)
    await env.details(
        "p2", beneficiary="ООО Провайдер Два", iban=P2_IBAN, account=P2_ACCOUNT, bik="044525225", inn=P2_INN
    )
    if p3:  # a postpaid provider without bank details
        await env.pay("p3", 70_000, at("2026-03-01T10:00:00+00:00"), remuneration=2_100)
    return await _approved(env)


async def _exported(env: SEnv) -> tuple[int, int]:
    async with env.hub.read_sessions() as s:
        marked = await s.scalar(
            select(func.count()).select_from(PaymentOrder).where(PaymentOrder.exported_at.is_not(None))
        )
        audited = await s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "payment_order.export")
        )
    return int(marked or 0), int(audited or 0)


async def test_export_refused_without_our_bank_details(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env, serving_backoffice(env.hub) as base:
        orders = await _orders(env)
        ids = [o.id for o in orders]
        async with httpx.AsyncClient(base_url=base, headers=env.admin, timeout=30) as http:

            async def export(fmt: str) -> httpx.Response:
                return await http.post(
                    "/api/v1/admin/payment-orders/export", json={"ids": ids, "format": fmt}
                )

            r = await export("pain001")
            assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json", r.text
            body = r.json()
            assert body["type"].endswith("/debtor-not-configured")
            assert body["missing_settings"] == [f"{DEBTOR}NAME", f"{DEBTOR}IBAN or {DEBTOR}ACCOUNT"]
            assert f"{DEBTOR}NAME" in body["detail"] and "Nothing was exported" in body["detail"]
            r = await export("1c")
            assert r.status_code == 409
            assert r.json()["missing_settings"] == [f"{DEBTOR}{k}" for k in ("NAME", "ACCOUNT", "INN", "BIK")]
            assert await _exported(env) == (0, 0)

            # a plain account (not an IBAN) also needs its bank; a malformed value is named too
            monkeypatch.setenv(f"{DEBTOR}NAME", "Paymux Operator SA")
            monkeypatch.setenv(f"{DEBTOR}ACCOUNT", "40702810000000000777")
            r = await export("pain001")
            assert r.status_code == 409 and r.json()["missing_settings"] == [f"{DEBTOR}BIC or {DEBTOR}BIK"]
            monkeypatch.setenv(f"{DEBTOR}IBAN", "FR1420041010050500013M02607")  # wrong check digits
            r = await export("pain001")
            assert r.status_code == 409 and r.json()["missing_settings"] == []
            (bad,) = r.json()["invalid_settings"]
            assert bad.startswith(f"{DEBTOR}IBAN: ") and "check digits" in bad
            assert await _exported(env) == (0, 0)

            # configured: the file is valid against the XSD and carries our account, not a placeholder
            monkeypatch.setenv(f"{DEBTOR}IBAN", "FR1420041010050500013M02606")
            r = await export("pain001")
            assert r.status_code == 200, r.text
            assert b"NOTPROVIDED</Id>\n" not in r.content.split(b"<DbtrAgt>")[0]
            doc = pain001_schema().to_dict(r.content)
            pmt = doc["CstmrCdtTrfInitn"]["PmtInf"][0]
            assert pmt["DbtrAcct"]["Id"]["IBAN"] == "FR1420041010050500013M02606"
            assert pmt["Dbtr"]["Nm"] == "Paymux Operator SA"
            assert await _exported(env) == (len(ids), 1)

        # the back office shows the same refusal as a message, and exports nothing
        monkeypatch.delenv(f"{DEBTOR}IBAN")
        monkeypatch.delenv(f"{DEBTOR}ACCOUNT")
        await add_user(env.hub, "acc", "accountant")
        async with httpx.AsyncClient(base_url=base, timeout=30) as bo:
            assert (await login(bo, "acc")).status_code == 303
            page = await bo.get("/backoffice/settlement/orders")
            r = await bo.post(
                "/backoffice/settlement/orders/export",
                data={"csrf_token": form_token(page.text), "ids": [str(i) for i in ids], "format": "1c"},
            )
            assert r.status_code == 303
            shown = await bo.get(r.headers["location"])
            assert 'id="flash-error"' in shown.text
            for name in ("ACCOUNT", "INN", "BIK"):
                assert f"{DEBTOR}{name}" in shown.text
            assert "Nothing was exported" in shown.text
        assert await _exported(env) == (len(ids), 1)


async def test_export_refused_without_the_payees_account(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {
        "NAME": "ООО Пэймакс",
        "ACCOUNT": "40702810000000000777",
        "INN": "7700000001",
        "BIK": "044525225",
    }.items():
        monkeypatch.setenv(DEBTOR + k, v)
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env, serving_backoffice(env.hub) as base:
        orders = await _orders(env, p3=True)
        bare = next(o for o in orders if o.payee.get("provider") == "p3")
        async with httpx.AsyncClient(base_url=base, headers=env.admin, timeout=30) as http:
            for fmt, lacking in (("pain001", "no IBAN or account"), ("1c", "no account, BIK, INN")):
                r = await http.post(
                    "/api/v1/admin/payment-orders/export", json={"ids": [o.id for o in orders], "format": fmt}
                )
                assert r.status_code == 409, r.text
                body = r.json()
                assert body["type"].endswith("/payee-details-missing") and body["orders"] == [bare.number]
                assert f"{bare.number} (provider p3): {lacking}" in body["detail"]
            assert await _exported(env) == (0, 0)
            good = [o.id for o in orders if o.id != bare.id]
            r = await http.post("/api/v1/admin/payment-orders/export", json={"ids": good, "format": "1c"})
            assert r.status_code == 200, r.text


@pytest.mark.parametrize("zone", ["Asia/Vladivostok", "America/Los_Angeles"])
async def test_file_dates_in_the_business_timezone(
    db_url: str, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    for k, v in {
        "NAME": "ООО Пэймакс",
        "ACCOUNT": "40702810000000000777",
        "INN": "7700000001",
        "BIK": "044525225",
    }.items():
        monkeypatch.setenv(DEBTOR + k, v)
    tz = ZoneInfo(zone)
    async with settle_env(db_url, catalog(p2="Europe/Moscow"), business_timezone=zone) as env:
        orders = await _orders(env)
        ids = [o.id for o in orders]

        def within(moment: dt.datetime, before: dt.datetime, after: dt.datetime) -> bool:
            return before.replace(microsecond=0) <= moment <= after

        before = dt.datetime.now(tz)
        r = await env.http.post(
            "/api/v1/admin/payment-orders/export", json={"ids": ids, "format": "1c"}, headers=env.admin
        )
        after = dt.datetime.now(tz)
        assert r.status_code == 200, r.text
        header, _accounts, docs = read_1c(r.content)
        created = dt.datetime.strptime(
            f"{header['ДатаСоздания']} {header['ВремяСоздания']}", "%d.%m.%Y %H:%M:%S"
        )
        assert within(created.replace(tzinfo=tz), before, after), (created, before)
        assert {d["Дата"] for d in docs} == {header["ДатаСоздания"]} == {header["ДатаНачала"]}

        before = dt.datetime.now(tz)
        r = await env.http.post(
            "/api/v1/admin/payment-orders/export", json={"ids": ids, "format": "pain001"}, headers=env.admin
        )
        after = dt.datetime.now(tz)
        assert r.status_code == 200, r.text
        pain001_schema().validate(r.content)
        doc = pain001_schema().to_dict(r.content)["CstmrCdtTrfInitn"]
        stamp = dt.datetime.fromisoformat(doc["GrpHdr"]["CreDtTm"])
        assert stamp.utcoffset() == before.utcoffset() and within(stamp, before, after)
        assert doc["PmtInf"][0]["ReqdExctnDt"] in {before.date().isoformat(), after.date().isoformat()}


def test_business_timezone_setting() -> None:
    assert Settings().business_timezone == "UTC"
    assert Settings(business_timezone="Europe/Moscow").business_tz == ZoneInfo("Europe/Moscow")
    with pytest.raises(ValueError, match="unknown time zone 'Moscow'"):
        Settings(business_timezone="Moscow")


async def test_statement_paid_times_in_the_business_timezone(db_url: str) -> None:
    import io

    import openpyxl

    from paymux.settlement import orders as order_service

    async with settle_env(db_url, catalog(p2="Europe/Moscow"), business_timezone="Asia/Vladivostok") as env:
        (order,) = await _orders(env)
        paid = at("2026-03-05T22:30:00+00:00")  # 6 March, 08:30 in Vladivostok
        async with env.hub.sessions() as s:
            await order_service.mark_paid(s, env.hub.accounts, order.id, "user:bank", at=paid)
            await s.commit()
        r = await env.http.get(
            "/api/v1/admin/providers/p2/statement",
            params={"start": "2026-03-01", "end": "2026-03-02", "format": "xlsx"},
            headers=env.admin,
        )
        assert r.status_code == 200
        rows = list(openpyxl.load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
        header = next(row for row in rows if row and row[0] == "Number")
        assert header[6] == "Paid at (Asia/Vladivostok)"
        line: Any = rows[rows.index(header) + 1]
        assert line[6] == paid.astimezone(ZoneInfo("Asia/Vladivostok")).replace(tzinfo=None)
