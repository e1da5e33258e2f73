"""Reports: turnover by any grouping, per local day or month in each provider's timezone or one given
timezone, totals per currency, the period comparison, the admin API and its Excel export."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from paymux.payments.models import Payment
from paymux.rates.service import add_rate
from paymux.reports.comparison import Period, compare, earlier_periods, percent_change
from paymux.reports.params import build_query
from paymux.reports.turnover import PROVIDER_TZ, ReportError, TurnoverQuery, turnover
from test_backoffice_support import add_user
from test_settlement_support import SEnv, at, catalog, settle_env

ZONES = {"p1": "Europe/Moscow", "p2": "UTC", "p3": "Asia/Kolkata"}  # +3, 0, +5:30


async def add(
    env: SEnv,
    provider: str,
    amount: int,
    when: dt.datetime,
    *,
    channel: str = "term",
    currency: str = "RUB",
    status: str = "succeeded",
    fee: int = 0,
    remuneration: int = 0,
    commission: int = 0,
) -> None:
    """A final payment row as the hub stores it (reports read payments only, not the ledger)."""
    snap = await env.hub.catalog.get()
    env.counter += 1
    async with env.hub.sessions() as s:
        s.add(
            Payment(
                channel_id=snap.channels_by_code[channel].id,
                external_id=f"r-{env.counter}",
                request_hash=hashlib.sha256(str(env.counter).encode()).hexdigest(),
                service_id=snap.services["topup"].id,
                account="9001234567",
                currency=currency,
                amount=amount,
                fee=fee,
                total=amount + fee,
                remuneration=remuneration,
                commission=commission,
                status=status,
                provider_id=snap.providers_by_code[provider].id,
                provider_service_code="T",
                expires_at=when + dt.timedelta(days=1),
                created_at=when - dt.timedelta(minutes=5),
                updated_at=when,
                final_at=when,
            )
        )
        await s.commit()


def q(first: str, last: str, **kw: Any) -> TurnoverQuery:
    return TurnoverQuery(dt.date.fromisoformat(first), dt.date.fromisoformat(last), **kw)


def table(report: Any, *measures: str) -> list[tuple[Any, ...]]:
    return [(*r.keys, r.period, r.currency, *(r.measure(m) for m in measures)) for r in report.rows]


async def test_days_in_each_providers_timezone_or_one_timezone(db_url: str) -> None:
    async with settle_env(db_url, catalog(**ZONES)) as env:
        # 22:30 UTC on 1 March is 2 March 01:30 in Moscow; 18:45 UTC is 2 March 00:15 in Kolkata
        await add(env, "p1", 100_00, at("2026-03-01T22:30:00+00:00"), fee=1_00, remuneration=1_00)
        await add(env, "p2", 50_00, at("2026-03-01T22:30:00+00:00"), remuneration=1_00)
        await add(env, "p3", 10_00, at("2026-03-01T18:45:00+00:00"), remuneration=30)
        await add(env, "p3", 20_00, at("2026-03-01T18:15:00+00:00"), remuneration=60)
        await add(env, "p3", 99_00, at("2026-03-01T18:20:00+00:00"), status="failed")  # not turnover
        await add(env, "p1", 7_00, at("2026-03-02T21:30:00+00:00"))  # 3 March in Moscow: outside
        async with env.hub.read_sessions() as s:
            by_provider = await turnover(
                s, q("2026-03-01", "2026-03-02", group_by=("provider",), grain="day")
            )
            assert by_provider.query.timezone == "UTC"
            assert table(by_provider, "payments", "amount", "remuneration") == [
                ("p1", "2026-03-01", "RUB", 1, 100_00, 1_00),
                ("p2", "2026-03-01", "RUB", 1, 50_00, 1_00),
                ("p3", "2026-03-01", "RUB", 2, 30_00, 90),
                ("p1", "2026-03-02", "RUB", 1, 7_00, 0),
            ]
            local = await turnover(
                s, q("2026-03-01", "2026-03-02", group_by=("provider",), grain="day", timezone=PROVIDER_TZ)
            )
            assert table(local, "payments", "amount", "fee", "total") == [
                ("p2", "2026-03-01", "RUB", 1, 50_00, 0, 50_00),
                ("p3", "2026-03-01", "RUB", 1, 20_00, 0, 20_00),
                ("p1", "2026-03-02", "RUB", 1, 100_00, 1_00, 101_00),
                ("p3", "2026-03-02", "RUB", 1, 10_00, 0, 10_00),
            ]
            assert [(t.currency, t.payments, t.amount, t.remuneration) for t in local.totals] == [
                ("RUB", 4, 180_00, 2_90)
            ]
            month = await turnover(s, q("2026-03-01", "2026-03-31", grain="month", timezone="Europe/Moscow"))
            assert table(month, "payments", "amount") == [("2026-03", "RUB", 5, 187_00)]


async def test_grouping_by_channel_group_agent_and_currencies_apart(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        day = at("2026-04-10T10:00:00+00:00")
        await add(env, "p1", 10_00, day, channel="term", commission=5)
        await add(env, "p1", 20_00, day, channel="term", commission=10)
        await add(env, "p2", 40_00, day, channel="web")
        await add(env, "p2", 3_00, day, channel="web", currency="EUR")
        async with env.hub.read_sessions() as s:
            r = await turnover(s, q("2026-04-10", "2026-04-10", group_by=("channel_group", "agent")))
            # the web channel has no agent: its cell is empty; EUR is never added to RUB
            assert table(r, "payments", "amount", "commission") == [
                ("online", "", "", "EUR", 1, 3_00, 0),
                ("online", "", "", "RUB", 1, 40_00, 0),
                ("self", "dealer", "", "RUB", 2, 30_00, 15),
            ]
            assert [(t.currency, t.amount) for t in r.totals] == [("EUR", 3_00), ("RUB", 70_00)]
            only_web = await turnover(
                s, q("2026-04-10", "2026-04-10", group_by=("service",), filters={"channel": "web"})
            )
            assert table(only_web, "amount") == [("topup", "", "EUR", 3_00), ("topup", "", "RUB", 40_00)]
            snap = await env.hub.catalog.get()
            term = frozenset({snap.channels_by_code["term"].id})
            scoped = await turnover(s, q("2026-04-10", "2026-04-10", channels=term))
            assert table(scoped, "payments", "amount") == [("", "RUB", 2, 30_00)]
            nothing = await turnover(s, q("2026-04-11", "2026-04-30", group_by=("provider",)))
            assert nothing.rows == [] and nothing.totals == []


async def test_random_payments_match_a_count_by_hand(db_url: str) -> None:
    """Several hundred payments at random instants: every day-grain report equals a count by hand in
    Python, for each provider's timezone and for a fixed one, and the days add up to the period."""
    rnd = random.Random(20261206)
    zones = {
        "p1": "America/St_Johns",
        "p2": "Asia/Kathmandu",
        "p3": "Pacific/Chatham",
    }  # -3:30, +5:45, +13:45
    start = dt.datetime(2026, 3, 25, tzinfo=dt.UTC)  # across the March clock changes
    made: list[tuple[str, str, int, dt.datetime]] = []
    async with settle_env(db_url, catalog(**zones)) as env:
        for _ in range(300):
            provider = rnd.choice(["p1", "p2", "p3"])
            currency = rnd.choice(["RUB", "RUB", "EUR"])
            amount = rnd.randint(1, 500_000)
            when = start + dt.timedelta(seconds=rnd.randint(0, 12 * 86400))
            await add(env, provider, amount, when, currency=currency)
            made.append((provider, currency, amount, when))
        first, last = dt.date(2026, 3, 27), dt.date(2026, 4, 3)
        for tz in (PROVIDER_TZ, "Europe/Chisinau"):
            expected: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
            for provider, currency, amount, when in made:
                day = when.astimezone(ZoneInfo(zones[provider] if tz == PROVIDER_TZ else tz)).date()
                if first <= day <= last:
                    cell = expected[(provider, day.isoformat(), currency)]
                    cell[0] += 1
                    cell[1] += amount
            async with env.hub.read_sessions() as s:
                days = await turnover(s, TurnoverQuery(first, last, ("provider",), "day", tz))
                whole = await turnover(s, TurnoverQuery(first, last, (), "", tz))
            got = {(r.keys[0], r.period, r.currency): [r.payments, r.amount] for r in days.rows}
            assert got == dict(expected)
            by_currency = defaultdict(int)
            for (_, _, currency), (_, amount) in expected.items():
                by_currency[currency] += amount
            assert [(t.currency, t.amount) for t in whole.totals] == sorted(by_currency.items())
            assert [(t.currency, t.amount) for t in days.totals] == sorted(by_currency.items())


