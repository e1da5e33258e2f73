"""Throttling failed authentication: the sliding windows, then the channel API (lean path and routed),
the admin API, the back-office login and the OSMP gateway over real HTTP."""

from __future__ import annotations

import copy
import secrets
from typing import Any

import httpx
import pytest

from harness import BASE_CATALOG, Env, hub_env
from paymux.auth import throttle as throttle_module
from paymux.auth.throttle import AuthThrottle, SlidingWindow, key_prefix
from paymux.errors import PROBLEM_BASE
from test_backoffice_support import PASSWORD, add_user, bo_app, login

LIMITS = {"auth_failures_per_key": 3, "auth_failures_per_address": 5, "auth_failure_window_seconds": 60}


def wrong_key(prefix: str = "pmx_ch_AAAAA") -> str:
    return prefix + secrets.token_urlsafe(24)


def refused(r: httpx.Response) -> dict[str, Any]:
    """Assert ``r`` is the 429 of the throttle; return its problem document."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    body: dict[str, Any] = r.json()
    assert body["type"] == PROBLEM_BASE + "too-many-failures" and body["status"] == 429
    assert body["request_id"] == r.headers["x-request-id"]
    return body


# --- the windows ------------------------------------------------------------------------------------------


def test_a_window_refuses_the_key_at_its_limit_until_the_oldest_failure_leaves_it() -> None:
    w = SlidingWindow(limit=3, window=60)
    for t in (0.0, 10.0, 20.0):
        assert w.wait("a", t) == 0
        w.add("a", t)
    assert w.wait("a", 30.0) == pytest.approx(30.0)  # the failure at 0 leaves at 60
    assert w.wait("b", 30.0) == 0  # another key is not concerned
    assert w.wait("a", 60.0) == 0  # two failures within the window now
    w.add("a", 61.0)
    assert w.wait("a", 62.0) == pytest.approx(8.0)  # 10, 20 and 61: the one at 10 leaves at 70


def test_the_throttle_counts_address_and_credential_and_forgets_what_is_over() -> None:
    t = AuthThrottle(per_address=4, per_credential=2, window_seconds=60)
    assert t.idle and t.refusal("10.0.0.1", "key:x", now=0) is None
    t.failed("10.0.0.1", "key:x", now=0)
    t.failed("10.0.0.2", "key:x", now=1)
    refusal = t.refusal("10.0.0.3", "key:x", now=2)  # the credential, from anywhere
    assert refusal is not None and refusal.by == "credential" and refusal.seconds == 58
    assert t.refusal("10.0.0.1", "key:y", now=2) is None
    for n in range(3):
        t.failed("10.0.0.1", f"key:{n}", now=3)
    refusal = t.refusal("10.0.0.1", "key:new", now=4)  # the address, whatever the key
    assert refusal is not None and refusal.by == "address"
    problem = refusal.problem()
    assert problem.status == 429 and problem.headers == {"Retry-After": str(refusal.seconds)}
    assert t.refusal("10.0.0.1", "key:new", now=64) is None
    assert t.idle  # everything left the window: the hot path is back to one check


def test_vouched_secrets_are_remembered_for_a_window() -> None:
    t = AuthThrottle(per_address=1, per_credential=1, window_seconds=60)
    t.vouch("d1", now=0)
    assert t.vouched("d1", now=59) and not t.vouched("d1", now=61) and not t.vouched("d2", now=1)


def test_the_throttle_remembers_a_bounded_number_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle_module, "MAX_KEYS", 10)
    w = SlidingWindow(limit=2, window=60)
    for n in range(25):
        w.add(f"k{n}", float(n))
    assert len(w) <= 10
    assert w.wait("k24", 25.0) == 0 and len(w._events["k24"]) == 1  # the newest are kept


def test_key_prefix_is_the_stored_prefix_of_a_key() -> None:
    assert key_prefix("pmx_ch_abcdefghijkl") == "key:pmx_ch_abcde"


# --- the channel API --------------------------------------------------------------------------------------


async def pay(env: Env, key: str, external_id: str | None = None) -> httpx.Response:
    body = {
        "external_id": external_id or secrets.token_hex(6),
        "service": "topup",
        "account": "9001234567",
        "amount": "10.00",
        "currency": "RUB",
    }
    return await env.http.post("/api/v1/payments", json=body, headers={"Authorization": f"Bearer {key}"})


async def test_wrong_channel_keys_are_throttled_per_prefix_and_per_address(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, **LIMITS) as env:
        ok = await pay(env, env.keys["term"])  # a key that works, used before anything fails
        assert ok.status_code == 201, ok.text
        for _ in range(3):  # one prefix, three different guesses: each checked, each refused
            r = await pay(env, wrong_key())
            assert r.status_code == 401, r.text
        body = refused(await pay(env, wrong_key()))  # the fourth with that prefix is not checked
        assert "credential" in body["detail"]
        r = await env.http.get(
            "/api/v1/payments/1", headers={"Authorization": f"Bearer {wrong_key()}"}
        )  # the routed endpoints count the same failures
        refused(r)
        assert (await pay(env, wrong_key("pmx_ch_BBBBB"))).status_code == 401  # the address's 4th
        assert (await pay(env, env.keys["term"])).status_code == 201  # a neighbour keeps working
        assert (await pay(env, wrong_key("pmx_ch_CCCCC"))).status_code == 401  # the 5th failure
        refused(await pay(env, wrong_key("pmx_ch_DDDDD")))  # now any unknown key from the address
        refused(await env.http.get("/api/v1/payments/1", headers={"Authorization": "Bearer whatever"}))

        # the channel that authenticated a moment ago is not locked out by its neighbour's failures
        # (its key is in this process's cache of verified keys)
        again = await pay(env, env.keys["term"])
        assert again.status_code == 201, again.text
        r = await env.http.get(f"/api/v1/payments/{again.json()['id']}", headers=env.headers("term"))
        assert r.status_code == 200, r.text
        # a key this process has not verified lately waits like any other
        refused(await pay(env, env.keys["web"]))
        # a request without a key is not an attempt: it is answered, and not counted
        r = await env.http.post("/api/v1/payments", json={})
        assert r.status_code == 401


async def test_without_failures_nothing_is_throttled(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, **{**LIMITS, "auth_failures_per_address": 2}) as env:
        for _ in range(10):  # successes are not counted
            assert (await pay(env, env.keys["term"])).status_code == 201
        assert env.hub.auth_throttle.idle


# --- the admin API ----------------------------------------------------------------------------------------


async def test_wrong_admin_tokens_are_throttled(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, **LIMITS) as env:
        assert (await env.http.get("/api/v1/admin/providers", headers=env.admin)).status_code == 200
        for _ in range(3):
            r = await env.http.get(
                "/api/v1/admin/providers", headers={"Authorization": "Bearer pmx_adm_nope"}
            )
            assert r.status_code == 401, r.text
        r = await env.http.get("/api/v1/admin/providers", headers={"Authorization": "Bearer pmx_adm_nope"})
        refused(r)
        for token in ("pmx_usr_guess1", "pmx_adm_other"):  # the address reaches its 5 failures
            r = await env.http.get("/api/v1/admin/providers", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, r.text
        refused(await env.http.get("/api/v1/admin/catalog", headers={"Authorization": "Bearer pmx_adm_x"}))
        # the token that worked a moment ago still does
        assert (await env.http.get("/api/v1/admin/providers", headers=env.admin)).status_code == 200


# --- the back-office login --------------------------------------------------------------------------------


async def test_wrong_passwords_are_throttled_per_address(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        bo.hub.auth_throttle = AuthThrottle(per_address=3, per_credential=3, window_seconds=60)
        await bo.user("ann")
        for name in ("ann", "nobody", "ann"):
            r = await login(bo.http, name, "wrong-password-1")
            assert r.status_code == 401, r.text
        r = await login(bo.http, "ann", PASSWORD)  # refused unchecked, even with the right password
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "Too many failed attempts" in r.text
        assert r.headers["cache-control"] == "no-store"
        user = await bo.db_user("ann")  # the refused attempt checked no password and counted nothing
        assert user.failed_logins == 2 and user.locked_until is None
        other_ip = httpx.ASGITransport(app=bo.app, client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=other_ip, base_url="http://testserver") as http:
            assert (await login(http, "ann", PASSWORD)).status_code == 303  # another address


async def test_a_user_that_logs_in_is_not_counted(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        bo.hub.auth_throttle = AuthThrottle(per_address=2, per_credential=2, window_seconds=60)
        await add_user(bo.hub, "bob")
        for _ in range(4):
            async with bo.client() as browser:
                assert (await login(browser, "bob", PASSWORD)).status_code == 303
        assert bo.hub.auth_throttle.idle


# --- the OSMP gateway -------------------------------------------------------------------------------------


def gateway_catalog() -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    cat["channels"].append({"code": "qiwi", "name": "QIWI", "kind": "gateway", "group": "online"})
    cat["gateways"] = [
        {
            "code": "qiwi",
            "name": "QIWI wallet",
            "services": ["topup"],
            "default_service": "topup",
            "auth": {"login": "qiwi", "password": "qiwi-secret-42"},
            "allow_ips": ["127.0.0.0/8"],
        }
    ]
    return cat


async def test_wrong_gateway_passwords_are_throttled(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")
    params = {"command": "check", "txn_id": "1", "account": "9001234567", "sum": "10.00"}
    async with hub_env(db_url, catalog=gateway_catalog(), run_workers=False, **LIMITS) as env:
        for _ in range(3):
            r = await env.http.get("/osmp/qiwi", params=params, auth=("qiwi", "wrong"))
            assert r.status_code == 401, r.text
        r = await env.http.get("/osmp/qiwi", params=params, auth=("qiwi", "qiwi-secret-42"))
        assert r.status_code == 429, r.text
        assert r.headers["content-type"].startswith("text/xml") and "<result>300</result>" in r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
