"""Postpaid providers: debts per provider-timezone day, statements, payment orders (maker-checker), pain.001
validated against the official XSD, 1CClientBankExchange read back."""

from __future__ import annotations

import datetime as dt
import io
from importlib import resources

import openpyxl
import xmlschema
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.auth.principal import Principal
from paymux.ledger.service import verify_ledger
from paymux.settlement import orders as order_service
from paymux.settlement.models import PaymentOrder
from paymux.settlement.statements.onec import read as read_1c
from test_settlement_support import P2_ACCOUNT, P2_IBAN, P2_INN, SEnv, at, catalog, settle_env

PAIN_NS = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.03}"


def pain001_schema() -> xmlschema.XMLSchema:
    """The official ISO 20022 pain.001.001.03 XSD, as shipped by the installed sepaxml package."""
    xsd = resources.files("sepaxml").joinpath("schemas/pain.001.001.03.xsd")
    with resources.as_file(xsd) as path:
        return xmlschema.XMLSchema(str(path))


async def _debts(env: SEnv) -> None:
    """p2 (Moscow, 2% remuneration): payments on 1 and 2 March Moscow time."""
    await env.pay("p2", 100_000, at("2026-03-01T08:00:00+00:00"), remuneration=2_000)  # 11:00 MSK 1 March
    await env.pay("p2", 50_000, at("2026-03-01T20:59:00+00:00"), remuneration=1_000)  # 23:59 MSK 1 March
    await env.pay("p2", 30_000, at("2026-03-01T23:30:00+00:00"), remuneration=600)  # 02:30 MSK 2 March
    await env.pay("p2", 99_900, at("2026-03-01T12:00:00+00:00"), status="failed")  # not owed


