"""Channel API through HTTP: problem+json errors, idempotency, reads, cancel, checks, signing, OpenAPI."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from harness import Env, hub_env
from paymux.auth.keys import digest
from paymux.auth.models import ChannelKey
from paymux.auth.signing import hmac_sign, rsa_sign
from paymux.errors import PROBLEM_BASE
from paymux.ledger.models import JournalEntry
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment
from paymux.payments.processing import claim_due, process

PAY = "/api/v1/payments"
CHECK = "/api/v1/checks"
ACCOUNT = "9001234567"
SECRET = "s3cret-s3cret-s3cret"


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "external_id": "order-1",
        "service": "topup",
        "account": ACCOUNT,
        "amount": "100.00",
        "currency": "RUB",
    }
    b.update(over)
    return b


def problem(r: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """Assert ``r`` is an RFC 9457 problem with ``status`` (and type ``slug``); return its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0].strip() == "application/problem+json", r.headers
    p: dict[str, Any] = r.json()
    assert p["status"] == status
    assert isinstance(p["title"], str) and p["title"]
    assert isinstance(p["detail"], str) and p["detail"]
    assert p["type"].startswith(PROBLEM_BASE)
    if slug is not None:
        assert p["type"] == PROBLEM_BASE + slug, p
    return p


async def counts(env: Env) -> tuple[int, int]:
    """(payments, journal entries) stored."""
    async with env.hub.read_sessions() as s:
        payments = await s.scalar(select(func.count()).select_from(Payment))
        entries = await s.scalar(select(func.count()).select_from(JournalEntry))
    return int(payments or 0), int(entries or 0)


async def entries_of(env: Env, kind: str) -> int:
    async with env.hub.read_sessions() as s:
        n = await s.scalar(select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == kind))
    return int(n or 0)


async def ledger_ok(env: Env) -> None:
    async with env.hub.read_sessions() as s:
        check = await verify_ledger(s)
    assert check.balanced, check


async def post(env: Env, payload: Any, channel: str = "term", path: str = PAY) -> httpx.Response:
    return await env.http.post(path, json=payload, headers=env.headers(channel))


async def admin_put(env: Env, path: str, doc: dict[str, Any]) -> None:
    r = await env.http.put(f"/api/v1/admin/{path}", json=doc, headers=env.admin)
    assert r.status_code == 200, r.text


# --- errors: problem+json, nothing stored ------------------------------------------------------------------


