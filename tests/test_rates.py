"""Exchange rates: exact parsing, exact conversion rounded once (properties against fractions), the
version in force, versions never changed, the admin API and the back-office page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.backoffice.settings import BackofficeSettings
from paymux.money import exponent
from paymux.rates.service import RateError, add_rate, convert, parse_rate, rate_at
from test_backoffice_support import Bo, flash_of, follow, login, post_form
from test_settlement_support import settle_env

UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1.5", "not a decimal"),
        ("1e3", "not a decimal"),
        ("98,45", "not a decimal"),
        ("1.12345678901", "more than 10 decimal places"),
        ("0.000", "greater than zero"),
        ("", "not a decimal"),
    ],
)
def test_rates_that_are_refused(text: str, message: str) -> None:
    with pytest.raises(RateError, match=message):
        parse_rate(text)


def test_conversion_examples() -> None:
    assert parse_rate(" 98.4512 ") == Decimal("98.4512")
    assert convert(100_00, "EUR", "RUB", Decimal("98.4512")) == 9845_12
    assert convert(1, "EUR", "RUB", Decimal("98.4512")) == 98  # 0.98 RUB for one cent
    assert convert(1000, "JPY", "EUR", Decimal("0.0061")) == 6_10  # no minor units in yen
    assert convert(9845_12, "RUB", "EUR", Decimal("98.4512"), divide=True) == 100_00
    # exactly half a kopeck: half up goes up, half even goes to the even one
    assert convert(1, "EUR", "RUB", Decimal("0.5")) == 1
    assert convert(1, "EUR", "RUB", Decimal("0.5"), "half_even") == 0
    assert convert(3, "EUR", "RUB", Decimal("0.5"), "half_even") == 2
    with pytest.raises(RateError, match="unknown rounding"):
        convert(1, "EUR", "RUB", Decimal("1"), "nearest")


def _exact(minor: int, frm: str, to: str, rate: Fraction, divide: bool) -> int:
    """Half-up rounding of the exact fraction (the reference)."""
    value = Fraction(minor) * Fraction(10) ** (exponent(to) - exponent(frm))
    value = value / rate if divide else value * rate
    return int((value + Fraction(1, 2)).__floor__())


rates = st.builds(
    lambda whole, frac, places: (
        Decimal(f"{whole}.{str(frac).zfill(places)[:places]}") if places else Decimal(whole)
    ),
    st.integers(0, 10**6),
    st.integers(0, 10**10 - 1),
    st.integers(0, 10),
).filter(lambda d: d > 0)
currencies = st.sampled_from(["RUB", "EUR", "JPY", "KWD", "USD"])  # 2, 2, 0, 3 and 2 decimals


@given(st.integers(0, 10**15), currencies, currencies, rates, st.booleans())
def test_conversion_is_the_exact_fraction_rounded_once(
    minor: int, frm: str, to: str, rate: Decimal, divide: bool
) -> None:
    assert convert(minor, frm, to, rate, divide=divide) == _exact(minor, frm, to, Fraction(rate), divide)


@given(st.integers(0, 10**12), st.integers(0, 10**12), rates)
def test_conversion_never_gives_less_for_more(a: int, b: int, rate: Decimal) -> None:
    lo, hi = sorted((a, b))
    assert convert(lo, "EUR", "RUB", rate) <= convert(hi, "EUR", "RUB", rate)
    assert convert(lo, "RUB", "EUR", rate, divide=True) <= convert(hi, "RUB", "EUR", rate, divide=True)


async def test_versions_in_force_and_never_changed(db_url: str) -> None:
    async with settle_env(db_url) as env, env.hub.sessions() as s:
        first, created = await add_rate(
            s, "eur", "RUB", "98.00", effective_from=t("2026-12-01T00:00:00+00:00")
        )
        assert created and (first.base, first.quote, first.rate) == ("EUR", "RUB", "98.00")
        await add_rate(s, "EUR", "RUB", "99.50", effective_from=t("2026-12-05T09:00:00+03:00"))
        same, created = await add_rate(s, "EUR", "RUB", "98.0", effective_from=t("2026-12-01T00:00:00Z"))
        assert not created and same.id == first.id  # the identical version: nothing new
        with pytest.raises(RateError, match="never changed"):
            await add_rate(s, "EUR", "RUB", "97", effective_from=t("2026-12-01T00:00:00Z"))
        tiny, _ = await add_rate(s, "JPY", "KWD", "0.0000001", effective_from=t("2026-12-01T00:00:00Z"))
        assert tiny.rate == "0.0000001"  # stored as plain digits, never as 1E-7
        for bad, message in (
            (("EUR", "EUR", "1"), "two different"),
            (("EUR", "XXY", "1"), "unknown currency"),
        ):
            with pytest.raises(RateError, match=message):
                await add_rate(s, *bad)
        with pytest.raises(RateError, match="timezone"):
            await add_rate(s, "EUR", "USD", "1.05", effective_from=dt.datetime(2026, 12, 1))
        assert await rate_at(s, "EUR", "RUB", t("2026-11-30T23:59:59Z")) is None
        at_2nd = await rate_at(s, "EUR", "RUB", t("2026-12-02T00:00:00Z"))
        assert at_2nd is not None and at_2nd.rate == Decimal("98.00") and not at_2nd.inverted
        at_5th = await rate_at(s, "EUR", "RUB", t("2026-12-05T06:00:00Z"))  # 09:00 in Moscow
        assert at_5th is not None and at_5th.rate == Decimal("99.50")
        back = await rate_at(s, "RUB", "EUR", t("2026-12-06T00:00:00Z"))  # only quoted the other way
        assert back is not None and back.inverted and back.convert(9950_00) == 100_00
        assert back.rate == Decimal("0.0100502513")  # shown to 10 places; converting divides exactly
        await add_rate(s, "RUB", "EUR", "0.0105", effective_from=t("2026-12-06T00:00:00Z"))
        newer = await rate_at(s, "EUR", "RUB", t("2026-12-06T12:00:00Z"))  # the newer version wins
        assert newer is not None and newer.inverted and newer.convert(1_05) == 100_00


async def test_admin_api(db_url: str) -> None:
    async with settle_env(db_url) as env:
        body = {"base": "EUR", "quote": "RUB", "rate": "98.4512", "effective_from": "2026-12-01T00:00:00Z"}
        r = await env.http.post("/api/v1/admin/exchange-rates", json=body, headers=env.admin)
        assert r.status_code == 201 and r.json()["rate"] == "98.4512"
        again = await env.http.post("/api/v1/admin/exchange-rates", json=body, headers=env.admin)
        assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
        clash = await env.http.post(
            "/api/v1/admin/exchange-rates", json={**body, "rate": "1"}, headers=env.admin
        )
        assert clash.status_code == 422 and clash.headers["content-type"] == "application/problem+json"
        assert "never changed" in clash.json()["detail"]
        bad = await env.http.post(
            "/api/v1/admin/exchange-rates", json={**body, "rate": "98.4.5"}, headers=env.admin
        )
        assert bad.status_code == 422 and "not a decimal" in bad.json()["detail"]
        listed = await env.http.get("/api/v1/admin/exchange-rates?base=eur", headers=env.admin)
        assert [x["rate"] for x in listed.json()["items"]] == ["98.4512"]
        c = await env.http.get(
            "/api/v1/admin/exchange-rates/convert",
            params={"amount": "250.00", "from": "RUB", "to": "EUR", "at": "2026-12-02T00:00:00Z"},
            headers=env.admin,
        )
        assert c.status_code == 200, c.text
        assert (c.json()["converted"], c.json()["inverted"]) == ("2.54", True)  # 250 / 98.4512 = 2.539...
        none = await env.http.get(
            "/api/v1/admin/exchange-rates/convert",
            params={"amount": "1.00", "from": "EUR", "to": "RUB", "at": "2026-11-01T00:00:00Z"},
            headers=env.admin,
        )
        assert none.status_code == 404
        events = await env.http.get("/api/v1/admin/exchange-rates", headers=env.admin)
        assert len(events.json()["items"]) == 1
        async with env.hub.read_sessions() as s:
            actions = (await s.scalars(select(AuditEvent.action))).all()
        assert list(actions).count("exchange_rate.add") == 1


async def test_back_office_page(db_url: str) -> None:
    async with settle_env(db_url) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        await bo.user("cfo.ann", "cfo", timezone="Europe/Moscow")
        await bo.user("cash.bob", "cashier")
        assert (await login(bo.http, "cfo.ann")).status_code == 303
        data = {
            "base": "USD",
            "quote": "RUB",
            "rate": "91.25",
            "effective_from": "2026-12-06T09:00",
            "source": "CB",
        }
        r = await post_form(bo.http, "/backoffice/rates", "/backoffice/rates", data)
        assert r.status_code == 303 and flash_of((await follow(bo.http, r)).text) == "The rate was added."
        async with env.hub.read_sessions() as s:
            found = await rate_at(s, "USD", "RUB", t("2026-12-06T06:00:00Z"))  # 09:00 in Moscow
            assert found is not None and found.rate == Decimal("91.25")
        page = await bo.http.get("/backoffice/rates")
        assert "91.25" in page.text and "2026-12-06 09:00" in page.text and 'id="add-rate"' in page.text
        refused = await post_form(bo.http, "/backoffice/rates", "/backoffice/rates", {**data, "rate": "abc"})
        shown = await bo.http.get(refused.headers["location"])
        assert "is not a decimal number" in shown.text
        async with bo.client() as cashier:
            assert (await login(cashier, "cash.bob")).status_code == 303
            view = await cashier.get("/backoffice/rates")
            assert view.status_code == 200 and "91.25" in view.text and 'id="add-rate"' not in view.text