def test_earlier_periods_are_whole_months_or_the_same_number_of_days() -> None:
    d = dt.date.fromisoformat
    assert earlier_periods(d("2026-03-01"), d("2026-03-31"), 2) == [
        Period(d("2026-03-01"), d("2026-03-31")),
        Period(d("2026-02-01"), d("2026-02-28")),
        Period(d("2026-01-01"), d("2026-01-31")),
    ]
    assert earlier_periods(d("2026-01-01"), d("2026-02-28"), 1)[1] == Period(d("2025-11-01"), d("2025-12-31"))
    assert earlier_periods(d("2026-03-10"), d("2026-03-16"), 2)[1:] == [
        Period(d("2026-03-03"), d("2026-03-09")),
        Period(d("2026-02-24"), d("2026-03-02")),
    ]
    assert percent_change(150, Decimal(100)) == Decimal("50.0")
    assert percent_change(1, Decimal(3)) == Decimal("-66.7")
    assert percent_change(5, Decimal(0)) is None


async def test_comparison_with_earlier_periods(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        for month, amounts in ((1, [100_00]), (2, [50_00, 50_00, 100_00]), (3, [300_00])):
            for a in amounts:
                await add(env, "p1", a, at(f"2026-{month:02d}-15T12:00:00+00:00"))
        await add(env, "p2", 10_00, at("2026-03-15T12:00:00+00:00"))
        async with env.hub.read_sessions() as s:
            c = await compare(
                s, q("2026-03-01", "2026-03-31", group_by=("provider",)), earlier=2, measure="amount"
            )
            rows = [(r.keys, r.values, r.vs_previous, r.vs_mean) for r in c.rows]
            # p1: 300 now, 200 in February, 100 in January (mean 150); p2 had nothing before
            assert rows == [
                (("p1",), [300_00, 200_00, 100_00], Decimal("50.0"), Decimal("100.0")),
                (("p2",), [10_00, 0, 0], None, None),
            ]
            assert c.totals[0].values == [310_00, 200_00, 100_00]
            count = await compare(s, q("2026-03-01", "2026-03-31"), earlier=1, measure="payments")
            assert [(r.values, r.vs_previous) for r in count.rows] == [([2, 3], Decimal("-33.3"))]
            with pytest.raises(ReportError, match="grain"):
                await compare(s, q("2026-03-01", "2026-03-31", grain="day"), earlier=1, measure="amount")
            with pytest.raises(ReportError, match="measure"):
                await compare(s, q("2026-03-01", "2026-03-31"), earlier=1, measure="weight")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"first": "2026-03-05", "last": "2026-03-01"}, "starts after it ends"),
        ({"first": "2025-01-01", "last": "2026-03-01"}, "at most 400 days"),
        ({"first": "1 March"}, "must be a date"),
        ({"group_by": ["provider,colour"]}, "unknown dimension 'colour'"),
        ({"group_by": ["service", "service"]}, "grouped by twice"),
        ({"grain": "week"}, "unknown grain"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"channels": frozenset({1}), "group_by": ["provider"]}, "agent users cannot"),
    ],
)
def test_parameters_that_cannot_be_answered(change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "first": "",
        "last": "",
        "today": dt.date(2026, 3, 31),
        "group_by": [],
        "grain": "",
        "timezone": "UTC",
        "filters": {},
        "channels": None,
    }
    with pytest.raises(ReportError, match=message):
        build_query(**{**args, **change})
    defaults = build_query(**args)
    assert (defaults.first, defaults.last) == (dt.date(2026, 3, 2), dt.date(2026, 3, 31))


