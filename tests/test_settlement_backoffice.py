"""The Balances and Settlement back-office sections, used like a browser: charts, forms, maker-checker,
exports and statement upload, each change in the audit log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from chart_support import charts, no_outside_references
from paymux.audit.models import AuditEvent
from paymux.catalog.file import apply_catalog
from paymux.settlement.models import BalanceAlertRule, PaymentOrder
from paymux.settlement.statements.onec import read as read_1c
from test_backoffice_support import bo_app, flash_of, follow, form_token, login, post_form
from test_settlement_statements import OUR_ACCOUNT, onec_statement
from test_settlement_support import P2_ACCOUNT, P2_INN, SEnv, catalog


async def test_balances_pages_alert_form_and_topup(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            await apply_catalog(s, catalog(p1="Europe/Moscow"), actor="test")
            await s.commit()
        bo.hub.catalog_changed()
        env = SEnv(bo.hub, bo.app, bo.http, "")
        await env.pay("p1", 25_000, dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
        await bo.user("fin", "financial_specialist")
        await bo.user("acc", "accountant")
        assert (await login(bo.http, "fin")).status_code == 303
        page = await bo.http.get("/backoffice/balances")
        assert page.status_code == 200 and "p1" in page.text and "-250.00" in page.text
        page = await bo.http.get("/backoffice/balances/p1?currency=RUB&granularity=hour")
        assert page.status_code == 200 and len(charts(page.text)) == 2
        assert no_outside_references(page.text)

        r = await post_form(
            bo.http,
            "/backoffice/balances/p1",
            "/backoffice/balances/p1/alerts",
            {"currency": "RUB", "threshold": "100.00", "emails": "cfo@example.com", "enabled": "on"},
        )
        assert r.status_code == 303 and 'id="flash-error"' not in (await follow(bo.http, r)).text
        r = await post_form(
            bo.http,
            "/backoffice/balances/p1",
            "/backoffice/balances/p1/topup",
            {"currency": "RUB", "amount": "1000.00", "reference": "BANK-42"},
        )
        assert r.status_code == 303 and 'id="flash-error"' not in (await follow(bo.http, r)).text
        r = await post_form(
            bo.http,
            "/backoffice/balances/p1",
            "/backoffice/balances/p1/topup",
            {"currency": "RUB", "amount": "12.345", "reference": "BANK-43"},
        )
        assert r.status_code == 303 and flash_of(
            (await follow(bo.http, r)).text
        )  # bad amount: a readable message
        assert await env.balance("provider_deposit", "p1") == 75_000
        async with bo.hub.read_sessions() as s:
            rule = await s.scalar(select(BalanceAlertRule))
            assert rule is not None and rule.threshold == 10_000 and rule.emails == ["cfo@example.com"]
            actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all()
        assert "balance_alert_rule.put" in actions and "provider.topup" in actions

        async with bo.client() as acc:  # an accountant sees balances but may not set alerts
            await login(acc, "acc")
            page = await acc.get("/backoffice/balances/p1")
            assert page.status_code == 200 and "/alerts" not in page.text
            r = await acc.post("/backoffice/balances/p1/alerts", data={"csrf_token": form_token(page.text)})
            assert r.status_code == 403

        await bo.user("fin_ru", "financial_specialist", language="ru")
        async with bo.client() as ru:  # the charts' titles and legends are in the user's language
            await login(ru, "fin_ru")
            page = await ru.get("/backoffice/balances/p1")
            history, backtest = charts(page.text)
            assert history.title == "Баланс, RUB" and history.legend == ["Остаток на конец"]
            assert backtest.title == "Прогноз и фактический расход, RUB"
            assert backtest.legend == ["Прогноз", "Факт"]
            assert "750,00" in page.text and "750.00" not in page.text  # amounts in the user's locale


async def test_settlement_pages_orders_maker_checker_export_and_statement(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_ACCOUNT", OUR_ACCOUNT)
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_NAME", "ООО Пэймакс")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_INN", "7700000001")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_BIK", "044525225")
    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            await apply_catalog(s, catalog(p2="Europe/Moscow"), actor="test")
            await s.commit()
        bo.hub.catalog_changed()
        env = SEnv(bo.hub, bo.app, bo.http, "")
        yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        await env.pay("p2", 100_000, yesterday.replace(hour=9), remuneration=2_000)
        await bo.user("fin", "financial_specialist")
        await bo.user("cfo", "cfo")
        await bo.user("acc", "accountant")
        await login(bo.http, "fin")
        r = await post_form(
            bo.http,
            "/backoffice/settlement/providers/p2",
            "/backoffice/settlement/providers/p2/details",
            {
                "beneficiary": "ООО Провайдер",
                "account": P2_ACCOUNT,
                "bik": "044525225",
                "inn": P2_INN,
                "withhold_remuneration": "on",
            },
        )
        assert r.status_code == 403  # a financial specialist may not change bank details
        page = await bo.http.get("/backoffice/settlement/providers/p2")
        assert page.status_code == 200 and "980.00" in page.text  # 1000.00 less 2% withheld
        async with bo.client() as acc:
            await login(acc, "acc")
            r = await post_form(
                acc,
                "/backoffice/settlement/providers/p2",
                "/backoffice/settlement/providers/p2/details",
                {
                    "beneficiary": "ООО Провайдер",
                    "account": P2_ACCOUNT,
                    "bik": "044525225",
                    "inn": P2_INN,
                    "withhold_remuneration": "on",
                },
            )
            assert r.status_code == 303 and 'id="flash-error"' not in (await follow(acc, r)).text
            r = await post_form(
                acc,
                "/backoffice/settlement/providers/p2",
                "/backoffice/settlement/providers/p2/details",
                {"iban": "DE00123"},
            )
            assert 'id="flash-error"' in (await follow(acc, r)).text

        r = await post_form(bo.http, "/backoffice/settlement", "/backoffice/settlement/orders", {})
        assert r.status_code == 303 and r.headers["location"].startswith("/backoffice/settlement/orders")
        async with bo.hub.read_sessions() as s:
            (order,) = (await s.scalars(select(PaymentOrder))).all()
        assert order.amount == 98_000 and order.created_by == "user:fin"
        page = await bo.http.get(f"/backoffice/settlement/orders/{order.id}")
        assert "/approve" not in page.text  # no approve button for the maker

        async with bo.client() as cfo:
            await login(cfo, "cfo")
            r = await post_form(
                cfo,
                f"/backoffice/settlement/orders/{order.id}",
                f"/backoffice/settlement/orders/{order.id}/approve",
                {},
            )
            assert r.status_code == 303 and 'id="flash-error"' not in (await follow(cfo, r)).text

        async with bo.client() as acc:
            await login(acc, "acc")
            r = await post_form(
                acc,
                "/backoffice/settlement/orders",
                "/backoffice/settlement/orders/export",
                {"ids": str(order.id), "format": "1c"},
            )
            assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
            (doc,) = read_1c(r.content)[2]
            assert (
                doc["Сумма"] == "980.00" and doc["ПолучательСчет"] == P2_ACCOUNT
            )  # details as saved before the order
            page = await acc.get("/backoffice/settlement/statements")
            statement = onec_statement(
                [{"number": str(order.id), "amount": "980.00", "payee": P2_ACCOUNT, "inn": P2_INN}]
            )
            r = await acc.post(
                "/backoffice/settlement/statements",
                data={"csrf_token": form_token(page.text)},
                files={"file": ("kl_to_1c.txt", statement, "text/plain")},
            )
            assert r.status_code == 303 and r.headers["location"].startswith(
                "/backoffice/settlement/statements/"
            )
            page = await acc.get(r.headers["location"])
            assert page.status_code == 200 and f"/backoffice/settlement/orders/{order.id}" in page.text
            page = await acc.get("/backoffice/settlement/providers/p2/statement.xlsx")
            assert page.status_code == 200 and page.content[:2] == b"PK"
        async with bo.hub.read_sessions() as s:
            done = await s.get(PaymentOrder, order.id)
            assert done is not None and done.status == "paid" and done.paid_by == "statement"
            actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all()
        for a in (
            "payment_order.create",
            "settlement_details.put",
            "payment_order.approve",
            "payment_order.export",
            "bank_statement.import",
        ):
            assert a in actions, a
