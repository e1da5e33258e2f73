"""The request edge over real HTTP: request ids (answers, problem documents, log lines), Cache-Control,
bearer challenges on 401, body limits per route class (413 before the body is read), and the bounds
on a catalog document."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from harness import Env, hub_env
from paymux.errors import PROBLEM_BASE
from paymux.payments import service as payment_service
from paymux.request_id import LOG_FORMAT

GENERATED = re.compile(r"[0-9a-f]{24}")
# distinct small limits, to tell the route classes apart
LIMITS = {
    "body_limit_channel": 1000,
    "body_limit_admin": 2000,
    "body_limit_catalog": 3000,
    "body_limit_upload": 4000,
    "body_limit_backoffice": 5000,
    "body_limit_gateway": 600,
}


def problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status, body
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def payment(**over: Any) -> dict[str, Any]:
    body = {"external_id": "e-1", "service": "topup", "account": "9001234567", "amount": "10.00"}
    return {**body, "currency": "RUB", **over}


# --- request id -------------------------------------------------------------------------------------------


async def test_every_answer_carries_a_request_id_and_every_problem_names_it(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        created = await env.pay()
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        answers = [
            created,
            await env.http.get("/health"),
            await env.http.get(f"/api/v1/payments/{pid}", headers=env.headers()),
            await env.http.get(f"/api/v1/admin/payments/{pid}", headers=env.admin),
            await env.http.get("/backoffice/login"),
            await env.http.get("/openapi.json"),
        ]
        problems = [
            problem(
                await env.http.post("/api/v1/payments", json={}, headers=env.headers()),
                422,
                "invalid-request",
            ),
            problem(await env.http.get("/api/v1/payments/999", headers=env.headers()), 404, "not-found"),
            problem(await env.http.get("/api/v1/payments/1"), 401, "unauthorized"),
            problem(await env.http.post("/api/v1/payments", content=b"{}"), 401, "unauthorized"),
        ]
        assert all(p["request_id"] for p in problems)
        ids = [r.headers["x-request-id"] for r in answers] + [p["request_id"] for p in problems]
        assert all(GENERATED.fullmatch(i) for i in ids), ids
        assert len(set(ids)) == len(ids)

        # a well-formed id sent by the client is kept, on both paths and in problems
        for sent in ("trace-42", "a.b:c/d@e+f=g_h", "x" * 128):
            r = await env.http.post(
                "/api/v1/payments", json={}, headers={**env.headers(), "X-Request-ID": sent}
            )
            assert r.headers["x-request-id"] == sent and r.json()["request_id"] == sent
            r = await env.http.get("/health", headers={"X-Request-ID": sent})
            assert r.headers["x-request-id"] == sent
        # anything else is replaced by a new one
        for sent in ("x" * 129, "two words", "semi;colon", 'quote"', ""):
            for r in (
                await env.http.get("/health", headers={"X-Request-ID": sent}),
                await env.http.post(
                    "/api/v1/payments", json={}, headers={**env.headers(), "X-Request-ID": sent}
                ),
            ):
                assert GENERATED.fullmatch(r.headers["x-request-id"]), (sent, r.headers)


async def test_the_client_id_is_ignored_when_so_configured(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, request_id_from_client=False) as env:
        for r in (
            await env.http.get("/health", headers={"X-Request-ID": "mine"}),
            await env.http.post(
                "/api/v1/payments", json={}, headers={**env.headers(), "X-Request-ID": "mine"}
            ),
        ):
            assert GENERATED.fullmatch(r.headers["x-request-id"])


def _unhandled(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "routed"])
async def test_a_500_shows_the_request_id_in_its_answer_and_log_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, lean: bool
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the service broke")

    async with hub_env(db_url, run_workers=False) as env:
        monkeypatch.setattr(payment_service, "accept" if lean else "get_payment", broken)
        for sent in ("support-ticket-77", None):
            caplog.clear()
            headers = {**env.headers(), **({"X-Request-ID": sent} if sent else {})}
            with caplog.at_level(logging.INFO):
                if lean:
                    r = await env.http.post("/api/v1/payments", json=payment(), headers=headers)
                else:
                    r = await env.http.get("/api/v1/payments/1", headers=headers)
            body = problem(r, 500, "internal")
            rid = r.headers["x-request-id"]
            assert rid == (sent or rid) and body["request_id"] == rid
            assert "the service broke" not in r.text
            errors = _unhandled(caplog)
            assert len(errors) == 1, [e.getMessage() for e in errors]  # logged once, by the app
            (record,) = errors
            assert record.request_id == rid  # type: ignore[attr-defined]
            assert record.exc_info is not None and "the service broke" in str(record.exc_info[1])
            line = logging.Formatter(LOG_FORMAT).format(record)  # what `paymux serve` writes
            assert f"[{rid}]" in line and "unhandled error" in line


# --- Cache-Control and challenges -------------------------------------------------------------------------


async def test_nothing_but_static_assets_may_be_stored_by_caches(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        created = await env.pay()
        pid = created.json()["id"]
        for r in (
            created,
            await env.pay(external_id="ext-1"),  # a repeat: 200 with the same payment
            await env.http.post("/api/v1/payments", json={}, headers=env.headers()),
            await env.http.get(f"/api/v1/payments/{pid}", headers=env.headers()),
            await env.http.get("/api/v1/payments/by-external-id/ext-1", headers=env.headers()),
            await env.http.get(f"/api/v1/admin/payments/{pid}", headers=env.admin),
            await env.http.get("/api/v1/admin/payments", headers=env.admin),
            await env.http.get("/api/v1/admin/catalog", headers=env.admin),
            await env.http.get("/api/v1/payments/1"),
            await env.http.get("/backoffice/login"),
            await env.http.get("/health"),
        ):
            assert r.headers.get("cache-control") == "no-store", (r.request.url, r.headers)
        css = await env.http.get("/backoffice/static/bo.css")
        assert css.status_code == 200 and css.headers["cache-control"] == "public, max-age=3600"


async def test_every_401_of_the_api_carries_a_bearer_challenge(db_url: str) -> None:
    bare = 'Bearer realm="paymux"'
    refused = re.compile(r'Bearer realm="paymux", error="invalid_token", error_description="[^"]+"')
    async with hub_env(db_url, run_workers=False) as env:
        bad = {"Authorization": "Bearer pmx_ch_not-a-key"}
        cases = [
            (await env.http.post("/api/v1/payments", json=payment()), bare),
            (await env.http.post("/api/v1/payments", json=payment(), headers=bad), refused),
            (await env.http.get("/api/v1/payments/1"), bare),
            (await env.http.get("/api/v1/payments/1", headers=bad), refused),
            (await env.http.post("/api/v1/checks", json={}, headers={"Authorization": "Basic eDp5"}), bare),
            (await env.http.get("/api/v1/admin/providers"), bare),
            (
                await env.http.get("/api/v1/admin/providers", headers={"Authorization": "Bearer pmx_adm_x"}),
                refused,
            ),
            (await env.http.get("/api/v1/admin/reports/turnover", headers=bad), refused),
        ]
        for r, expected in cases:
            assert r.status_code == 401, r.text
            challenge = r.headers["www-authenticate"]
            if isinstance(expected, str):
                assert challenge == expected, (r.request.url, challenge)
            else:
                assert expected.fullmatch(challenge), (r.request.url, challenge)


# --- body limits ------------------------------------------------------------------------------------------


async def raw_request(base: str, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (and ``body``) on a new connection, read one answer (10 s at most)."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            content = await reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, content
    finally:
        writer.close()


def head(
    method: str,
    path: str,
    length: int,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> str:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: test",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def limited(db_url: str) -> AsyncIterator[Env]:
    async with hub_env(db_url, run_workers=False, **LIMITS) as env:
        yield env


async def test_a_declared_body_over_its_route_limit_is_refused_before_it_is_sent(limited: Env) -> None:
    env = limited
    auth = env.headers()["Authorization"]
    admin = env.admin["Authorization"]
    routes = [
        ("/api/v1/payments", "channel", {"Authorization": auth}),  # the lean path
        ("/api/v1/payments/1/cancel", "channel", {"Authorization": auth}),
        ("/api/v1/checks", "channel", {}),
        ("/api/v1/admin/tariffs", "admin", {"Authorization": admin}),
        ("/api/v1/admin/catalog", "catalog", {"Authorization": admin}),
        ("/api/v1/admin/bank-statements", "upload", {"Authorization": admin}),
        ("/api/v1/admin/providers/p1/reconciliations", "upload", {"Authorization": admin}),
        ("/osmp/qiwi", "gateway", {}),
        ("/some/other/route", "admin", {}),
    ]
    for path, kind, extra in routes:
        limit = LIMITS[f"body_limit_{kind}"]
        # 100 MB announced, not one byte sent: the answer comes at once
        status, headers, content = await raw_request(env.base, head("POST", path, 100_000_000, headers=extra))
        assert status == 413, (path, content)
        assert headers["content-type"].startswith("application/problem+json")
        assert headers["cache-control"] == "no-store" and GENERATED.fullmatch(headers["x-request-id"])
        body = httpx.Response(413, content=content).json()
        assert body["type"] == PROBLEM_BASE + "body-too-large" and body["limit"] == limit, (path, body)
        assert body["request_id"] == headers["x-request-id"]
        # one byte over is refused as well
        status, _, _ = await raw_request(env.base, head("POST", path, limit + 1))
        assert status == 413, path
    # the back office answers with a page
    status, headers, content = await raw_request(
        env.base, head("POST", "/backoffice/login", 100_000_000, "application/x-www-form-urlencoded")
    )
    assert status == 413 and headers["content-type"].startswith("text/html")
    assert b"larger than the server accepts" in content and headers["cache-control"] == "no-store"
    assert (await raw_request(env.base, head("POST", "/backoffice/settlement/statements", 4001)))[0] == 413
    # and after all that, the hub still answers
    assert (await env.pay()).status_code == 201


async def chunks(size: int, step: int = 256) -> AsyncIterator[bytes]:
    for start in range(0, size, step):
        yield b"x" * min(step, size - start)


async def test_a_chunked_body_is_refused_once_it_goes_over(limited: Env) -> None:
    env = limited
    for path, kind, headers in [
        ("/api/v1/payments", "channel", env.headers()),
        ("/api/v1/admin/tariffs", "admin", env.admin),  # the framework reads a JSON body
        ("/api/v1/admin/catalog", "catalog", env.admin),  # the endpoint reads it
        ("/api/v1/admin/bank-statements", "upload", env.admin),
    ]:
        limit = LIMITS[f"body_limit_{kind}"]
        r = await env.http.post(
            path, content=chunks(limit + 1), headers={"Content-Type": "application/json", **headers}
        )
        assert r.request.headers.get("transfer-encoding") == "chunked"
        body = problem(r, 413, "body-too-large")
        assert body["limit"] == limit, path
    r = await env.http.post(
        "/backoffice/login",
        content=chunks(6000),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413 and "larger than the server accepts" in r.text
    # a chunked body within the limit goes through
    r = await env.http.post("/api/v1/payments", content=chunks(500), headers=env.headers())
    assert r.status_code == 422, r.text


async def test_each_route_class_takes_bodies_up_to_its_own_limit(limited: Env) -> None:
    env = limited
    # over the admin API's 2000 bytes, within the catalog's 3000: read, and found wanting
    catalog = "providers: []\n" + "# " + "x" * 2500 + "\n"
    r = await env.http.post("/api/v1/admin/catalog?dry_run=true", content=catalog, headers=env.admin)
    assert r.status_code == 200, r.text
    # within the uploads' 4000: the statement is read (and is not one)
    r = await env.http.post(
        "/api/v1/admin/bank-statements", content=b"<x>" + b" " * 3500 + b"</x>", headers=env.admin
    )
    problem(r, 422, "invalid-statement")
    # the admin API's other routes stop at 2000
    big = {"kind": "fee", "currency": "RUB", "rule": {"fixed": "1.00"}, "note": "x" * 2100}
    problem(await env.http.post("/api/v1/admin/tariffs", json=big, headers=env.admin), 413, "body-too-large")


# --- catalog documents ------------------------------------------------------------------------------------


async def test_a_catalog_document_is_bounded_before_it_is_validated(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, catalog_max_items=50) as env:
        url = "/api/v1/admin/catalog?dry_run=true"
        empty = "services:\n" + "- {}\n" * 51  # the shape of the attack: many empty items
        body = problem(await env.http.post(url, content=empty, headers=env.admin), 413, "catalog-too-large")
        assert "services: 51 items" in body["detail"] and "at most 50" in body["detail"]
        # a "billion laughs": 10 levels of 10 aliases stand for 10^10 values in a few hundred bytes
        levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        levels += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 10)]
        bomb = "providers: []\nextra:\n" + "\n".join("  " + line for line in levels) + "\n"
        body = problem(await env.http.post(url, content=bomb, headers=env.admin), 413, "catalog-too-large")
        assert "aliases" in body["detail"]
        # within the bounds: validated, and its problems listed (the first 50 of them)
        many = "services:\n" + "- {code: s%d}\n" * 50 % tuple(range(50))
        body = problem(await env.http.post(url, content=many, headers=env.admin), 422, "invalid-catalog")
        lines = body["detail"].splitlines()
        assert lines[0] == "invalid catalog:" and len(lines) == 52, lines
        more = re.fullmatch(r"\.\.\. and (\d+) more problems", lines[-1])
        assert more and int(more.group(1)) >= 50, lines[-1]  # every item lacks several fields
        # aliases used sparingly are fine
        shared = (
            "providers:\n"
            "- {code: p9, name: P9, protocol: jsonhttp, config: &cfg {url: 'http://127.0.0.1:9'}}\n"
            "- {code: p8, name: P8, protocol: jsonhttp, config: *cfg}\n"
        )
        r = await env.http.post(url, content=shared, headers=env.admin)
        assert r.status_code == 200 and r.json()["summary"].startswith("2 created"), r.text
