"""One-click route switches: off a provider (optionally onto another), idempotence, switching back."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import apply_catalog, dump_yaml, export_catalog, load_yaml
from paymux.catalog.models import Provider
from paymux.catalog.service import CatalogError, get_service, list_route_candidates, set_enabled
from paymux.routing.models import RouteCandidate, RouteSwitch
from paymux.routing.switch import list_switches, switch_back, switch_provider


def _provider(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": code.upper(),
        "protocol": "jsonhttp",
        "config": {"url": f"https://{code}.example/"},
    }


def catalog() -> dict[str, Any]:
    return {
        "providers": [_provider("a"), _provider("b"), _provider("c")],
        "services": [
            {
                "code": "s1",
                "name": "S1",
                "currency": "RUB",
                "route": {
                    "candidates": [
                        {"provider": "a", "code": "A-S1", "max_amount": "500.00", "weight": 2},
                        {"provider": "b", "code": "B-S1"},
                    ]
                },
            },
            {
                "code": "s2",
                "name": "S2",
                "currency": "RUB",
                "route": {
                    "candidates": [
                        {"provider": "a", "code": "A-S2", "priority": 1},
                        {"provider": "b", "code": "B-S2", "priority": 2},
                        {"provider": "c", "code": "C-S2", "priority": 3, "enabled": False},
                    ]
                },
            },
            {
                "code": "s3",
                "name": "S3",
                "currency": "RUB",
                "route": {
                    "candidates": [
                        {"provider": "b", "code": "B-S3"},
                    ]
                },
            },
        ],
    }


async def route(session: AsyncSession, service: str) -> list[str]:
    """A service's candidates in list order: "provider code priority", plus " off" when disabled."""
    svc = await get_service(session, service)
    out = []
    for c in await list_route_candidates(session, svc.id):
        provider = await session.get(Provider, c.provider_id)
        assert provider is not None
        out.append(f"{provider.code} {c.provider_service_code} {c.priority}" + ("" if c.enabled else " off"))
    return out


async def switch_count(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(RouteSwitch))).scalar_one()


@pytest.fixture
async def routes(session: AsyncSession) -> AsyncSession:
    await apply_catalog(session, catalog(), "test")
    await session.commit()
    return session


async def test_switch_one_service_off_a_provider(routes: AsyncSession) -> None:
    session = routes
    result = await switch_provider(session, "a", None, "s1", "ops")
    await session.commit()
    assert result.changed and result.candidates_changed == 1
    assert result.services == ["s1"]
    assert result.switch_id is not None
    assert await route(session, "s1") == ["a A-S1 1 off", "b B-S1 2"]
    assert await route(session, "s2") == ["a A-S2 1", "b B-S2 2", "c C-S2 3 off"]
    row = await session.get(RouteSwitch, result.switch_id)
    assert row is not None
    assert (row.candidates_changed, row.actor, row.onto_provider_id) == (1, "ops", None)
    assert row.service_id == (await get_service(session, "s1")).id
    svc = await get_service(session, "s1")
    disabled = (await list_route_candidates(session, svc.id))[0]
    assert disabled.switched_by_id == result.switch_id


async def test_switch_every_service_onto_another_provider(routes: AsyncSession) -> None:
    session = routes
    result = await switch_provider(session, "a", "c", None, "ops")
    await session.commit()
    # s1: a disabled, c added with a's code and priority; s2: a disabled, c enabled and moved up to 1
    assert result.candidates_changed == 4
    assert result.services == ["s1", "s2"]
    assert await route(session, "s1") == ["a A-S1 1 off", "b B-S1 2", "c A-S1 1"]
    assert await route(session, "s2") == ["a A-S2 1 off", "b B-S2 2", "c C-S2 1"]
    assert await route(session, "s3") == ["b B-S3 1"]
    s1 = await get_service(session, "s1")
    added = (await list_route_candidates(session, s1.id))[2]
    assert (added.max_amount, added.weight, added.switched_by_id) == (50000, 2, result.switch_id)
    assert [s.id for s in await list_switches(session)] == [result.switch_id]


async def test_onto_provider_already_ahead_keeps_its_priority(routes: AsyncSession) -> None:
    session = routes
    result = await switch_provider(session, "b", "a", "s2", "ops")
    assert result.candidates_changed == 1  # only b disabled; a is already enabled at priority 1
    assert await route(session, "s2") == ["a A-S2 1", "b B-S2 2 off", "c C-S2 3 off"]


async def test_switch_is_idempotent(routes: AsyncSession) -> None:
    session = routes
    first = await switch_provider(session, "a", "c", None, "ops")
    await session.commit()
    before = {s: await route(session, s) for s in ("s1", "s2", "s3")}
    second = await switch_provider(session, "a", "c", None, "ops")
    await session.commit()
    assert first.changed and not second.changed
    assert (second.switch_id, second.candidates_changed, second.services) == (None, 0, [])
    assert "nothing to change" in second.message
    assert {s: await route(session, s) for s in ("s1", "s2", "s3")} == before
    assert await switch_count(session) == 1
    one = await switch_provider(session, "a", None, "s1", "ops")
    assert not one.changed


