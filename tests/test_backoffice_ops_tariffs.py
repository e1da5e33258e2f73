"""Tariffs: versions with history, and the maker-checker: a Financial specialist proposes, a CFO approves
(the version then prices new payments) or rejects (nothing changes); nobody approves their own change.
On the back office and on the admin API (personal tokens)."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook
from sqlalchemy import func, select

from paymux.audit.models import AuditEvent
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.tariffs.models import TariffVersion
from paymux.tariffs.proposals import TariffProposal
from test_backoffice_ops_support import ops_env, pay_all
from test_backoffice_support import form_token, login

FEE_2PCT = {
    "kind": "fee",
    "channel_group": "self",
    "currency": "RUB",
    "effective_from": "",
    "percent": "2",
    "min": "1.00",
    "note": "fee up to 2%",
}


async def _versions(bo) -> int:  # type: ignore[no-untyped-def]
    async with bo.hub.read_sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(TariffVersion)) or 0)


async def _propose(http, data: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    page = await http.get("/backoffice/tariffs/proposals/new")
    assert page.status_code == 200
    r = await http.post("/backoffice/tariffs/proposals", data={"csrf_token": form_token(page.text), **data})
    assert r.status_code == 303, r.text
    return int(re.search(r"/proposals/(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]


async def _decide(http, proposal_id: int, what: str, note: str = ""):  # type: ignore[no-untyped-def]
    page = await http.get(f"/backoffice/tariffs/proposals/{proposal_id}")
    return await http.post(
        f"/backoffice/tariffs/proposals/{proposal_id}/{what}",
        data={"csrf_token": form_token(page.text), "note": note},
    )


async def test_maker_checker_on_the_back_office(db_url: str) -> None:
    async with ops_env(db_url) as (env, bo):
        await bo.user("fin", "financial_specialist")
        await bo.user("cfo1", "cfo")
        await bo.user("cfo2", "cfo")
        before = await pay_all(env, [{"amount": "100.00"}])
        assert before[0]["fee"] == "1.00"  # 1 % under the catalog's tariff
        versions = await _versions(bo)

        async with bo.client() as fin:
            await login(fin, "fin")
            bad = await fin.post(
                "/backoffice/tariffs/proposals",
                data={
                    "csrf_token": form_token((await fin.get("/backoffice/tariffs/proposals/new")).text),
                    **FEE_2PCT,
                    "percent": "abc",
                },
            )
            assert bad.status_code == 422 and "percent" in bad.text
            pid = await _propose(fin, FEE_2PCT)
            page = await fin.get(f"/backoffice/tariffs/proposals/{pid}")
            assert 'id="own-proposal"' in page.text and 'id="approve"' not in page.text
            assert "percent 1" in re.search(r'id="current-rule">(.*?)</td>', page.text).group(1)  # type: ignore[union-attr]
            assert (await _decide(fin, pid, "approve")).status_code == 403  # no tariffs.approve
            rejected = await _propose(fin, {**FEE_2PCT, "percent": "5"})
        assert await _versions(bo) == versions  # proposals change nothing

        async with bo.client() as cfo1:
            await login(cfo1, "cfo1")
            r = await _decide(cfo1, rejected, "reject", "too much")
            assert r.status_code == 303
            assert await _versions(bo) == versions
            after_reject = await pay_all(env, [{"amount": "100.00"}])
            assert after_reject[0]["fee"] == "1.00"

            # a CFO cannot approve a change they proposed themselves
            own = await _propose(cfo1, {**FEE_2PCT, "percent": "3"})
            r = await _decide(cfo1, own, "approve")
            assert r.status_code == 403 and "their own proposal" in r.text

            r = await _decide(cfo1, pid, "approve", "ok")
            assert r.status_code == 303
            page = await cfo1.get(f"/backoffice/tariffs/proposals/{pid}")
            assert 'id="version-created"' in page.text
            assert (await _decide(cfo1, pid, "approve")).status_code == 409  # decided already
        assert await _versions(bo) == versions + 1
        after = await pay_all(env, [{"amount": "100.00"}])
        assert after[0]["fee"] == "2.00"  # the approved version prices new payments

        async with bo.hub.read_sessions() as s:
            row = await s.get(TariffProposal, pid)
            assert row is not None and row.status == "approved" and row.decided_by == "cfo1"
            version = await s.get(TariffVersion, row.version_id)
            assert version is not None and "fin" in version.created_by and "cfo1" in version.created_by
            actions = (
                await s.scalars(select(AuditEvent.action).where(AuditEvent.target.like("tariff_proposal:%")))
            ).all()
        assert sorted(actions) == [
            "tariff.approve",
            "tariff.propose",
            "tariff.propose",
            "tariff.propose",
            "tariff.reject",
        ]

        async with bo.client() as cfo2:
            await login(cfo2, "cfo2")
            assert (await _decide(cfo2, own, "approve")).status_code == 303  # another CFO may
            # lists: history with filters and export, proposals by status
            r = await cfo2.get("/backoffice/tariffs?kind=fee&channel_group=self")
            assert "3 found" in r.text
            x = await cfo2.get("/backoffice/tariffs?kind=fee&sort=effective_from&dir=asc&export=xlsx")
            rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
            assert rows[0][:3] == ("ID", "Kind", "Service") and [r[7] for r in rows[1:]] == [
                "percent 1 · min 1.00",
                "percent 2 · min 1.00",
                "percent 3 · min 1.00",
            ]
            r = await cfo2.get("/backoffice/tariffs/proposals?status=rejected")
            assert "1 found" in r.text and "too much" not in r.text
            assert f'/backoffice/tariffs/proposals/{rejected}"' in r.text


async def test_maker_checker_on_the_admin_api(db_url: str) -> None:
    async with ops_env(db_url) as (env, bo):
        tokens = {}
        for name, role in (
            ("fin", "financial_specialist"),
            ("cfo1", "cfo"),
            ("cfo2", "cfo"),
            ("sup", "support"),
        ):
            user = await bo.user(name, role)
            async with bo.hub.sessions() as s:
                u = await s.get(User, user.id)
                assert u is not None
                tokens[name], _ = await issue_token(s, u, "t", None)
                await s.commit()

        def auth(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        body = {
            "kind": "commission",
            "channel": "term",
            "currency": "RUB",
            "effective_from": "2020-01-01T00:00:00Z",
            "rule": {"percent": "0.7"},
        }
        A = "/api/v1/admin/tariff-proposals"
        assert (await env.http.post(A, json=body, headers=auth("sup"))).status_code == 403
        assert (
            await env.http.post("/api/v1/admin/tariffs", json=body, headers=auth("cfo1"))
        ).status_code == 403
        bad = await env.http.post(A, json={**body, "channel": "nope"}, headers=auth("fin"))
        assert bad.status_code == 422 and "nope" in bad.json()["detail"]
        r = await env.http.post(A, json=body, headers=auth("fin"))
        assert r.status_code == 201 and r.json()["status"] == "pending"
        pid = r.json()["id"]
        assert (await env.http.post(f"{A}/{pid}/approve", headers=auth("fin"))).status_code == 403
        r = await env.http.post(A, json={**body, "rule": {"percent": "0.9"}}, headers=auth("cfo1"))
        own = r.json()["id"]
        r = await env.http.post(f"{A}/{own}/approve", headers=auth("cfo1"))
        assert r.status_code == 403 and r.json()["type"].endswith("own-proposal")
        r = await env.http.post(f"{A}/{pid}/approve", json={"note": "fine"}, headers=auth("cfo1"))
        assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["version_id"]
        # proposed for 2020, approved now: it cannot act before it was approved
        assert r.json()["effective_at"] > "2021"
        assert (await env.http.post(f"{A}/{pid}/reject", headers=auth("cfo2"))).status_code == 409
        r = await env.http.post(f"{A}/{own}/reject", headers=auth("cfo2"))
        assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["version_id"] is None
        listed = await env.http.get(f"{A}?status=pending", headers=auth("sup"))
        assert listed.status_code == 403  # support cannot view tariffs
        listed = await env.http.get(f"{A}?status=approved", headers=auth("fin"))
        assert [p["id"] for p in listed.json()] == [pid]
        done = await pay_all(env, [{"amount": "100.00"}])
        details = await env.details(done[0]["id"])
        assert details["commission"] == "0.70"