async def test_authentication_errors_are_problems_and_store_nothing(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        before = await counts(env)
        r = await env.http.post(PAY, json=body())
        problem(r, 401, "unauthorized")
        r = await env.http.post(PAY, json=body(), headers={"Authorization": "Bearer pmx_ch_not-a-real-key"})
        problem(r, 401, "unauthorized")
        r = await env.http.post(PAY, json=body(), headers={"Authorization": f"Basic {env.keys['term']}"})
        problem(r, 401, "unauthorized")
        r = await env.http.post(PAY, json=body(), headers={"Authorization": "Bearer"})
        problem(r, 401, "unauthorized")
        # the admin token is not a channel key
        problem(await env.http.post(PAY, json=body(), headers=env.admin), 401, "unauthorized")

        # a revoked key (issued through the admin API, revoked in the database) is refused
        r = await env.http.post("/api/v1/admin/channels/term/keys", headers=env.admin)
        assert r.status_code == 201, r.text
        revoked = r.json()["key"]
        async with env.hub.sessions() as s:
            await s.execute(
                update(ChannelKey).where(ChannelKey.key_hash == digest(revoked)).values(revoked_at=func.now())
            )
            await s.commit()
        r = await env.http.post(PAY, json=body(), headers={"Authorization": f"Bearer {revoked}"})
        assert "revoked" in problem(r, 401, "unauthorized")["detail"]

        # a disabled channel: its key is known but the channel may not pay
        r = await env.http.post("/api/v1/admin/channels/web/disable", headers=env.admin)
        assert r.status_code == 200, r.text
        assert "web" in problem(await post(env, body(), "web"), 403, "channel-disabled")["detail"]
        problem(await post(env, body(), "web", CHECK), 403, "channel-disabled")
        assert await counts(env) == before

        # the other channel still works: the refusals above were about the credentials only
        assert (await post(env, body())).status_code == 201
        r = await env.http.post("/api/v1/admin/channels/web/enable", headers=env.admin)
        assert r.status_code == 200, r.text
        assert (await post(env, body(external_id="web-1"), "web")).status_code == 201


UTILITY = {
    "code": "utility",
    "name": "Utility bill",
    "currency": "RUB",
    "account_pattern": r"^\d{6}$",
    "min_amount": "10.00",
    "max_amount": "5000.00",
    "fields": [
        {"name": "meter", "pattern": r"^\d{5}$", "required": True},
        {"name": "note", "required": False},
    ],
    "route": {"strategy": "priority", "candidates": [{"provider": "p2", "code": "U2"}]},
}


async def test_invalid_requests_are_422_problems_and_store_nothing(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        await admin_put(env, "services/utility", UTILITY)
        legacy = {**UTILITY, "code": "legacy", "name": "Legacy bill", "fields": []}
        await admin_put(env, "services/legacy", legacy)
        r = await env.http.post("/api/v1/admin/services/legacy/disable", headers=env.admin)
        assert r.status_code == 200, r.text
        util = body(service="utility", account="123456", amount="50.00", fields={"meter": "12345"})

        cases: list[tuple[dict[str, Any], str, str]] = [
            (body(service="nope"), "unknown-service", "'nope'"),
            (body(service="legacy", account="123456"), "service-disabled", "legacy"),
            (body(currency="USD"), "wrong-currency", "RUB"),
            (body(currency="XXX"), "wrong-currency", "XXX"),
            (body(account="12345"), "invalid-account", "12345"),
            (body(account=ACCOUNT + "\n"), "invalid-request", "control characters"),
            (body(account=ACCOUNT[:-1] + "\u0663"), "invalid-account", "topup"),  # an Arabic-Indic 3
            (body(amount="0.99"), "amount-out-of-limits", "below the minimum 1.00"),
            (body(amount="10000.01"), "amount-out-of-limits", "above the maximum 10000.00"),
            (body(amount="1.001"), "invalid-amount", "decimal places"),
            (body(amount="-1.00"), "invalid-amount", "-1.00"),
            (body(amount="1e3"), "invalid-amount", "1e3"),
            (body(amount=""), "invalid-amount", "amount"),
            (body(amount="0.00"), "invalid-amount", "greater than zero"),
            (body(amount=" 100.00"), "invalid-amount", "amount"),
            (body(amount="1,000.00"), "invalid-amount", "amount"),
            (body(fields={"colour": "red"}), "invalid-field", "colour"),
            ({**util, "fields": {}}, "invalid-field", "'meter' is required"),
            ({**util, "fields": {"note": "hi"}}, "invalid-field", "'meter' is required"),
            ({**util, "fields": {"meter": "1234"}}, "invalid-field", "meter"),
            ({**util, "fields": {"meter": "12345", "x": "1"}}, "invalid-field", "x"),
        ]
        before = await counts(env)
        for payload, slug, needle in cases:
            for path in (PAY, CHECK):
                if path == CHECK:
                    payload = {k: v for k, v in payload.items() if k != "external_id"}
                p = problem(await post(env, payload, path=path), 422, slug)
                assert needle in p["detail"], (payload, p)

        # shape errors: 422 invalid-request with an errors list naming the fields
        shape_cases: list[tuple[Any, str]] = [
            (body(amount=100), "amount"),
            (body(amount=100.5), "amount"),
            (body(amount=None), "amount"),
            (body(bogus=1), "bogus"),
            ({k: v for k, v in body().items() if k != "external_id"}, "external_id"),
            ({k: v for k, v in body().items() if k != "amount"}, "amount"),
            (body(external_id=""), "external_id"),
            (body(external_id="x" * 65), "external_id"),
            (body(external_id=7), "external_id"),
            (body(fields={"meter": 12345}), "fields.meter"),
            (body(fields=["meter"]), "fields"),
        ]
        for payload, field in shape_cases:
            p = problem(await post(env, payload), 422, "invalid-request")
            assert field in [e["field"] for e in p["errors"]], p
            assert all(e["message"] for e in p["errors"])
        r = await env.http.post(
            PAY,
            content=b'{"external_id": "x",',
            headers={**env.headers(), "Content-Type": "application/json"},
        )
        assert problem(r, 422, "invalid-request")["errors"]
        assert await counts(env) == before

        # the same requests made valid are accepted: the refusals were about what was wrong
        assert (await post(env, util)).status_code == 201
        assert (
            await post(env, {**util, "external_id": "u2", "fields": {"meter": "12345", "note": "n"}})
        ).status_code == 201
        assert (await post(env, body(external_id="t1", amount="1.00"))).status_code == 201
        assert (await post(env, body(external_id="t2", amount="10000.00"))).status_code == 201
        assert (await counts(env))[0] == before[0] + 4
        await ledger_ok(env)


async def test_unknown_payment_and_bad_path_are_problems(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        problem(await env.http.get(f"{PAY}/424242", headers=env.headers()), 404, "not-found")
        problem(await env.http.post(f"{PAY}/424242/cancel", headers=env.headers()), 404, "not-found")
        problem(await env.http.get(f"{PAY}/by-external-id/nope", headers=env.headers()), 404, "not-found")
        p = problem(await env.http.get(f"{PAY}/abc", headers=env.headers()), 422, "invalid-request")
        assert p["errors"]
        # routing errors are problem+json too
        r = await env.http.get("/api/v1/nowhere", headers=env.headers())
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == 404


# --- idempotency -------------------------------------------------------------------------------------------


async def test_repeat_is_idempotent_and_a_different_body_conflicts(db_url: str) -> None:
    async with hub_env(db_url) as env:
        first = await post(env, body())
        assert first.status_code == 201, first.text
        pid = first.json()["id"]
        again = await post(env, body())
        assert again.status_code == 200, again.text
        assert again.json()["id"] == pid and again.json()["amount"] == "100.00"
        final = await env.wait_final(pid)
        assert final["status"] == "succeeded"
        stored = await counts(env)
        late = await post(env, body())  # after delivery: still the same payment, now succeeded
        assert late.status_code == 200 and late.json()["id"] == pid
        assert late.json()["status"] == "succeeded"
        assert env.pay_calls("p1") == {str(pid): 1}

        for changed in (body(amount="100.01"), body(account="9001234568"), body(amount="1.00")):
            p = problem(await post(env, changed), 409, "idempotency-conflict")
            assert p["payment_id"] == pid and str(pid) in p["detail"] and "order-1" in p["detail"]
        assert await counts(env) == stored

        # the same external_id on another channel is another payment
        other = await post(env, body(amount="55.00"), "web")
        assert other.status_code == 201, other.text
        oid = other.json()["id"]
        assert oid != pid and other.json()["amount"] == "55.00"
        r = await env.http.get(f"{PAY}/by-external-id/order-1", headers=env.headers("web"))
        assert r.json()["id"] == oid
        r = await env.http.get(f"{PAY}/by-external-id/order-1", headers=env.headers("term"))
        assert r.json()["id"] == pid
        assert (await env.wait_final(oid, "web"))["status"] == "succeeded"
        assert env.pay_calls("p1") == {str(pid): 1, str(oid): 1}
        assert (await counts(env))[0] == 2
        await ledger_ok(env)


async def test_concurrent_identical_requests_make_one_payment(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        payload = body(external_id="burst-1")
        answers = await asyncio.gather(*(post(env, payload) for _ in range(20)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * 19 + [201], [r.text for r in answers if r.status_code not in (200, 201)]
        ids = {r.json()["id"] for r in answers}
        assert len(ids) == 1
        async with env.hub.read_sessions() as s:
            rows = (await s.scalars(select(Payment))).all()
            accepts = (
                await s.scalars(select(JournalEntry.payment_id).where(JournalEntry.kind == "payment_accept"))
            ).all()
        assert [p.id for p in rows] == list(ids)
        assert list(accepts) == list(ids)
        await ledger_ok(env)


@pytest.fixture
async def shared_env(db_url: str) -> AsyncIterator[Env]:
    async with hub_env(db_url, run_workers=False) as env:
        yield env


_example = itertools.count()

requests_strategy = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(["1.00", "2.00", "2.50"])), min_size=1, max_size=8
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reqs=requests_strategy)
async def test_concurrent_requests_property(shared_env: Env, reqs: list[tuple[str, str]]) -> None:
    env = shared_env
    prefix = f"h{next(_example)}-"
    payloads = [body(external_id=prefix + ext, amount=amount) for ext, amount in reqs]
    answers = await asyncio.gather(*(post(env, p) for p in payloads))
    by_ext: dict[str, list[tuple[str, httpx.Response]]] = {}
    for (ext, amount), r in zip(reqs, answers, strict=True):
        assert r.status_code in (200, 201, 409), r.text
        by_ext.setdefault(ext, []).append((amount, r))
    for ext, got in by_ext.items():
        winners = [(a, r) for a, r in got if r.status_code == 201]
        assert len(winners) == 1, (ext, [(a, r.status_code) for a, r in got])
        amount, winner = winners[0]
        pid = winner.json()["id"]
        assert winner.json()["amount"] == amount and winner.json()["external_id"] == prefix + ext
        for a, r in got:
            if a == amount:
                assert r.status_code in (200, 201) and r.json()["id"] == pid
            else:
                p = problem(r, 409, "idempotency-conflict")
                assert p["payment_id"] == pid
    async with env.hub.read_sessions() as s:
        mine = (await s.scalars(select(Payment).where(Payment.external_id.like(prefix + "%")))).all()
        total = await s.scalar(select(func.count()).select_from(Payment))
    assert len(mine) == len(by_ext)
    assert total == await entries_of(env, "payment_accept")
    await ledger_ok(env)


# --- reads -------------------------------------------------------------------------------------------------


async def test_read_by_id_and_external_id_only_by_own_channel(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        ext = "ord:42.x_y-z"
        created = await post(env, body(external_id=ext, amount="250.00"))
        assert created.status_code == 201
        c = created.json()
        assert (c["amount"], c["fee"], c["total"], c["currency"], c["provider"], c["service"]) == (
            "250.00",
            "2.50",
            "252.50",
            "RUB",
            "p1",
            "topup",
        )
        r = await env.http.get(f"{PAY}/{c['id']}", headers=env.headers())
        assert r.status_code == 200 and r.json() == c
        r = await env.http.get(f"{PAY}/by-external-id/{ext}", headers=env.headers())
        assert r.status_code == 200 and r.json() == c
        # another channel cannot see it
        problem(await env.http.get(f"{PAY}/{c['id']}", headers=env.headers("web")), 404, "not-found")
        r = await env.http.get(f"{PAY}/by-external-id/{ext}", headers=env.headers("web"))
        problem(r, 404, "not-found")
        problem(await env.http.post(f"{PAY}/{c['id']}/cancel", headers=env.headers("web")), 404, "not-found")
        assert (await env.http.get(f"{PAY}/{c['id']}", headers=env.headers())).json()["status"] == "accepted"


# --- cancel ------------------------------------------------------------------------------------------------


async def _balance(env: Env, kind: str, owner: str | None) -> str:
    r = await env.http.get("/api/v1/admin/balances", params={"kind": kind}, headers=env.admin)
    assert r.status_code == 200, r.text
    found = [a["balance"] for a in r.json() if a["owner"] == owner and a["currency"] == "RUB"]
    assert len(found) == 1, r.json()
    return str(found[0])


async def _p1_deposit(env: Env) -> str:
    r = await env.http.get("/api/v1/admin/providers/p1/balance", headers=env.admin)
    assert r.status_code == 200, r.text
    return str(r.json()["accounts"][0]["balance"])


async def test_cancel_before_sending_reverses_acceptance(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await post(env, body(amount="100.00"))).json()["id"]
        assert await _balance(env, "channel_collected", "term") == "101.00"
        assert await _p1_deposit(env) == "99900.00"
        r = await env.http.post(f"{PAY}/{pid}/cancel", headers=env.headers())
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled" and r.json()["final_at"] is not None
        assert await _balance(env, "channel_collected", "term") == "0.00"
        assert await _balance(env, "fees_unearned", None) == "0.00"
        assert await _p1_deposit(env) == "100000.00"
        assert await entries_of(env, "payment_cancel") == 1
        # twice is fine and reverses nothing more
        again = await env.http.post(f"{PAY}/{pid}/cancel", headers=env.headers())
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert await entries_of(env, "payment_cancel") == 1
        assert await _p1_deposit(env) == "100000.00"
        # a cancelled payment is never sent, and its external_id stays taken
        for c in await claim_due(env.hub, "w", 10):
            await process(env.hub, c)
        assert env.pay_calls("p1") == {}
        repeat = await post(env, body(amount="100.00"))
        assert repeat.status_code == 200 and repeat.json()["status"] == "cancelled"
        await ledger_ok(env)


async def test_cancel_after_claim_or_success_is_409(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await post(env, body())).json()["id"]
        claimed = await claim_due(env.hub, "w", 10)
        assert [c.payment.id for c in claimed] == [pid]
        # in flight: the worker may be sending it right now
        problem(await env.http.post(f"{PAY}/{pid}/cancel", headers=env.headers()), 409, "cannot-cancel")
        await process(env.hub, claimed[0])
        assert (await env.wait_final(pid, within=1))["status"] == "succeeded"
        before = await counts(env)
        p = problem(await env.http.post(f"{PAY}/{pid}/cancel", headers=env.headers()), 409, "cannot-cancel")
        assert str(pid) in p["detail"]
        assert (await env.http.get(f"{PAY}/{pid}", headers=env.headers())).json()["status"] == "succeeded"
        assert await counts(env) == before
        assert await entries_of(env, "payment_cancel") == 0
        await ledger_ok(env)


# --- checks ------------------------------------------------------------------------------------------------


def check_body(**over: Any) -> dict[str, Any]:
    b = body(**over)
    b.pop("external_id")
    return b


async def test_checks_ok_rejected_and_failover(db_url: str) -> None:
    emus = {"p1": {"accounts": {"9001111111": {"check": "reject:5:account not found"}}}}
    async with hub_env(db_url, emulators=emus, run_workers=False) as env:
        before = await counts(env)
        r = await post(env, check_body(amount="250.00"), path=CHECK)
        assert r.status_code == 200, r.text
        ok = r.json()
        assert (ok["result"], ok["provider"], ok["fee"], ok["total"]) == ("ok", "p1", "2.50", "252.50")
        r = await post(env, check_body(amount="250.00"), "web", CHECK)
        assert (r.json()["result"], r.json()["fee"], r.json()["total"]) == ("ok", "0.00", "250.00")

        r = await post(env, check_body(account="9001111111"), path=CHECK)
        assert r.status_code == 200, r.text
        rej = r.json()
        assert (rej["result"], rej["code"], rej["provider"]) == ("rejected", "5", "p1")
        assert "account not found" in rej["message"]

        env.emulators["p1"].set_down(True)
        r = await post(env, check_body(), path=CHECK)
        assert r.status_code == 200, r.text
        assert (r.json()["result"], r.json()["provider"]) == ("ok", "p2")
        assert await counts(env) == before  # checks store no payment and no entry
        assert all(not e.ledger.all_pay_calls() for e in env.emulators.values())


# --- request signing ---------------------------------------------------------------------------------------


async def _set_signing(env: Env, channel: str, signing: dict[str, Any]) -> None:
    r = await env.http.get("/api/v1/admin/channels", headers=env.admin)
    doc = next(c for c in r.json() if c["code"] == channel)
    await admin_put(env, f"channels/{channel}", {**doc, "signing": signing})


async def _signed(
    env: Env, payload: dict[str, Any], sign: Any, *, ts: int | None = None, send: bytes | None = None
) -> httpx.Response:
    raw = json.dumps(payload).encode()
    stamp = str(int(time.time()) if ts is None else ts)
    headers = {
        **env.headers(),
        "Content-Type": "application/json",
        "X-Paymux-Timestamp": stamp,
        "X-Paymux-Signature": sign(stamp, raw),
    }
    return await env.http.post(PAY, content=raw if send is None else send, headers=headers)


async def _signing_cases(env: Env, good: Any, bad_key: Any) -> None:
    before = await counts(env)
    problem(await post(env, body(external_id="unsigned")), 401, "bad-signature")
    tampered = json.dumps(body(external_id="tampered", amount="9999.00")).encode()
    problem(await _signed(env, body(external_id="tampered"), good, send=tampered), 401, "bad-signature")
    stale = int(time.time()) - 360  # past the 300 s window even if signing the request takes a while
    problem(await _signed(env, body(external_id="stale"), good, ts=stale), 401, "bad-signature")
    future = int(time.time()) + 360
    problem(await _signed(env, body(external_id="future"), good, ts=future), 401, "bad-signature")
    problem(await _signed(env, body(external_id="other-key"), bad_key), 401, "bad-signature")
    problem(await _signed(env, body(external_id="garbage"), lambda ts, raw: "zz=="), 401, "bad-signature")
    assert await counts(env) == before
    r = await _signed(env, body(external_id="signed"), good)
    assert r.status_code == 201, r.text
    r = await _signed(env, body(external_id="slightly-old"), good, ts=int(time.time()) - 250)
    assert r.status_code == 201, r.text
    # reads are signed over the empty body
    r = await env.http.get(f"{PAY}/by-external-id/signed", headers=env.headers())
    problem(r, 401, "bad-signature")
    stamp = str(int(time.time()))
    signed_get = {**env.headers(), "X-Paymux-Timestamp": stamp, "X-Paymux-Signature": good(stamp, b"")}
    r = await env.http.get(f"{PAY}/by-external-id/signed", headers=signed_get)
    assert r.status_code == 200 and r.json()["external_id"] == "signed"


async def test_hmac_signing_required(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        await _set_signing(env, "term", {"mode": "hmac", "required": True, "hmac_secret": SECRET})

        def good(ts: str, raw: bytes) -> str:
            return hmac_sign(SECRET, ts, raw)

        def other(ts: str, raw: bytes) -> str:
            return hmac_sign("another-secret-of-16+", ts, raw)

        await _signing_cases(env, good, other)
        # the web channel is not affected
        assert (await post(env, body(external_id="web"), "web")).status_code == 201


def _rsa_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


async def test_rsa_signing_required(db_url: str) -> None:
    private, public = _rsa_pair()
    stranger, _ = _rsa_pair()
    async with hub_env(db_url, run_workers=False) as env:
        await _set_signing(env, "term", {"mode": "rsa", "required": True, "rsa_public_key": public})

        def good(ts: str, raw: bytes) -> str:
            return rsa_sign(private, ts, raw)

        def other(ts: str, raw: bytes) -> str:
            return rsa_sign(stranger, ts, raw)

        await _signing_cases(env, good, other)
        # an HMAC signature means nothing to an RSA channel
        problem(await _signed(env, body(external_id="hmac"), lambda ts, raw: hmac_sign(SECRET, ts, raw)), 401)


async def test_optional_signing_accepts_unsigned_but_rejects_wrong_signature(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        await _set_signing(env, "term", {"mode": "hmac", "required": False, "hmac_secret": SECRET})
        assert (await post(env, body(external_id="unsigned"))).status_code == 201
        before = await counts(env)
        wrong = await _signed(env, body(external_id="wrong"), lambda ts, raw: hmac_sign("x" * 20, ts, raw))
        problem(wrong, 401, "bad-signature")
        stale = await _signed(
            env,
            body(external_id="stale"),
            lambda ts, raw: hmac_sign(SECRET, ts, raw),
            ts=int(time.time()) - 400,
        )
        problem(stale, 401, "bad-signature")
        assert await counts(env) == before
        right = await _signed(env, body(external_id="right"), lambda ts, raw: hmac_sign(SECRET, ts, raw))
        assert right.status_code == 201, right.text


# --- OpenAPI, health, admin auth ---------------------------------------------------------------------------


async def test_openapi_health_and_admin_auth(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        r = await env.http.get("/openapi.json")
        assert r.status_code == 200
        paths = r.json()["paths"]
        for path in (
            "/api/v1/payments",
            "/api/v1/payments/{payment_id}",
            "/api/v1/payments/by-external-id/{external_id}",
            "/api/v1/payments/{payment_id}/cancel",
            "/api/v1/checks",
            "/api/v1/admin/providers",
            "/api/v1/admin/services/{code}",
            "/api/v1/admin/channels/{code}",
            "/api/v1/admin/balances",
        ):
            assert path in paths, path
        assert set(paths["/api/v1/payments"]["post"]["responses"]) >= {"200", "201", "401", "409", "422"}
        operation_ids = [
            op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op
        ]
        assert len(operation_ids) == len(set(operation_ids)), "duplicate OpenAPI operation ids"
        assert {"osmp_get", "osmp_post"} <= set(operation_ids)
        r = await env.http.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"

        problem(await env.http.get("/api/v1/admin/providers"), 401, "unauthorized")
        bad = {"Authorization": "Bearer pmx_adm_wrong"}
        problem(await env.http.get("/api/v1/admin/providers", headers=bad), 401, "unauthorized")
        # a channel key is not an admin token
        problem(await env.http.get("/api/v1/admin/providers", headers=env.headers()), 401, "unauthorized")
        r = await env.http.get("/api/v1/admin/providers", headers=env.admin)
        assert r.status_code == 200 and {p["code"] for p in r.json()} == {"p1", "p2", "p3"}
