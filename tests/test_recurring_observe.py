"""Balances and debts read from providers' check answers (recurring/observe.py), over real HTTP
against the OSMP and JSON/HTTP emulators on loopback."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness import BASE_CATALOG
from harness import test_settings as hub_settings
from paymux.catalog.file import apply_catalog
from paymux.catalog.service import CatalogError
from paymux.providers.base import ProtocolResult
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
from paymux.providers.emulators.osmp import create_app as osmp_app
from paymux.providers.emulators.server import run_emulator
from paymux.recurring.observe import (
    Mapping,
    ObserveError,
    mapping_problems,
    observe,
    read_value,
    to_minor,
)
from paymux.runtime import Hub

MAPPING = {"balance_field": "balance", "debt_field": "debt", "scale": "major"}

ACCOUNTS: dict[str, Any] = {
    "9001000001": {"balance": "1500.25", "debt": "310.07"},
    "9001000002": {"balance": "-12.50"},  # overdrawn, no debt reported
    "9001000003": {"balance": "12.345"},  # more decimals than RUB has
    "9001000004": {"check": "reject:5:account not found"},
    "9001000005": {"balance": "99999999999999.99", "debt": "0.01"},
    "9001000006": {"info": {"acct": {"balance": 12.3, "debt_minor": 4507}}},  # JSON numbers
}


@dataclass
class ObserveEnv:
    hub: Hub
    services: dict[str, int]
    urls: dict[str, str]
    engines: dict[str, BehaviourEngine]


def _catalog(osmp_url: str, json_url: str, *, osmp_map: Any, json_map: Any) -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    cat["providers"] = [
        {
            "code": "posmp",
            "name": "OSMP provider",
            "protocol": "osmp",
            "config": {"url": osmp_url, "timeout": "1", **({"recurring": osmp_map} if osmp_map else {})},
            "settlement": "postpaid",
        },
        {
            "code": "pjson",
            "name": "JSON provider",
            "protocol": "jsonhttp",
            "config": {"url": json_url, "timeout": "1", **({"recurring": json_map} if json_map else {})},
            "settlement": "postpaid",
        },
        {
            "code": "pdead",
            "name": "Nobody listens",
            "protocol": "jsonhttp",
            "config": {"url": "http://127.0.0.1:9", "timeout": "1", "recurring": MAPPING},
            "settlement": "postpaid",
        },
    ]
    base = cat["services"][0]
    cat["services"] = []
    for code, provider in (("via_osmp", "posmp"), ("via_json", "pjson"), ("via_dead", "pdead")):
        s = copy.deepcopy(base)
        s["code"] = code
        s["route"] = {"strategy": "priority", "candidates": [{"provider": provider, "code": "S" + code}]}
        cat["services"].append(s)
    cat["tariffs"] = [t for t in cat["tariffs"] if t["kind"] != "remuneration"]
    return cat


@contextlib.asynccontextmanager
async def observe_env(
    db_url: str, *, osmp_map: Any = MAPPING, json_map: Any = MAPPING
) -> AsyncIterator[ObserveEnv]:
    hub = Hub(hub_settings(db_url))
    async with contextlib.AsyncExitStack() as stack:
        engines = {
            "posmp": BehaviourEngine(EmulatorConfig.model_validate({"accounts": ACCOUNTS})),
            "pjson": BehaviourEngine(EmulatorConfig.model_validate({"accounts": ACCOUNTS})),
        }
        urls = {
            "posmp": await stack.enter_async_context(run_emulator(osmp_app(engine=engines["posmp"]))) + "/",
            "pjson": await stack.enter_async_context(run_emulator(jsonhttp_app(engine=engines["pjson"]))),
        }
        cat = _catalog(urls["posmp"], urls["pjson"], osmp_map=osmp_map, json_map=json_map)
        async with hub.sessions() as session:
            await apply_catalog(session, cat, actor="test")
            await session.commit()
        hub.catalog_changed()
        snap = await hub.catalog.get()
        services = {code: s.id for code, s in snap.services.items()}
        try:
            yield ObserveEnv(hub, services, urls, engines)
        finally:
            await hub.close()


@pytest.mark.parametrize("service", ["via_osmp", "via_json"])
async def test_balance_and_debt_are_read_exactly_from_the_check_answer(db_url: str, service: str) -> None:
    async with observe_env(db_url) as env:
        sid = env.services[service]
        balance = await observe(env.hub, service_id=sid, account="9001000001", kind="balance")
        assert (balance.value, balance.currency) == (150025, "RUB")
        assert balance.raw["provider"] == ("posmp" if service == "via_osmp" else "pjson")
        assert (balance.raw["field"], balance.raw["text"]) == ("balance", "1500.25")
        debt = await observe(env.hub, service_id=sid, account="9001000001", kind="debt")
        assert (debt.value, debt.currency) == (31007, "RUB")
        overdrawn = await observe(env.hub, service_id=sid, account="9001000002", kind="balance")
        assert overdrawn.value == -1250
        big = await observe(env.hub, service_id=sid, account="9001000005", kind="balance")
        assert big.value == 9_999_999_999_999_999  # no float could hold this exactly
        assert isinstance(big.value, int)
        tiny = await observe(env.hub, service_id=sid, account="9001000005", kind="debt")
        assert tiny.value == 1


async def test_the_check_goes_to_the_provider_with_a_check_id(db_url: str) -> None:
    async with observe_env(db_url) as env:
        await observe(env.hub, service_id=env.services["via_osmp"], account="9001000001", kind="balance")
        async with httpx.AsyncClient() as http:
            state = (await http.get(env.urls["posmp"] + "_emulator/transactions")).json()
        # a check registers nothing payable and its id is never a payment's
        [txn_id] = state["commands"]
        assert state["commands"][txn_id] == ["check"], state
        assert len(txn_id) == 20 and txn_id.startswith("1")


async def test_osmp_answer_carries_the_fields_in_the_qiwi_form(db_url: str) -> None:
    async with observe_env(db_url) as env:
        obs = await observe(env.hub, service_id=env.services["via_osmp"], account="9001000001", kind="debt")
        assert obs.raw["fields"] == {"balance": "1500.25", "debt": "310.07"}


async def test_json_numbers_and_nested_fields_and_minor_scale(db_url: str) -> None:
    mapping = {"balance_field": "acct.balance", "debt_field": "acct.debt_minor", "scale": "major"}
    async with observe_env(db_url, json_map=mapping) as env:
        sid = env.services["via_json"]
        balance = await observe(env.hub, service_id=sid, account="9001000006", kind="balance")
        assert balance.value == 1230  # 12.3 arrived as its literal text, never a float
        # the mapping says major: 4507 is 4507.00 (the mapping decides, not the value's look)
        debt = await observe(env.hub, service_id=sid, account="9001000006", kind="debt")
        assert debt.value == 450700
    minor = {"balance_field": "acct.balance", "debt_field": "acct.debt_minor", "scale": "minor"}
    async with observe_env(db_url, json_map=minor) as env:
        sid = env.services["via_json"]
        debt = await observe(env.hub, service_id=sid, account="9001000006", kind="debt")
        assert debt.value == 4507
        with pytest.raises(ObserveError) as exc:
            await observe(env.hub, service_id=sid, account="9001000006", kind="balance")
        assert exc.value.code == "bad_value"  # "12.3" is not a whole number of minor units


@pytest.mark.parametrize("service", ["via_osmp", "via_json"])
async def test_missing_mapping_or_missing_field_is_an_observe_error(db_url: str, service: str) -> None:
    async with observe_env(db_url, osmp_map={"balance_field": "balance"}, json_map=None) as env:
        sid = env.services[service]
        if service == "via_json":  # no mapping at all
            with pytest.raises(ObserveError) as exc:
                await observe(env.hub, service_id=sid, account="9001000001", kind="balance")
            assert exc.value.code == "no_mapping"
            assert "pjson" in exc.value.message and not exc.value.temporary
            assert env.engines["pjson"].ledger.all_pay_calls() == {}
            return
        with pytest.raises(ObserveError) as exc:  # a balance mapping only: no debt to read
            await observe(env.hub, service_id=sid, account="9001000001", kind="debt")
        assert exc.value.code == "no_mapping"
        with pytest.raises(ObserveError) as exc:  # the provider does not report it for this account
            await observe(env.hub, service_id=sid, account="9001000004", kind="balance")
        assert exc.value.code == "rejected" and exc.value.provider == "posmp"
        assert "account not found" in exc.value.message


@pytest.mark.parametrize("service", ["via_osmp", "via_json"])
async def test_answer_without_the_field_and_inexact_amount(db_url: str, service: str) -> None:
    async with observe_env(db_url) as env:
        sid = env.services[service]
        with pytest.raises(ObserveError) as exc:
            await observe(env.hub, service_id=sid, account="9001000002", kind="debt")
        assert exc.value.code == "no_value" and "'debt'" in exc.value.message
        with pytest.raises(ObserveError) as exc:
            await observe(env.hub, service_id=sid, account="9001000003", kind="balance")
        assert exc.value.code == "bad_value" and "12.345" in exc.value.message


@pytest.mark.parametrize("service", ["via_osmp", "via_json"])
async def test_provider_down_is_a_temporary_error_and_up_again_answers(db_url: str, service: str) -> None:
    async with observe_env(db_url) as env:
        sid = env.services[service]
        provider = "posmp" if service == "via_osmp" else "pjson"
        base = env.urls[provider].rstrip("/")
        async with httpx.AsyncClient() as http:
            assert (await http.post(base + "/_emulator/down")).status_code == 200
            with pytest.raises(ObserveError) as exc:
                await observe(env.hub, service_id=sid, account="9001000001", kind="balance")
            assert exc.value.code == "unavailable" and exc.value.temporary
            assert provider in exc.value.message
            assert (await http.post(base + "/_emulator/up")).status_code == 200
        obs = await observe(env.hub, service_id=sid, account="9001000001", kind="balance")
        assert obs.value == 150025


async def test_unreachable_provider_and_unknown_service(db_url: str) -> None:
    async with observe_env(db_url) as env:
        with pytest.raises(ObserveError) as exc:
            await observe(env.hub, service_id=env.services["via_dead"], account="9001000001", kind="debt")
        assert exc.value.code == "unavailable" and exc.value.temporary
        with pytest.raises(ObserveError) as exc:
            await observe(env.hub, service_id=999_999, account="9001000001", kind="debt")
        assert exc.value.code == "unknown_service"


async def test_the_catalog_refuses_a_bad_mapping(db_url: str) -> None:
    hub = Hub(hub_settings(db_url))
    try:
        for bad in ({"scale": "cents"}, {"balance_field": 5}, {"balanse_field": "x"}, "balance"):
            cat = _catalog("http://127.0.0.1:9/", "http://127.0.0.1:9", osmp_map=bad, json_map=None)
            async with hub.sessions() as session:
                with pytest.raises(CatalogError, match="recurring"):
                    await apply_catalog(session, cat, actor="test")
                await session.rollback()
    finally:
        await hub.close()


def test_mapping_problems() -> None:
    assert mapping_problems({}) == []
    assert mapping_problems({"recurring": MAPPING}) == []
    assert mapping_problems({"recurring": {"debt_field": "a.b", "check_amount": "1.00"}}) == []
    assert mapping_problems({"recurring": {"check_amount": 1.5}})
    assert mapping_problems({"recurring": {"debt_field": "has space"}})


@pytest.mark.parametrize(
    ("text", "currency", "scale", "minor"),
    [
        ("1500.25", "RUB", "major", 150025),
        ("1500.250", "RUB", "major", 150025),  # trailing zeros are exact
        ("0", "RUB", "major", 0),
        ("-0.01", "RUB", "major", -1),
        ("+7", "RUB", "major", 700),
        (" 12.30 ", "RUB", "major", 1230),
        (1234, "RUB", "major", 123400),
        ("150", "JPY", "major", 150),
        ("1.234", "KWD", "major", 1234),
        ("150025", "RUB", "minor", 150025),
        (150025, "RUB", "minor", 150025),
        ("0.1", "RUB", "major", 10),
    ],
)
def test_to_minor_is_exact(text: str | int, currency: str, scale: str, minor: int) -> None:
    assert to_minor(text, currency, scale) == minor


@pytest.mark.parametrize(
    ("text", "scale"),
    [
        ("12.345", "major"),
        ("1e3", "major"),
        ("1,5", "major"),
        ("NaN", "major"),
        ("Infinity", "major"),
        ("", "major"),
        ("12.5", "minor"),
        (True, "major"),
        (1.5, "major"),
    ],
)
def test_to_minor_refuses(text: Any, scale: str) -> None:
    with pytest.raises(ValueError):
        to_minor(text, "RUB", scale)


def test_read_value_looks_in_fields_then_info() -> None:
    m = Mapping(balance_field="balance", debt_field="x.debt")
    r = ProtocolResult("ok", fields={"balance": "5.00"}, info={"x": {"debt": "7"}, "fields": {}})
    assert read_value(r, m, "balance", "RUB", "p") == 500
    assert read_value(r, m, "debt", "RUB", "p") == 700
    with pytest.raises(ObserveError) as exc:
        read_value(ProtocolResult("ok"), m, "balance", "RUB", "p")
    assert exc.value.code == "no_value"


def test_the_demo_providers_map_balances_and_their_emulators_report_them() -> None:
    from paymux.demo.run import demo_catalog, emulator_config

    mapped = [p["code"] for p in demo_catalog()["providers"] if "recurring" in p["config"]]
    assert set(mapped) >= {"fastpay", "qiwipay"}
    for p in demo_catalog()["providers"]:
        assert mapping_problems(p["config"]) == [], p["code"]
    engine = BehaviourEngine(emulator_config("fastpay"))
    decision = engine.decide_check("5000000001", 100, "RUB")
    assert decision.info == {"balance": "-1843.27", "debt": "1843.27"}
    assert to_minor(decision.info["debt"], "RUB") == 184327
