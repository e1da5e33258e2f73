"""The catalog: schemas, upserts, the catalog file (apply / export / YAML) and tariff versions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import apply_catalog, dump_yaml, export_catalog, load_yaml
from paymux.catalog.models import (
    CHANNEL_KINDS,
    SETTLEMENT_MODES,
    SIGNING_MODES,
    STRATEGIES,
    Agent,
    Channel,
    ChannelGroup,
    Provider,
    Service,
)
from paymux.catalog.schemas import (
    CatalogFile,
    ChannelKind,
    ProviderIn,
    Settlement,
    SigningMode,
    Strategy,
    TariffIn,
    TariffKind,
)
from paymux.catalog.service import (
    CatalogError,
    get_provider,
    get_service,
    list_route_candidates,
    provider_to_schema,
    service_to_schema,
    set_enabled,
    upsert_channel,
    upsert_provider,
    upsert_service,
)
from paymux.routing.models import RouteCandidate, RouteSwitch
from paymux.tariffs.calc import TariffError
from paymux.tariffs.models import TARIFF_KINDS, TariffVersion
from paymux.tariffs.service import add_version, history, version_to_schema

EXAMPLE = Path(__file__).parent / "data" / "catalog_example.yaml"
DOCS = Path(__file__).parent.parent / "docs" / "catalog.md"
TABLES = (Provider, Service, ChannelGroup, Agent, Channel, RouteCandidate, RouteSwitch, TariffVersion)


def example() -> dict[str, Any]:
    """The example catalog as a plain dict (a fresh copy each time, ready to be edited)."""
    return load_yaml(EXAMPLE.read_text("utf-8")).model_dump(mode="json")


async def counts(session: AsyncSession) -> dict[str, int]:
    return {
        model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
        for model in TABLES
    }


async def apply_example(session: AsyncSession) -> None:
    await apply_catalog(session, load_yaml(EXAMPLE.read_text("utf-8")), "test")
    await session.commit()


def test_schema_literals_match_model_constants() -> None:
    assert get_args(ChannelKind) == CHANNEL_KINDS
    assert get_args(Settlement) == SETTLEMENT_MODES
    assert get_args(SigningMode) == SIGNING_MODES
    assert get_args(Strategy) == STRATEGIES
    assert get_args(TariffKind) == TARIFF_KINDS


def test_docs_example_is_the_test_example() -> None:
    text = DOCS.read_text("utf-8")
    start = text.index("```yaml\n", text.index("## Complete example")) + len("```yaml\n")
    block = text[start : text.index("```\n", start)]
    assert load_yaml(block) == load_yaml(EXAMPLE.read_text("utf-8"))


# --- apply / idempotence / export ------------------------------------------------------------------------


async def test_apply_example_creates_everything(session: AsyncSession) -> None:
    report = await apply_catalog(session, load_yaml(EXAMPLE.read_text("utf-8")), "test")
    await session.commit()
    assert report.counts() == {"created": 23, "updated": 1, "unchanged": 0}
    kinds = [(i.kind, i.change) for i in report.items]
    assert kinds.count(("provider", "created")) == 3
    assert kinds.count(("service", "created")) == 4
    assert kinds.count(("channel", "created")) == 4
    assert kinds.count(("tariff", "created")) == 8
    assert ("switch", "updated") in kinds
    assert report.lines()[0] == "created channel_group retail"
    assert report.summary() == "23 created, 1 updated, 0 unchanged"

    assert await counts(session) == {
        "providers": 3,
        "services": 4,
        "channel_groups": 2,
        "agents": 2,
        "channels": 4,
        "route_candidates": 9,
        "route_switches": 1,
        "tariff_versions": 8,
    }
    alpha = await get_provider(session, "alpha")
    assert alpha.overdraft == {"RUB": 500000}
    assert alpha.breaker == {
        "window_seconds": 120,
        "min_calls": 20,
        "failure_rate_percent": 40,
        "open_seconds": 60,
    }
    beta = await get_provider(session, "beta")
    assert (beta.timezone, beta.settlement, beta.breaker["window_seconds"]) == ("UTC", "postpaid", 60)

    mts = await get_service(session, "mts-topup")
    assert (mts.min_amount, mts.max_amount, mts.strategy) == (1000, 1500000, "priority")
    cands = await list_route_candidates(session, mts.id)
    assert [(c.priority, c.provider_service_code) for c in cands] == [(1, "MTS"), (2, "1001"), (3, "mts-ru")]
    assert (cands[1].max_amount, cands[2].hours_from, cands[2].hours_to) == (500000, "22:00", "06:00")

    elec = await get_service(session, "electricity")
    assert [c.priority for c in await list_route_candidates(session, elec.id)] == [1, 2]  # position + 1

    term = (await session.execute(select(Channel).where(Channel.code == "term-0042"))).scalar_one()
    assert (term.signing, term.signing_required) == ("hmac", True)
    assert term.hmac_secret == "terminal-0042-shared-secret"

    fee = (await history(session, kind="fee", service="mts-topup"))[0]
    assert fee.rule == {
        "fixed": 1000,
        "percent": "1",
        "min": 1500,
        "max": 50000,
        "rounding": "half_up",
        "tiers": [],
    }
    assert fee.created_by == "test"


async def test_apply_twice_reports_everything_unchanged(session: AsyncSession) -> None:
    await apply_example(session)
    before = (await get_provider(session, "alpha")).updated_at
    report = await apply_catalog(session, load_yaml(EXAMPLE.read_text("utf-8")), "test")
    await session.commit()
    assert report.counts() == {"created": 0, "updated": 0, "unchanged": 24}
    assert report.lines() == []
    assert (await get_provider(session, "alpha")).updated_at == before
    assert (await counts(session))["route_switches"] == 1


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("providers", 1, "name"), "Beta Renamed", ("provider", "beta")),
        (("providers", 0, "overdraft", "RUB"), "6000.00", ("provider", "alpha")),
        (("providers", 2, "breaker"), {"open_seconds": 90}, ("provider", "gamma")),
        (("channels", 1, "signing", "required"), False, ("channel", "term-0042")),
        (("services", 0, "route", "candidates", 1, "weight"), 5, ("service", "mts-topup")),
        (("services", 1, "fields", 0, "required"), True, ("service", "electricity")),
        (("agents", 0, "enabled"), False, ("agent", "dealer-north")),
        (("channel_groups", 1, "name"), "Online", ("channel_group", "online")),
    ],
)
async def test_changing_one_field_updates_exactly_that_item(
    session: AsyncSession, path: tuple[Any, ...], value: Any, expected: tuple[str, str]
) -> None:
    await apply_example(session)
    data = example()
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    report = await apply_catalog(session, data, "test")
    await session.commit()
    assert [(i.kind, i.code) for i in report.changes] == [expected]
    assert report.changes[0].change == "updated"
    again = await apply_catalog(session, data, "test")
    assert not again.changed


async def test_route_change_touches_service_updated_at_only_when_changed(session: AsyncSession) -> None:
    await apply_example(session)
    before = (await get_service(session, "electricity")).updated_at
    data = example()
    data["services"][1]["route"]["candidates"].append({"provider": "gamma", "code": "EL"})
    report = await apply_catalog(session, data, "test")
    await session.commit()
    assert [i.line() for i in report.changes] == ["updated service electricity"]
    svc = await get_service(session, "electricity")
    assert svc.updated_at > before
    cands = await list_route_candidates(session, svc.id)
    assert [(c.provider_service_code, c.priority) for c in cands] == [
        ("ELEC-CITY", 1),
        ("2002", 2),
        ("EL", 3),
    ]
    # removing candidates from the list removes them from the route
    data["services"][1]["route"]["candidates"] = data["services"][1]["route"]["candidates"][:1]
    await apply_catalog(session, data, "test")
    await session.commit()
    assert len(await list_route_candidates(session, svc.id)) == 1


async def test_export_then_apply_changes_nothing(session: AsyncSession) -> None:
    await apply_example(session)
    exported = await export_catalog(session)
    assert len(exported.tariffs) == 8  # every version, history included
    assert exported.switches == []
    kz = next(s for s in exported.services if s.code == "kz-internet")
    assert [(c.provider, c.enabled) for c in kz.route.candidates] == [
        ("alpha", True),
        ("gamma", False),
        ("beta", True),
    ]
    report = await apply_catalog(session, exported, "test")
    assert not report.changed, report.lines()
    # and through YAML text
    report = await apply_catalog(session, load_yaml(dump_yaml(exported)), "test")
    assert not report.changed, report.lines()


async def test_yaml_text_round_trip(session: AsyncSession) -> None:
    await apply_example(session)
    exported = await export_catalog(session)
    text = dump_yaml(exported)
    assert load_yaml(text) == exported
    assert dump_yaml(load_yaml(text)) == text
    assert "rsa_public_key: |" in text  # PEM keys as literal blocks
    assert "'5000.00'" in text  # amounts stay strings
    assert "2024-12-31T21:00:00Z" in text  # effective_from in UTC


async def test_upsert_functions_and_to_schema(session: AsyncSession) -> None:
    provider = ProviderIn(
        code="p1",
        name="P1",
        protocol="jsonhttp",
        config={"url": "https://p1.example/api"},
        overdraft={"EUR": "10"},
    )
    assert await upsert_provider(session, provider) == "created"
    assert await upsert_provider(session, provider) == "unchanged"
    assert provider_to_schema(await get_provider(session, "p1")).overdraft == {"EUR": "10.00"}
    assert await upsert_provider(session, provider.model_copy(update={"timezone": "Asia/Tokyo"})) == "updated"

    data = load_yaml(EXAMPLE.read_text("utf-8")).services[0].model_copy(update={"code": "svc2"})
    with pytest.raises(CatalogError, match="unknown provider 'alpha'"):
        await upsert_service(session, data)
    await session.rollback()

    await apply_example(session)
    svc = await service_to_schema(session, await get_service(session, "mts-topup"))
    assert svc.route.candidates[1].max_amount == "5000.00"
    assert svc.route.candidates[2].hours == "22:00-06:00"
    assert await upsert_service(session, svc) == "unchanged"

    channel = load_yaml(EXAMPLE.read_text("utf-8")).channels[0].model_copy(update={"group": "nope"})
    with pytest.raises(CatalogError, match="unknown channel group 'nope'"):
        await upsert_channel(session, channel)


async def test_set_enabled(session: AsyncSession) -> None:
    await apply_example(session)
    assert await set_enabled(session, "provider", "beta", False) == "updated"
    assert await set_enabled(session, "provider", "beta", False) == "unchanged"
    assert await set_enabled(session, "service", "game-credits", True) == "updated"
    assert await set_enabled(session, "channel", "ibank", False) == "updated"
    assert await set_enabled(session, "agent", "dealer-south", False) == "updated"
    await session.commit()
    assert (await get_provider(session, "beta")).enabled is False
    with pytest.raises(CatalogError, match="unknown provider 'zeta'"):
        await set_enabled(session, "provider", "zeta", True)
    with pytest.raises(CatalogError, match="unknown service 'zeta'"):
        await get_service(session, "zeta")


# --- validation: readable errors, nothing written -------------------------------------------------------


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


BAD_INPUTS = [
    (("providers", 2, "protocol"), "soap", "providers[2] (gamma): provider 'gamma': unknown provider"),
    (("providers", 1, "config"), {"token": "x"}, "config for protocol 'jsonhttp': url is required"),
    (("services", 1, "account_pattern"), "^[0-9", "services[1] (electricity).account_pattern: "),
    (("services", 2, "route", "candidates", 1, "provider"), "zz", "services[2] (kz-internet): unknown"),
    (("services", 0, "route", "candidates", 0, "channel_group"), "vip", "unknown channel group 'vip'"),
    (("services", 0, "min_amount"), "20000.00", "min_amount 20000.00 is greater than max_amount 15000.00"),
    (
        ("services", 0, "route", "candidates", 1, "min_amount"),
        "6000",
        "route.candidates[1].min_amount 6000 is greater than route.candidates[1].max_amount 5000.00",
    ),
    (("services", 0, "max_amount"), 15000.5, 'write amounts as quoted decimal strings such as "15000.5"'),
    (("services", 0, "max_amount"), "1.001", "has more than 2 decimal places allowed for RUB"),
    (("services", 0, "currency"), "RUR", "services[0] (mts-topup).currency: unknown currency 'RUR'"),
    (("providers", 0, "tiemzone"), "UTC", "providers[0] (alpha): unknown field 'tiemzone' (allowed: code,"),
    (("providers", 0, "timezone"), "Europe/Atlantis", "providers[0] (alpha).timezone: unknown time zone"),
    (("providers", 0, "settlement"), "credit", "providers[0] (alpha).settlement: Input should be 'prepaid'"),
    (("channels", 1, "signing", "hmac_secret"), None, "channels[1] (term-0042).signing: mode hmac needs"),
    (
        ("channels", 2, "signing", "rsa_public_key"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "channels[2] (ibank).signing: rsa_public_key is not a PEM public key",
    ),
    (("channels", 0, "agent"), "dealer-west", "channels[0] (atm-0001): unknown agent 'dealer-west'"),
    (("services", 0, "route", "candidates", 2, "hours"), "22-06", "hours '22-06' must look like"),
    (("tariffs", 2, "provider"), None, "tariffs[2]: a remuneration tariff needs provider"),
    (("tariffs", 3, "provider"), "alpha", "tariffs[3]: a fee tariff cannot have provider"),
    (("tariffs", 4, "rule", "percent"), 1.5, "tariffs[4]: rule: percent must be a decimal string"),
    (("tariffs", 4, "effective_from"), "2025-01-01T00:00:00", "tariffs[4].effective_from: effective_from"),
    (("tariffs", 5, "currency"), "RUB", "currency RUB differs from the currency KZT of service"),
    (("tariffs", 6, "channel_group"), "vip", "tariffs[6] (commission channel_group=vip from"),
    (("switches", 0, "onto"), "omega", "switches[0] (off gamma onto omega service kz-internet): unknown"),
    (("services", 3, "code"), "mts-topup", "services[3]: duplicate code 'mts-topup'"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_INPUTS)
async def test_invalid_catalog_is_refused_readably_and_nothing_is_written(
    session: AsyncSession, path: tuple[Any, ...], value: Any, message: str
) -> None:
    data = example()
    _set(data, path, value)
    with pytest.raises(CatalogError) as info:
        await apply_catalog(session, data, "test")
    assert message in str(info.value)
    await session.rollback()
    assert set((await counts(session)).values()) == {0}


async def test_invalid_change_to_existing_catalog_leaves_it_as_it_was(session: AsyncSession) -> None:
    await apply_example(session)
    before = await counts(session)
    data = example()
    data["providers"][0]["name"] = "Changed"  # applied first ...
    data["services"].append(
        {
            "code": "new",
            "name": "New",
            "currency": "RUB",
            "route": {"candidates": [{"provider": "nope", "code": "x"}]},
        }
    )  # ... then fails
    with pytest.raises(CatalogError, match=r"services\[4\] \(new\): unknown provider 'nope'"):
        await apply_catalog(session, data, "test")
    await session.rollback()
    assert (await get_provider(session, "alpha")).name == "Alpha Payment System"
    assert await counts(session) == before


def test_load_yaml_errors_are_readable() -> None:
    with pytest.raises(CatalogError, match=r"(?s)not valid YAML.*line 2, column 11"):
        load_yaml("providers:\n  - code: [unclosed\n")
    with pytest.raises(CatalogError, match="duplicate key 'code'"):
        load_yaml("providers:\n  - code: a\n    code: b\n")
    with pytest.raises(CatalogError, match="must be a mapping"):
        load_yaml("- just a list\n")
    with pytest.raises(CatalogError, match=r"unknown field 'provider' \(allowed: providers"):
        load_yaml("provider: []\n")
    with pytest.raises(CatalogError, match=r"providers\[0\] \(a\).name: this field is required"):
        load_yaml("providers:\n  - code: a\n    protocol: jsonhttp\n")
    assert load_yaml("") == CatalogFile()


def test_yaml_off_key_and_numeric_codes() -> None:
    data = load_yaml(
        "switches:\n  - off: alpha\n    onto: beta\n"
        "services:\n  - code: s\n    name: S\n    currency: RUB\n    enabled: no\n"
        "    route:\n      candidates:\n        - provider: alpha\n          code: 1001\n"
    )
    assert (data.switches[0].off, data.switches[0].onto, data.switches[0].service) == ("alpha", "beta", None)
    assert data.services[0].route.candidates[0].code == "1001"
    assert data.services[0].enabled is False


# --- tariff versions -------------------------------------------------------------------------------------


async def test_tariff_versions_are_immutable(session: AsyncSession) -> None:
    await apply_example(session)
    data = example()
    data["tariffs"][0]["rule"] = {"percent": "1.3"}
    with pytest.raises(CatalogError, match=r"tariff versions are immutable: .* later effective_from"):
        await apply_catalog(session, data, "test")
    await session.rollback()

    version = load_yaml(EXAMPLE.read_text("utf-8")).tariffs[0]
    changed = version.model_copy(update={"rule": {"percent": "1.3"}})
    with pytest.raises(TariffError, match="immutable"):
        await add_version(session, changed, "admin")
    # the same rule written differently is the same version
    same = version.model_copy(update={"rule": {"percent": "1.20"}, "note": "another note"})
    result, row = await add_version(session, same, "admin")
    assert (result, row.note) == ("unchanged", "contract 2025/17")

    later = changed.model_copy(update={"effective_from": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
    result, row = await add_version(session, later, "admin")
    assert (result, row.created_by) == ("created", "admin")
    await session.commit()

    rows = await history(session, kind="remuneration", service="mts-topup", provider="alpha")
    assert [r.rule["percent"] for r in rows] == ["1.3", "1.5", "1.2"]  # newest first
    assert [r.effective_from for r in rows] == sorted((r.effective_from for r in rows), reverse=True)
    assert len(await history(session)) == 9
    assert len(await history(session, provider="beta")) == 1
    assert len(await history(session, kind="commission")) == 2


async def test_version_to_schema(session: AsyncSession) -> None:
    await apply_example(session)
    rows = await history(session, kind="fee", service="electricity")
    tariff = await version_to_schema(session, rows[0])
    assert tariff == TariffIn(
        kind="fee",
        service="electricity",
        currency="RUB",
        effective_from=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        rule={
            "min": "5.00",
            "rounding": "up",
            "tiers": [
                {"from": "0.00", "percent": "2"},
                {"from": "1000.00", "percent": "1.5", "max": "300.00"},
            ],
        },
    )
    commission = await version_to_schema(session, (await history(session, kind="commission"))[0])
    assert (commission.channel, commission.service) == ("term-0042", "mts-topup")
    assert commission.channel_group is None


def test_tariff_effective_from_is_converted_to_utc() -> None:
    t = TariffIn(kind="fee", currency="RUB", effective_from="2025-01-01T03:00:00+03:00", rule={})
    assert t.effective_from == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert t.effective_from.utcoffset() == dt.timedelta(0)