async def test_switch_back_re_enables_what_the_switch_disabled(routes: AsyncSession) -> None:
    session = routes
    await switch_provider(session, "b", None, "s3", "ops")  # another switch, must stay as it is
    result = await switch_provider(session, "a", "c", None, "ops")
    await session.commit()
    assert result.switch_id is not None
    back = await switch_back(session, result.switch_id, "ops")
    await session.commit()
    assert back.candidates_changed == 4
    assert back.services == ["s1", "s2"]
    assert "restored 4 route candidate(s)" in back.message
    # exactly as before the switch: a enabled again, c's added candidate gone, c's own one disabled
    # again at its priority; the other switch stays
    assert await route(session, "s1") == ["a A-S1 1", "b B-S1 2"]
    assert await route(session, "s2") == ["a A-S2 1", "b B-S2 2", "c C-S2 3 off"]
    assert await route(session, "s3") == ["b B-S3 1 off"]
    marked = select(func.count()).where(RouteCandidate.switched_by_id == result.switch_id)
    assert (await session.execute(marked)).scalar_one() == 0
    again = await switch_back(session, result.switch_id, "ops")
    assert not again.changed and "nothing to change" in again.message
    # the same switch can be made again
    assert (await switch_provider(session, "a", None, None, "ops")).candidates_changed == 2


async def test_switch_errors(routes: AsyncSession) -> None:
    session = routes
    with pytest.raises(CatalogError, match="unknown provider 'zz'"):
        await switch_provider(session, "zz", None, None, "ops")
    with pytest.raises(CatalogError, match="unknown provider 'zz'"):
        await switch_provider(session, "a", "zz", None, "ops")
    with pytest.raises(CatalogError, match="unknown service 'zz'"):
        await switch_provider(session, "a", None, "zz", "ops")
    with pytest.raises(CatalogError, match="onto itself"):
        await switch_provider(session, "a", "a", None, "ops")
    with pytest.raises(CatalogError, match="provider 'a' is not a route candidate of service 's3'"):
        await switch_provider(session, "a", "b", "s3", "ops")
    await set_enabled(session, "provider", "c", False)
    with pytest.raises(CatalogError, match="provider 'c' is disabled"):
        await switch_provider(session, "a", "c", None, "ops")
    with pytest.raises(CatalogError, match="unknown route switch #999"):
        await switch_back(session, 999, "ops")
    assert await switch_count(session) == 0


async def test_reapplying_the_catalog_keeps_a_switch(routes: AsyncSession) -> None:
    session = routes
    result = await switch_provider(session, "a", "c", None, "ops")
    await session.commit()
    report = await apply_catalog(session, catalog(), "test")
    assert not report.changed, report.lines()
    assert await route(session, "s1") == ["a A-S1 1 off", "b B-S1 2", "c A-S1 1"]
    # export -> apply changes nothing either
    exported = await export_catalog(session)
    assert not (await apply_catalog(session, load_yaml(dump_yaml(exported)), "test")).changed
    # a file that changes a switched candidate otherwise wins for that candidate
    data = catalog()
    data["services"][0]["route"]["candidates"][0]["code"] = "A-S1-NEW"
    report = await apply_catalog(session, data, "test")
    assert report.lines() == ["updated service s1"]
    assert (await route(session, "s1"))[0] == "a A-S1-NEW 1"
    await session.commit()

    # switching back restores the rest (a's s1 candidate, changed by the file since, stays as the file
    # made it): the routes are the declared ones, and applying the file changes nothing
    assert result.switch_id is not None
    back = await switch_back(session, result.switch_id, "ops")
    assert "1 changed since the switch left as they are" in back.message
    report = await apply_catalog(session, data, "test")
    assert report.lines() == []
    assert await route(session, "s1") == ["a A-S1-NEW 1", "b B-S1 2"]
    assert await route(session, "s2") == ["a A-S2 1", "b B-S2 2", "c C-S2 3 off"]


async def test_switch_in_the_catalog_file(session: AsyncSession) -> None:
    data = catalog()
    data["switches"] = [{"off": "a", "onto": "b", "service": "s1"}]
    first = await apply_catalog(session, data, "file")
    await session.commit()
    assert [i.line() for i in first.items if i.kind == "switch"] == ["updated switch off a onto b service s1"]
    assert await route(session, "s1") == ["a A-S1 1 off", "b B-S1 1"]
    second = await apply_catalog(session, data, "file")
    assert not second.changed, second.lines()
    assert await switch_count(session) == 1
    switches = await list_switches(session)
    assert switches[0].actor == "file"
