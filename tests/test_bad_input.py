"""Bad input is refused with a 4xx, never answered 500: ids beyond 64 bits, control characters in
identifiers and filters, unknown catalog filters, non-ASCII digits against catalog patterns, external
ids with ``/``; on SQLite and PostgreSQL alike (the back office answers a readable page)."""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, _IncludedRouter
from pydantic import BaseModel, TypeAdapter

from harness import BASE_CATALOG, hub_env
from paymux.api.app import create_app
from paymux.api.params import MAX_ID, control_characters, parse_id
from paymux.errors import PROBLEM_BASE
from test_backoffice_support import bo_app, login

TOO_BIG = 2**63  # one more than the largest id
A = "/api/v1/admin"
PAY = "/api/v1/payments"


def problem(r: httpx.Response, status: int = 422, slug: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    return body


# --- every integer a route accepts is bounded -------------------------------------------------------------


def _routes() -> list[APIRoute]:
    routes: list[Any] = []
    for r in create_app().router.routes:
        if isinstance(r, _IncludedRouter):
            routes.extend(r.effective_route_contexts())
        elif isinstance(r, APIRoute):
            routes.append(r)
    return routes


def _fields(dependant: Any) -> Iterator[Any]:
    for kind in ("path_params", "query_params", "header_params", "cookie_params", "body_params"):
        yield from getattr(dependant, kind)
    for d in dependant.dependencies:
        yield from _fields(d)


def _unbounded(schema: Any, defs: dict[str, Any], where: str, seen: set[str]) -> Iterator[str]:
    """Paths of the integers in a JSON schema that may be below -2^63 or above 2^63-1."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _unbounded(item, defs, f"{where}[{i}]", seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.split("/")[-1] not in seen:
        name = ref.split("/")[-1]
        seen.add(name)
        yield from _unbounded(defs[name], defs, f"{where}->{name}", seen)
    if schema.get("type") == "integer":
        high = schema.get("maximum", schema.get("exclusiveMaximum", MAX_ID + 1))
        low = schema.get("minimum", schema.get("exclusiveMinimum", -MAX_ID - 2))
        if high > MAX_ID or low < -MAX_ID - 1:
            yield where
    for key, value in schema.items():
        if key != "$defs" and isinstance(value, dict | list):
            yield from _unbounded(value, defs, f"{where}.{key}", seen)


def _schema_unbounded(annotation: Any, where: str) -> list[str]:
    schema = TypeAdapter(annotation).json_schema()
    return list(_unbounded(schema, schema.get("$defs", {}), where, set()))


def test_every_integer_a_route_takes_fits_64_bits() -> None:
    """Path, query, form and body integers of every route (API, back office, gateways) are bounded, so
    a number beyond 64 bits is refused before it reaches the database (which would fail: 500)."""
    routes = _routes()
    assert len(routes) > 150
    loose = []
    for route in routes:
        for f in _fields(route.dependant):
            info = f.field_info
            annotation = (
                typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            loose += [
                f"{sorted(route.methods)} {route.path_format} {p}"
                for p in _schema_unbounded(annotation, f.name)
            ]
    assert not loose, "\n".join(loose)


def test_every_request_model_bounds_its_integers() -> None:
    """Models read from raw bodies (the catalog file, register templates, gateways...) too."""
    import importlib
    import pkgutil

    from pydantic_settings import BaseSettings

    import paymux

    for m in pkgutil.walk_packages(paymux.__path__, "paymux."):
        if not any(part in m.name for part in (".migrations", ".bench", ".emulators", ".demo")):
            importlib.import_module(m.name)

    def subclasses(c: type) -> Iterator[type]:
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    loose = []
    for model in set(subclasses(BaseModel)):
        name = f"{model.__module__}.{model.__qualname__}"
        if not name.startswith("paymux.") or issubclass(model, BaseSettings) or "emulators" in name:
            continue
        if name.endswith("Out") or "Generic" in name:  # answers, not requests
            continue
        loose += _schema_unbounded(model, name)
    assert not loose, "\n".join(loose)


def test_parse_id_takes_ascii_digits_in_the_id_range_only() -> None:
    assert parse_id("42") == 42 and parse_id(" 7 ") == 7 and parse_id(str(MAX_ID)) == MAX_ID
    for text in (None, "", "0", "-1", str(TOO_BIG), "1" * 30, "²", "١٢", "１２", "1e3", "abc"):
        assert parse_id(text) is None, text
    assert control_characters("/a\x00b", b"") == "path"
    assert control_characters("/a", b"q=%00") == "query" and control_characters("/a", b"q=%C2%85") == "query"
    assert control_characters("/a", b"q=%E2%82%AC&r=%20") is None


# --- over HTTP, on both databases ---------------------------------------------------------------------------


async def test_ids_beyond_64_bits_are_refused_in_paths_queries_and_bodies(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        http, admin = env.http, env.admin
        for r in (
            await http.get(f"{PAY}/{TOO_BIG}", headers=env.headers()),
            await http.post(f"{PAY}/{TOO_BIG}/cancel", headers=env.headers()),
            await http.get(f"{PAY}/0", headers=env.headers()),
            await http.get(f"{A}/payments/{TOO_BIG}", headers=admin),
            await http.get(f"{A}/payments?offset={TOO_BIG}", headers=admin),
            await http.get(f"{A}/payments?offset=-1", headers=admin),
            await http.post(f"{A}/payment-orders/export", json={"ids": [10**21]}, headers=admin),
            await http.get(f"{A}/payment-orders/{TOO_BIG}", headers=admin),
            await http.get(f"{A}/reconciliations/{TOO_BIG}/lines?after_id={TOO_BIG}", headers=admin),
            await http.get(f"{A}/register-tasks?before_id={TOO_BIG}", headers=admin),
            await http.post(f"{A}/switches/{TOO_BIG}/revert", headers=admin),
            await http.get(f"{A}/tariff-proposals/{10**30}", headers=admin),
            await http.get(f"{A}/wallets/contract-proposals/{TOO_BIG}", headers=admin),
            await http.get(f"{A}/wallets/customers/{TOO_BIG}/contract-terms", headers=admin),
            await http.post(
                f"{A}/wallets/cashback-proposals",
                json={"merchant": 10**21, "issuer": "rub", "mode": "fixed", "fixed": "1"},
                headers=admin,
            ),
        ):
            problem(r, 422, "invalid-request")
        # the largest id is a valid one, just not found
        problem(await http.get(f"{PAY}/{MAX_ID}", headers=env.headers()), 404, "not-found")
        problem(await http.get(f"{A}/payments/{MAX_ID}", headers=admin), 404, "not-found")
        # keys and tokens are named by id or prefix: a number beyond 64 bits names none
        problem(await http.post(f"{A}/channels/term/keys/{TOO_BIG}/revoke", headers=admin), 404)
        problem(await http.post(f"{A}/admin-tokens/{TOO_BIG}/revoke", headers=admin), 404)
        ok = await http.get(f"{A}/payments?offset={MAX_ID}", headers=admin)
        assert ok.status_code == 200 and ok.json()["items"] == [], ok.text
        # an id the catalog file gives for a 32-bit column
        service = copy.deepcopy(BASE_CATALOG["services"][0])
        service["route"]["candidates"][0]["weight"] = 2**31
        problem(await http.put(f"{A}/services/topup", json=service, headers=admin), 422, "invalid-request")


async def test_control_characters_are_refused_in_identifiers_and_filters(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        http, admin = env.http, env.admin
        for bad in ("a\x00b", "a\x1fb", "a\x7fb", "a\x85b"):
            body = problem(await env.pay(external_id=bad), 422, "invalid-request")
            assert "control characters" in body["detail"]
            problem(await env.pay(account="900123456\x00"), 422, "invalid-request")
            problem(await env.pay(fields={"x": bad}), 422, "invalid-request")
        for url in (
            f"{PAY}/by-external-id/a%00b",
            f"{PAY}/by-external-id/a%C2%85b",
            f"{A}/payments?external_id=a%00b",
            f"{A}/payments?account=%0A",
            f"{A}/providers/p%001",
            f"{A}/tariffs?service=a%00",
            f"{A}/reconciliations?provider=%00",
        ):
            body = problem(await http.get(url, headers=admin if url.startswith(A) else env.headers()), 422)
            assert body["type"] == PROBLEM_BASE + "control-characters", body
        r = await http.post(
            f"{A}/providers/p1/topups",
            json={"amount": "1.00", "currency": "RUB", "reference": "ref\x00"},
            headers=admin,
        )
        problem(r, 422, "invalid-request")
        r = await http.post(f"{A}/switches", json={"off": "p1\x00"}, headers=admin)
        problem(r, 422, "invalid-request")
        provider = {**BASE_CATALOG["providers"][1], "name": "Provider\x00two"}
        problem(await http.put(f"{A}/providers/p2", json=provider, headers=admin), 422, "invalid-request")
        # text beyond ASCII is no control character
        assert (await http.get(f"{A}/payments?account=%E2%82%AC", headers=admin)).status_code == 200


async def test_unknown_service_or_provider_in_tariff_filters_is_a_422(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        http, admin = env.http, env.admin
        problem(await http.get(f"{A}/tariffs?service=no-such-service", headers=admin), 422, "unknown-service")
        problem(await http.get(f"{A}/tariffs?provider=no-such", headers=admin), 422, "unknown-provider")
        r = await http.get(f"{A}/tariffs?service=topup&provider=p1", headers=admin)
        assert r.status_code == 200, r.text


async def test_catalog_patterns_take_ascii_digits_only(db_url: str) -> None:
    catalog = copy.deepcopy(BASE_CATALOG)
    catalog["services"][0]["fields"] = [{"name": "contract", "pattern": r"\d{4}", "required": False}]
    async with hub_env(db_url, catalog=catalog, run_workers=False) as env:
        for account in ("9١٢٣٤٥٦٧٨٩", "９００１２３４５６７", "900123456७"):
            body = problem(await env.pay(account=account), 422)
            assert "account" in body["detail"], body
        body = problem(await env.pay(fields={"contract": "١٢٣٤"}), 422, "invalid-field")
        assert (await env.pay(fields={"contract": "1234"})).status_code == 201
        check = await env.http.post(
            "/api/v1/checks",
            json={
                "service": "topup",
                "account": "９００１２３４５６７",
                "amount": "10.00",
                "currency": "RUB",
            },
            headers=env.headers(),
        )
        problem(check, 422)
        # a pattern that asks for Unicode semantics is refused when the catalog is applied
        service = copy.deepcopy(BASE_CATALOG["services"][0])
        service["account_pattern"] = r"(?u)^\d{10}$"
        r = await env.http.put(f"{A}/services/topup", json=service, headers=env.admin)
        problem(r, 422)


async def test_every_accepted_external_id_can_be_read_back(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        for ext in ("a/b", "/lead", "trail/", "a//b", "..", ".", "a?b#c", "100%", "é ü", "a+b"):
            created = await env.pay(external_id=ext)
            assert created.status_code == 201, (ext, created.text)
            quoted = "".join(
                c if c.isalnum() and c.isascii() else f"%{b:02X}" for c in ext for b in c.encode()
            )
            r = await env.http.get(f"{PAY}/by-external-id/{quoted}", headers=env.headers())
            assert r.status_code == 200, (ext, r.text)
            assert r.json()["id"] == created.json()["id"] and r.json()["external_id"] == ext


async def test_back_office_answers_bad_ids_and_filters_with_a_page(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        await login(bo.http, "root")
        for url in (
            f"/backoffice/payments/{TOO_BIG}",
            f"/backoffice/users/{TOO_BIG}",
            "/backoffice/users/0",
            f"/backoffice/settlement/orders/{10**25}",
            "/backoffice/payments?q=%00",
            "/backoffice/users/1%00",
        ):
            r = await bo.http.get(url)
            assert r.status_code == 422, (url, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("text/html") and "Invalid request" in r.text, url
        for url in (
            f"/backoffice/users?page={TOO_BIG}",
            "/backoffice/users?page=²",
            "/backoffice/users?role=²",
            f"/backoffice/users?role={TOO_BIG}",
            f"/backoffice/payments?id={TOO_BIG}",
        ):
            r = await bo.http.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
        r = await bo.http.get("/backoffice/settlement/orders")
        token = r.text.split('name="csrf_token" value="')[1].split('"')[0] if "csrf_token" in r.text else ""
        r = await bo.http.post(
            "/backoffice/settlement/orders/export",
            data={"csrf_token": token, "ids": [str(TOO_BIG), "²"], "format": "pain001"},
        )
        assert r.status_code < 500, r.text[:300]


@pytest.mark.parametrize("value", ["²", "١٢٣"])
def test_signing_timestamp_takes_ascii_digits_only(value: str) -> None:
    from paymux.auth.signing import SignatureError, verify

    with pytest.raises(SignatureError):
        verify(
            "hmac",
            timestamp=value,
            signature="x",
            body=b"",
            hmac_secret="s" * 32,
            rsa_public_key=None,
            max_skew=9,
        )


async def test_a_value_the_database_refuses_is_a_422_not_a_500(db_url: str) -> None:
    """Free text (a tariff's note, a catalog name) is not checked for control characters where it comes
    in: PostgreSQL cannot store a NUL, and SQLite refuses it alike; answered 422 ``invalid-value``
    (never 500), and nothing is stored."""
    async with hub_env(db_url, run_workers=False) as env:
        tariff = {**BASE_CATALOG["tariffs"][0], "note": "a\x00b", "effective_from": "2027-01-01T00:00:00Z"}
        before = (await env.http.get(f"{A}/tariffs", headers=env.admin)).json()
        r = await env.http.post(f"{A}/tariffs", json=tariff, headers=env.admin)
        problem(r, 422, "invalid-value")
        assert (await env.http.get(f"{A}/tariffs", headers=env.admin)).json() == before
        r = await env.http.post(f"{A}/tariffs", json={**tariff, "note": "a\tb"}, headers=env.admin)
        assert r.status_code == 201, r.text  # other control characters in free text are kept