async def test_debts_by_provider_day_with_remuneration_withheld(db_url: str) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        await _debts(env)
        r = await env.http.get(
            "/api/v1/admin/providers/p2/debts",
            params={"start": "2026-03-01", "end": "2026-03-02"},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["timezone"] == "Europe/Moscow" and body["withhold_remuneration"] is True
        days = body["currencies"]["RUB"]["days"]
        assert [(d["day"], d["payments"], d["amount"], d["withheld"], d["debt"]) for d in days] == [
            ("2026-03-01", 2, "1500.00", "30.00", "1470.00"),
            ("2026-03-02", 1, "300.00", "6.00", "294.00"),  # 23:30 UTC is already 2 March in Moscow
        ]
        assert body["currencies"]["RUB"]["total"]["debt"] == "1764.00"

        r = await env.http.put(
            "/api/v1/admin/providers/p2/settlement-details",
            json={"beneficiary": "Provider Two LLC", "withhold_remuneration": False},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        r = await env.http.get(
            "/api/v1/admin/providers/p2/debts",
            params={"start": "2026-03-01", "end": "2026-03-02"},
            headers=env.admin,
        )
        days = r.json()["currencies"]["RUB"]["days"]
        assert [(d["withheld"], d["debt"]) for d in days] == [("0.00", "1500.00"), ("0.00", "300.00")]

        r = await env.http.get(
            "/api/v1/admin/providers/p2/debts",
            params={"start": "2026-03-05", "end": "2026-03-01"},
            headers=env.admin,
        )
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_statement_xlsx(db_url: str) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        await _debts(env)
        r = await env.http.get(
            "/api/v1/admin/providers/p2/statement",
            params={"start": "2026-03-01", "end": "2026-03-03", "format": "xlsx"},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
        assert ws is not None
        rows = [tuple(c for c in row) for row in ws.iter_rows(values_only=True)]
        table = {
            (row[0].date() if isinstance(row[0], dt.datetime) else row[0]): row[1:6]
            for row in rows
            if row and row[0] is not None and (isinstance(row[0], dt.datetime) or row[0] == "Total")
        }
        assert table[dt.date(2026, 3, 1)] == (2, 1500, 30, 30, 1470)
        assert table[dt.date(2026, 3, 2)] == (1, 300, 6, 6, 294)
        assert table[dt.date(2026, 3, 3)] == (0, 0, 0, 0, 0)
        assert table["Total"] == (3, 1800, 36, 36, 1764)
        r = await env.http.get(
            "/api/v1/admin/providers/p2/statement",
            params={"start": "2026-03-01", "end": "2026-03-03"},
            headers=env.admin,
        )
        assert r.json()["currencies"]["RUB"]["total"]["debt"] == "1764.00"


def _admin(name: str) -> Principal:
    return Principal(kind="user", name=name, permissions=frozenset())


async def test_orders_from_debts_maker_checker_and_payment_posting(db_url: str) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        await _debts(env)
        await env.pay("p3", 70_000, at("2026-03-01T10:00:00+00:00"), remuneration=2_100)
        snap = await env.hub.catalog.get()
        now = at("2026-03-04T09:00:00+00:00")
        async with env.hub.sessions() as s:
            made = await order_service.create_orders(
                s, snap, actor="user:maker", through=dt.date(2026, 3, 2), now=now
            )
            await s.commit()
        assert [
            (
                snap.providers[o.provider_id].code,
                o.period_start.isoformat(),
                o.period_end.isoformat(),
                o.amount,
            )
            for o in made
        ] == [("p2", "2026-03-01", "2026-03-02", 176_400), ("p3", "2026-03-01", "2026-03-02", 67_900)]
        p2_order = made[0]
        assert (
            p2_order.gross == 180_000 and p2_order.remuneration == 3_600 and p2_order.number.startswith("PO-")
        )
        assert p2_order.number in p2_order.purpose

        async with env.hub.sessions() as s:  # a second click: the days are covered already
            assert await order_service.create_orders(s, snap, actor="user:maker", now=now) == []
            await s.commit()

        # the creator may not approve; another person may
        r = await env.http.post(f"/api/v1/admin/payment-orders/{p2_order.id}/mark-paid", headers=env.admin)
        assert r.status_code == 409 and r.json()["type"].endswith("/wrong-status")
        async with env.hub.sessions() as s:
            try:
                await order_service.approve(s, p2_order.id, "user:maker")
                raise AssertionError("the maker approved their own order")
            except Exception as e:
                assert getattr(e, "slug", "") == "same-person"
            await order_service.approve(s, p2_order.id, "user:checker")
            await s.commit()

        payable_before = await env.balance("provider_payable", "p2")
        assert payable_before == -180_000  # what we owe for the three succeeded payments
        assert await env.balance("provider_remuneration", "p2") == 3_600
        r = await env.http.post(f"/api/v1/admin/payment-orders/{p2_order.id}/mark-paid", headers=env.admin)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "paid" and r.json()["paid_by"] == "admin:test"
        assert await env.balance("provider_payable", "p2") == 0
        assert await env.balance("provider_remuneration", "p2") == 0
        assert await env.balance("bank", "") == -176_400
        r = await env.http.post(f"/api/v1/admin/payment-orders/{p2_order.id}/mark-paid", headers=env.admin)
        assert r.status_code == 409
        assert await env.entries("provider_payment") == 1
        async with env.hub.read_sessions() as s:
            assert (await verify_ledger(s)).balanced

        r = await env.http.post(f"/api/v1/admin/payment-orders/{made[1].id}/cancel", headers=env.admin)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        async with env.hub.sessions() as s:  # a cancelled order frees its days for a new one
            again = await order_service.create_orders(
                s, snap, actor="user:maker", provider_code="p3", through=dt.date(2026, 3, 2), now=now
            )
            await s.commit()
        assert [o.amount for o in again] == [67_900]


async def test_approval_through_the_api_needs_a_second_person(db_url: str) -> None:
    from paymux.auth.tokens import issue_token
    from paymux.auth.user_models import User
    from test_backoffice_support import bo_app

    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            from paymux.catalog.file import apply_catalog

            await apply_catalog(s, catalog(p2="Europe/Moscow"), actor="test")
            await s.commit()
        bo.hub.catalog_changed()
        env = SEnv(bo.hub, bo.app, bo.http, "")
        await env.pay("p2", 10_000, at("2026-03-01T08:00:00+00:00"), remuneration=200)
        tokens = {}
        for name, role in (("fin", "financial_specialist"), ("cfo", "cfo"), ("boss", "administrator")):
            u = await bo.user(name, role)
            async with bo.hub.sessions() as s:
                row = await s.get(User, u.id)
                assert row is not None
                tokens[name], _ = await issue_token(s, row, "t", None)
                await s.commit()

        def h(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        r = await bo.http.post("/api/v1/admin/payment-orders", json={"provider": "p2"}, headers=h("boss"))
        assert r.status_code == 201, r.text
        (order,) = r.json()
        assert order["created_by"] == "user:boss" and order["amount"] == "98.00"
        r = await bo.http.post(f"/api/v1/admin/payment-orders/{order['id']}/approve", headers=h("fin"))
        assert r.status_code == 403  # a financial specialist may not approve at all
        r = await bo.http.post(f"/api/v1/admin/payment-orders/{order['id']}/approve", headers=h("boss"))
        assert r.status_code == 409 and r.json()["type"].endswith("/same-person")
        r = await bo.http.post(f"/api/v1/admin/payment-orders/{order['id']}/approve", headers=h("cfo"))
        assert r.status_code == 200 and r.json()["approved_by"] == "user:cfo"
        r = await bo.http.post("/api/v1/admin/payment-orders", json={"provider": "p1"}, headers=h("fin"))
        assert r.status_code == 422 and r.json()["type"].endswith("/not-postpaid")
        async with bo.hub.read_sessions() as s:
            events = (
                await s.execute(select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.seq))
            ).all()
        actions = [(a, who.split(" ")[0]) for a, who in events if a.startswith("payment_order.")]
        assert actions == [("payment_order.create", "user:boss"), ("payment_order.approve", "user:cfo")]


async def _approved(env: SEnv) -> list[PaymentOrder]:
    snap = await env.hub.catalog.get()
    async with env.hub.sessions() as s:
        made = await order_service.create_orders(
            s, snap, actor="user:maker", through=dt.date(2026, 3, 2), now=at("2026-03-04T09:00:00+00:00")
        )
        for o in made:
            await order_service.approve(s, o.id, "user:checker")
        await s.commit()
        return list((await s.scalars(select(PaymentOrder).order_by(PaymentOrder.id))).all())


async def test_pain001_valid_against_the_official_xsd(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_NAME", "Paymux Operator SA")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_IBAN", "FR1420041010050500013M02606")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_BIC", "BNPAFRPP")
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        await _debts(env)
        await env.pay("p3", 70_000, at("2026-03-01T10:00:00+00:00"), remuneration=2_100)
        await env.details("p2", beneficiary="Provider Two GmbH", iban=P2_IBAN, bic="COBADEFFXXX")
        await env.details("p3", beneficiary="Provider Three", account=P2_ACCOUNT, bik="044525225")
        orders = await _approved(env)
        r = await env.http.post(
            "/api/v1/admin/payment-orders/export",
            json={"ids": [o.id for o in orders], "format": "pain001", "execution_date": "2026-03-05"},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"].startswith('attachment; filename="pain001-')
        schema = pain001_schema()
        schema.validate(r.content)  # raises if not valid
        doc = schema.to_dict(r.content)
        init = doc["CstmrCdtTrfInitn"]
        assert init["GrpHdr"]["NbOfTxs"] == "2" and str(init["GrpHdr"]["CtrlSum"]) == "2443.00"
        txs = init["PmtInf"][0]["CdtTrfTxInf"]
        assert [t["PmtId"]["EndToEndId"] for t in txs] == [o.number for o in orders]
        assert txs[0]["CdtrAcct"]["Id"]["IBAN"] == P2_IBAN and txs[0]["Cdtr"]["Nm"] == "Provider Two GmbH"
        assert txs[1]["CdtrAcct"]["Id"]["Othr"]["Id"] == P2_ACCOUNT
        assert init["PmtInf"][0]["DbtrAcct"]["Id"]["IBAN"] == "FR1420041010050500013M02606"
        async with env.hub.read_sessions() as s:
            assert all(o.exported_at is not None for o in (await s.scalars(select(PaymentOrder))).all())

        # only approved orders go to the bank
        async with env.hub.sessions() as s:
            o = await s.get(PaymentOrder, orders[0].id)
            assert o is not None
            o.status = "created"
            await s.commit()
        r = await env.http.post(
            "/api/v1/admin/payment-orders/export", json={"ids": [orders[0].id]}, headers=env.admin
        )
        assert r.status_code == 422 and r.json()["type"].endswith("/not-approved")


async def test_1c_export_read_back(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_NAME", "ООО Пэймакс")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_ACCOUNT", "40702810000000000777")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_INN", "7700000001")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_BIK", "044525225")
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        await _debts(env)
        await env.details(
            "p2",
            beneficiary="ООО Провайдер Два",
            account=P2_ACCOUNT,
            bik="044525225",
            inn=P2_INN,
            purpose="Оплата принятых платежей за",
        )
        (order,) = await _approved(env)
        r = await env.http.post(
            "/api/v1/admin/payment-orders/export", json={"ids": [order.id], "format": "1c"}, headers=env.admin
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; charset=windows-1251")
        assert b"\r\n" in r.content
        header, _accounts, docs = read_1c(r.content)
        assert header["ВерсияФормата"] == "1.03" and header["Кодировка"] == "Windows"
        assert header["РасчСчет"] == "40702810000000000777"
        (doc,) = docs
        assert doc["СекцияДокумент"] == "Платежное поручение"
        assert doc["Номер"] == str(order.id) and doc["Сумма"] == "1764.00"
        assert doc["ПолучательСчет"] == P2_ACCOUNT and doc["ПолучательИНН"] == P2_INN
        assert doc["Получатель1"] == "ООО Провайдер Два" and doc["Плательщик1"] == "ООО Пэймакс"
        assert (
            doc["НазначениеПлатежа"]
            == f"Оплата принятых платежей за 2026-03-01..2026-03-02, order {order.number}"
        )
        r = await env.http.post(
            "/api/v1/admin/payment-orders/export",
            json={"ids": [order.id], "format": "xml"},
            headers=env.admin,
        )
        assert r.status_code == 422
