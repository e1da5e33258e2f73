"""Deposits of prepaid providers: balances and history from real ledger postings; the forecast."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from harness import hub_env
from paymux.ledger.service import SYSTEM, AccountKey, Line, post_entry
from paymux.money import format_amount, parse_amount
from paymux.payments.models import Payment
from paymux.settlement.balances import history
from paymux.settlement.forecast import backtest, forecast
from test_settlement_support import SEnv, at, catalog, settle_env

MSK = ZoneInfo("Europe/Moscow")


async def _topup(env: SEnv, provider: str, amount: int, when: dt.datetime) -> None:
    pid = await env.provider_id(provider)
    async with env.hub.sessions() as s:
        await post_entry(
            s,
            env.hub.accounts,
            "topup",
            [
                Line(AccountKey("provider_deposit", pid, "RUB"), amount),
                Line(AccountKey("bank", SYSTEM, "RUB"), -amount),
            ],
            at=when,
        )
        await s.commit()


async def _movements(env: SEnv) -> None:
    await _topup(env, "p1", 100_000, at("2026-03-01T08:00:00+00:00"))  # 11:00 MSK, 1 March
    await env.pay("p1", 20_000, at("2026-03-01T10:15:00+00:00"))  # 13:15 MSK
    await env.pay("p1", 5_000, at("2026-03-01T21:30:00+00:00"))  # 00:30 MSK, 2 March
    await env.pay("p1", 7_000, at("2026-03-02T05:00:00+00:00"), status="failed")  # debited and given back
    await _topup(env, "p1", 50_000, at("2026-03-02T12:00:00+00:00"))


async def test_daily_history_in_provider_timezone_from_postings(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        await _movements(env)
        r = await env.http.get(
            "/api/v1/admin/providers/p1/deposit-history",
            params={"granularity": "day", "start": "2026-03-01", "end": "2026-03-02"},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["timezone"] == "Europe/Moscow"
        days = [
            (p["start"][:10], p["opening"], p["inflow"], p["outflow"], p["closing"]) for p in body["points"]
        ]
        # days start at 21:00 UTC the evening before (Moscow is UTC+3)
        assert days == [
            ("2026-02-28", "0.00", "1000.00", "200.00", "800.00"),
            ("2026-03-01", "800.00", "570.00", "120.00", "1250.00"),
        ]
        assert await env.balance("provider_deposit", "p1") == 125_000

        # the same postings by UTC days: the 21:30 UTC payment stays on 1 March
        pid = await env.provider_id("p1")
        async with env.hub.read_sessions() as s:
            utc = await history(
                s,
                pid,
                "RUB",
                at("2026-03-01T00:00:00+00:00"),
                at("2026-03-03T00:00:00+00:00"),
                "day",
                ZoneInfo("UTC"),
            )
        assert [(p.closing, p.outflow) for p in utc] == [(75_000, 25_000), (125_000, 7_000)]


async def test_hourly_history(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        await _movements(env)
        r = await env.http.get(
            "/api/v1/admin/providers/p1/deposit-history",
            params={"granularity": "hour", "start": "2026-03-01", "end": "2026-03-01"},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        points = r.json()["points"]
        assert len(points) == 24
        by_hour = {dt.datetime.fromisoformat(p["start"]).astimezone(MSK).hour: p for p in points}
        assert by_hour[11]["inflow"] == "1000.00" and by_hour[11]["closing"] == "1000.00"
        assert by_hour[13]["outflow"] == "200.00" and by_hour[13]["closing"] == "800.00"
        assert by_hour[10]["closing"] == "0.00"
        assert points[-1]["closing"] == "800.00"


async def test_deposits_list_and_problems(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        await _movements(env)
        r = await env.http.put(
            "/api/v1/admin/providers/p1/balance-alert-rules/RUB",
            json={"threshold": "2000.00", "emails": ["cfo@example.com"]},
            headers=env.admin,
        )
        assert r.status_code == 200, r.text
        r = await env.http.get("/api/v1/admin/deposits", headers=env.admin)
        assert r.status_code == 200
        (dep,) = [d for d in r.json() if d["provider"] == "p1"]
        assert dep == {
            "provider": "p1",
            "name": "Provider one",
            "currency": "RUB",
            "balance": "1250.00",
            "overdraft": "0.00",
            "available": "1250.00",
            "threshold": "2000.00",
            "low": True,
        }
        r = await env.http.get("/api/v1/admin/providers/p2/deposit-history", headers=env.admin)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/not-prepaid")
        r = await env.http.get("/api/v1/admin/providers/nope/forecast", headers=env.admin)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_balances_follow_real_payments_through_the_hub(db_url: str) -> None:
    async with hub_env(db_url) as env:
        for _ in range(3):
            r = await env.pay()
            assert r.status_code in (200, 201, 202), r.text
            assert (await env.wait_final(r.json()["id"]))["status"] == "succeeded"
        r = await env.http.get("/api/v1/admin/deposits", headers=env.admin)
        (dep,) = [d for d in r.json() if d["provider"] == "p1"]
        assert dep["balance"] == "99700.00"
        r = await env.http.get(
            "/api/v1/admin/providers/p1/deposit-history", params={"granularity": "day"}, headers=env.admin
        )
        today = r.json()["points"][-1]
        assert (today["inflow"], today["outflow"], today["closing"]) == ("100000.00", "300.00", "99700.00")


# --- forecast ----------------------------------------------------------------------------------------


async def _weekly_pattern(env: SEnv, until: dt.datetime, weeks: int = 4) -> None:
    """Every local hour h of the ``weeks`` weeks before ``until``: a payment of (h + 1) * 100.00 at h:10."""
    snap = await env.hub.catalog.get()
    p1, term, svc = snap.providers_by_code["p1"], snap.channels_by_code["term"], snap.services["topup"]
    rows = []
    t = until - dt.timedelta(weeks=weeks)
    n = 0
    while t < until:
        local = t.astimezone(MSK)
        for status in ("succeeded", "failed"):  # failed ones do not count
            n += 1
            final = t + dt.timedelta(minutes=10)
            rows.append(
                dict(
                    channel_id=term.id,
                    external_id=f"w{n}",
                    request_hash="x",
                    service_id=svc.id,
                    account="9001234567",
                    currency="RUB",
                    amount=(local.hour + 1) * 10_000,
                    fee=0,
                    total=(local.hour + 1) * 10_000,
                    remuneration=0,
                    commission=0,
                    status=status,
                    provider_id=p1.id,
                    provider_service_code="T",
                    expires_at=final,
                    created_at=final,
                    updated_at=final,
                    final_at=final,
                    fields={},
                    tried_provider_ids=[],
                    route_reason="",
                    attempts=1,
                    failovers=0,
                    in_doubt=False,
                    needs_attention=False,
                )
            )
        t += dt.timedelta(hours=1)
    async with env.hub.sessions() as s:
        await s.execute(insert(Payment), rows)
        await s.commit()


async def test_forecast_from_hour_of_week_profile(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        as_of = dt.datetime(2026, 3, 30, tzinfo=MSK)  # a Monday, 00:00 Moscow
        await _weekly_pattern(env, as_of)
        pid = await env.provider_id("p1")
        async with env.hub.read_sessions() as s:
            f = await forecast(s, pid, "RUB", 1_000_000, MSK, as_of=as_of, days=1, weeks=4)
            f7 = await forecast(s, pid, "RUB", 1_000_000, MSK, as_of=as_of, days=7, weeks=4)
        assert f.profile[:24] == [(h + 1) * 10_000 for h in range(24)]
        assert f.profile[24 * 6 + 5] == 60_000  # Sunday 05:00
        # one day needs 100.00 * (1 + ... + 24) = 30000.00; 10000.00 is there
        assert f.need == 3_000_000 and f.top_up == 2_000_000
        assert f7.need == 21_000_000 and f7.top_up == 20_000_000
        # after 13 hours 9100.00 is spent; the 900.00 left lasts 900/1400 of 13:00-14:00 (2314 s)
        assert f.runs_out_at == as_of + dt.timedelta(hours=13, seconds=2314)
        assert f.hours_left == 13

        async with env.hub.read_sessions() as s:
            rich = await forecast(s, pid, "RUB", 30_000_000, MSK, as_of=as_of, days=7, weeks=4)
        assert rich.top_up == 0 and rich.runs_out_at is not None  # lasts 10 days: within the horizon
        assert rich.runs_out_at.astimezone(MSK).date() == dt.date(2026, 4, 9)


async def test_forecast_against_what_happened(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        start = dt.datetime(2026, 3, 2, tzinfo=MSK)
        await _weekly_pattern(env, start + dt.timedelta(weeks=5), weeks=5)
        await env.pay("p1", 1_234_500, dt.datetime(2026, 4, 1, 15, 0, tzinfo=MSK))  # an unusual day
        pid = await env.provider_id("p1")
        async with env.hub.read_sessions() as s:
            rows = await backtest(
                s, pid, "RUB", MSK, first=dt.date(2026, 3, 30), last=dt.date(2026, 4, 2), weeks=4
            )
        assert [(r.day.isoformat(), r.forecast, r.actual) for r in rows] == [
            ("2026-03-30", 3_000_000, 3_000_000),
            ("2026-03-31", 3_000_000, 3_000_000),
            ("2026-04-01", 3_000_000, 4_234_500),
            ("2026-04-02", 3_000_000, 3_000_000),
        ]
        r = await env.http.get(
            "/api/v1/admin/providers/p1/forecast", params={"days": 3, "backtest_days": 5}, headers=env.admin
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["backtest"]) == 5 and body["available"] == "-12345.00"
        # the deposit is below zero: it has run out now, and the top-up covers the hole plus the need
        assert body["hours_left"] == 0 and body["runs_out_at"] == body["as_of"]
        need = parse_amount(body["expected_outflow"], "RUB", allow_zero=True)
        assert body["top_up"] == format_amount(need + 1_234_500, "RUB")