async def test_admin_api_json_excel_and_problems(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        await add(env, "p1", 1234_56, at("2026-05-01T22:00:00+00:00"), fee=12_35, remuneration=12_35)
        await add(env, "p2", 10_00, at("2026-05-01T10:00:00+00:00"), channel="web")
        await add(env, "p2", 7_50, at("2026-05-01T10:00:00+00:00"), currency="EUR", channel="web")
        params = {"first": "2026-05-01", "last": "2026-05-02", "group_by": "provider", "grain": "day"}
        r = await env.http.get("/api/v1/admin/reports/turnover", params=params, headers=env.admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["timezone"] == "provider"  # each provider's own timezone unless told
        assert body["rows"] == [
            {"provider": "p2", "period": "2026-05-01", "currency": "EUR", "payments": 1, "amount": "7.50",
             "fee": "0.00", "total": "7.50", "remuneration": "0.00", "commission": "0.00"},
            {"provider": "p2", "period": "2026-05-01", "currency": "RUB", "payments": 1, "amount": "10.00",
             "fee": "0.00", "total": "10.00", "remuneration": "0.00", "commission": "0.00"},
            {"provider": "p1", "period": "2026-05-02", "currency": "RUB", "payments": 1, "amount": "1234.56",
             "fee": "12.35", "total": "1246.91", "remuneration": "12.35", "commission": "0.00"},
        ]  # fmt: skip
        assert [(t["currency"], t["amount"]) for t in body["totals"]] == [("EUR", "7.50"), ("RUB", "1244.56")]

        x = await env.http.get(
            "/api/v1/admin/reports/turnover", params={**params, "format": "xlsx"}, headers=env.admin
        )
        assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxml")
        ws = load_workbook(io.BytesIO(x.content)).active
        assert ws is not None
        # Excel keeps numbers as doubles: read back, their text is the exact amount
        rows = [
            tuple(Decimal(str(c.value)) if isinstance(c.value, float) else c.value for c in row)
            for row in ws.iter_rows(min_row=3)
        ]
        assert rows[0][:5] == ("Provider", "Period", "Currency", "Payments", "Amount")
        assert rows[3][:6] == ("p1", "2026-05-02", "RUB", 1, Decimal("1234.56"), Decimal("12.35"))
        assert ws.cell(6, 5).number_format == "#,##0.00"
        assert rows[-1][:5] == ("Total", None, "RUB", 2, Decimal("1244.56"))

        c = await env.http.get(
            "/api/v1/admin/reports/comparison",
            params={"first": "2026-05-01", "last": "2026-05-31", "earlier": 2, "timezone": "UTC"},
            headers=env.admin,
        )
        assert c.status_code == 200, c.text
        assert c.json()["periods"][1] == {"first": "2026-04-01", "last": "2026-04-30"}
        assert [(t["currency"], t["values"]) for t in c.json()["totals"]] == [
            ("EUR", ["7.50", "0.00", "0.00"]),
            ("RUB", ["1244.56", "0.00", "0.00"]),
        ]
        cx = await env.http.get(
            "/api/v1/admin/reports/comparison",
            params={"first": "2026-05-01", "last": "2026-05-31", "earlier": 2, "format": "xlsx"},
            headers=env.admin,
        )
        sheet = load_workbook(io.BytesIO(cx.content)).active
        assert sheet is not None
        lines = [[c.value for c in row] for row in sheet.iter_rows(min_row=4)]
        # one line per currency: without groups the rows are the totals, not written twice
        assert [(x[0], x[1]) for x in lines] == [("EUR", 7.5), ("RUB", 1244.56)]
        assert sheet.cell(4, 2).number_format == "#,##0.00"
        for bad, detail in (
            ({"group_by": "colour"}, "unknown dimension"),
            ({"first": "2026-13-01"}, "must be a date"),
            ({"timezone": "Nowhere/Else"}, "unknown timezone"),
        ):
            p = await env.http.get("/api/v1/admin/reports/turnover", params=bad, headers=env.admin)
            assert p.status_code == 422 and p.headers["content-type"] == "application/problem+json"
            assert detail in p.json()["detail"]
        m = await env.http.get("/api/v1/admin/reports/comparison", params={"measure": "x"}, headers=env.admin)
        assert m.status_code == 422 and "unknown measure" in m.json()["detail"]


async def test_totals_in_one_currency_at_the_rates_of_the_periods_end(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        await add(env, "p1", 1000_00, at("2026-05-10T10:00:00+00:00"), fee=10_00, remuneration=20_00)
        await add(env, "p2", 10_00, at("2026-05-10T10:00:00+00:00"), currency="EUR", fee=1, remuneration=5)
        await add(env, "p2", 1000, at("2026-05-10T10:00:00+00:00"), currency="JPY")
        async with env.hub.sessions() as s:
            await add_rate(s, "EUR", "RUB", "90", effective_from=at("2026-05-01T00:00:00+00:00"))
            await add_rate(s, "EUR", "RUB", "100.005", effective_from=at("2026-05-31T12:00:00+00:00"))
            await add_rate(s, "EUR", "RUB", "200", effective_from=at("2026-06-01T00:00:00+00:00"))  # after
            await s.commit()
        params = {"first": "2026-05-01", "last": "2026-05-31", "timezone": "UTC", "in_currency": "rub"}
        r = await env.http.get("/api/v1/admin/reports/turnover", params=params, headers=env.admin)
        assert r.status_code == 200, r.text
        c = r.json()["converted"]
        # 10.00 EUR at 100.005 = 1000.05 RUB; 0.01 EUR = 1.00005 RUB -> 1.00; JPY has no rate
        assert (c["currency"], c["rates"], c["missing"]) == ("RUB", {"EUR": "100.005"}, ["JPY"])
        assert (c["amount"], c["fee"], c["remuneration"]) == ("2000.05", "11.00", "25.00")
        assert c["rates_at"] == "2026-06-01T00:00:00+00:00"
        bad = await env.http.get(
            "/api/v1/admin/reports/turnover", params={**params, "in_currency": "ZZZ"}, headers=env.admin
        )
        assert bad.status_code == 422 and "unknown currency" in bad.json()["detail"]
        x = await env.http.get(
            "/api/v1/admin/reports/turnover", params={**params, "format": "xlsx"}, headers=env.admin
        )
        ws = load_workbook(io.BytesIO(x.content)).active
        assert ws is not None
        values = [[c.value for c in row] for row in ws.iter_rows()]
        assert ["Total in RUB"] in [v[:1] for v in values]
        converted_row = values[values.index(next(v for v in values if v[:1] == ["Total in RUB"])) + 1]
        assert converted_row[:3] == ["RUB", None, 2000.05]
        assert ["No rate for", "JPY"] in [v[:2] for v in values]


async def test_grouping_by_project_of_the_service_and_manager_of_the_channel_or_its_agent(
    db_url: str,
) -> None:
    async with settle_env(db_url, catalog()) as env:
        day = at("2026-04-10T10:00:00+00:00")
        await add(env, "p1", 10_00, day, channel="term")
        await add(env, "p2", 40_00, day, channel="web")
        staff = (await add_user(env.hub, "anna.m")).username
        # the catalog's admin API names the manager of an agent and the project of a service
        agents = (await env.http.get("/api/v1/admin/agents", headers=env.admin)).json()
        dealer = next(a for a in agents if a["code"] == "dealer")
        r = await env.http.put(
            "/api/v1/admin/agents/dealer", json=dealer | {"manager": "nobody"}, headers=env.admin
        )
        assert r.status_code == 422 and "no user named 'nobody'" in r.text, r.text
        r = await env.http.put(
            "/api/v1/admin/agents/dealer", json=dealer | {"manager": staff}, headers=env.admin
        )
        assert r.status_code == 200, r.text
        got = (await env.http.get("/api/v1/admin/agents", headers=env.admin)).json()
        assert next(a for a in got if a["code"] == "dealer")["manager"] == staff
        service = (await env.http.get("/api/v1/admin/services/topup", headers=env.admin)).json()
        r = await env.http.put(
            "/api/v1/admin/services/topup", json=service | {"project": "mobile"}, headers=env.admin
        )
        assert r.status_code == 200, r.text
        assert (await env.http.get("/api/v1/admin/services/topup", headers=env.admin)).json()[
            "project"
        ] == "mobile"
        async with env.hub.read_sessions() as s:
            r1 = await turnover(s, q("2026-04-10", "2026-04-10", group_by=("project", "manager")))
            # term's agent is managed by the staff user; web has neither agent nor manager
            assert table(r1, "payments", "amount") == [
                ("mobile", "", "", "RUB", 1, 40_00),
                ("mobile", staff, "", "RUB", 1, 10_00),
            ]
            only = await turnover(s, q("2026-04-10", "2026-04-10", filters={"manager": staff}))
            assert table(only, "payments", "amount") == [("", "RUB", 1, 10_00)]
            none = await turnover(s, q("2026-04-10", "2026-04-10", filters={"project": "other"}))
            assert none.rows == []
        # an agent's own users cannot see who manages whom
        with pytest.raises(ReportError, match="agent users cannot group or filter reports by manager"):
            build_query(
                first="",
                last="",
                today=dt.date(2026, 4, 10),
                group_by=["manager"],
                grain="",
                timezone="UTC",
                filters={},
                channels=frozenset({1}),
            )
        r = await env.http.get(
            "/api/v1/admin/reports/turnover",
            params={"first": "2026-04-10", "last": "2026-04-10", "group_by": "project", "manager": staff},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        assert [(row["project"], row["payments"]) for row in r.json()["rows"]] == [("mobile", 1)]
