"""Admin API of registers: templates CRUD, problems, regenerate, tasks, download, encryption end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dbfread
import gnupg
import pytest

from harness import Env, hub_env
from paymux.registers.settings import RegisterSettings
from paymux.registers.worker import RegisterWorker
from registers_helpers import TZ, catalog, expected_rows, make_payments, place_in_period, yesterday

FAST = RegisterSettings(settle_seconds=0, lease_seconds=30)
PROBLEM = "application/problem+json"


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with hub_env(db_url, catalog=catalog()) as e:
        await place_in_period(e.hub, await make_payments(e, 4), yesterday())
        yield e


def body(**extra: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "code": "monthly-dbf",
        "name": "Monthly DBF",
        "kind": "daily",
        "format": "dbf",
        "columns": [{"field": "id"}, {"field": "amount"}, {"field": "final_date"}],
        "dbf": {"encoding": "cp1251"},
        "file_name": "{provider}_{date:%Y%m%d}.dbf",
    }
    b.update(extra)
    return b


async def test_template_crud_and_problems(env: Env) -> None:
    base = "/api/v1/admin/providers/p1/register-templates"
    sftp = {
        "kind": "sftp",
        "host": "127.0.0.1",
        "username": "u",
        "password": "top-secret",
        "host_key": "ssh-ed25519 AAAA",
    }
    r = await env.http.post(base, json=body(deliveries=[sftp]), headers=env.admin)
    assert r.status_code == 201, r.text
    tpl = r.json()
    assert tpl["deliveries"][0]["password"] == "***" and "top-secret" not in r.text
    assert tpl["dbf"] == {"encoding": "cp1251"} and tpl["statuses"] == ["succeeded"]

    r = await env.http.post(base, json=body(), headers=env.admin)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM

    problems = [
        body(code="x1", file_name="{provider.__class__}.dbf"),
        body(code="x2", columns=[{"field": "secret_sauce"}]),
        body(code="x3", format="pdf"),
        body(code="x4", subject="{unknown}"),
        body(
            code="x5", deliveries=[{"kind": "sftp", "host": "h", "username": "u", "password": "p"}]
        ),  # no host key
        body(code="x6", columns=[{"field": "id", "name": "ID"}, {"field": "amount", "name": "ID"}]),
        body(code="x7", format="csv", csv={"line_template": "{id}|{account}"}),  # account is not a column
        body(code="x8", columns=[{"field": "id", "name": "lower"}]),
        body(code="x9", schedule={"at": "25:00"}),
    ]
    for p in problems:
        r = await env.http.post(base, json=p, headers=env.admin)
        assert r.status_code == 422, (p, r.text)
        assert r.headers["content-type"] == PROBLEM and r.json()["detail"]
    r = await env.http.post("/api/v1/admin/providers/nope/register-templates", json=body(), headers=env.admin)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    r = await env.http.get(base)
    assert r.status_code == 401

    listed = (await env.http.get(base, headers=env.admin)).json()
    assert [t["code"] for t in listed] == ["monthly-dbf"]
    update = {k: v for k, v in tpl.items() if k not in ("id", "provider", "created_at", "updated_at")}
    update["name"] = "Renamed"
    r = await env.http.put(f"/api/v1/admin/register-templates/{tpl['id']}", json=update, headers=env.admin)
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    # the masked password was kept, not replaced by '***'
    from paymux.registers.models import RegisterTemplate

    async with env.hub.read_sessions() as session:
        stored = await session.get(RegisterTemplate, tpl["id"])
        assert stored is not None and stored.config["deliveries"][0]["password"] == "top-secret"

    r = await env.http.post(
        f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
        json={"date": "not-a-date"},
        headers=env.admin,
    )
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-period")
    today = dt.datetime.now(TZ).date().isoformat()  # the provider's day (Moscow), not UTC's
    r = await env.http.post(
        f"/api/v1/admin/register-templates/{tpl['id']}/regenerate", json={"date": today}, headers=env.admin
    )
    assert r.status_code == 422 and r.json()["type"].endswith("period-not-closed")
    r = await env.http.post(
        f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
        json={"date": yesterday().key, "deliver": False},
        headers=env.admin,
    )
    assert r.status_code == 201 and r.json()["status"] == "pending" and r.json()["deliver"] is False
    task_id = r.json()["id"]
    r = await env.http.get(f"/api/v1/admin/register-tasks/{task_id}/file", headers=env.admin)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM

    r = await env.http.delete(f"/api/v1/admin/register-templates/{tpl['id']}", headers=env.admin)
    assert r.status_code == 204
    assert (
        await env.http.get(f"/api/v1/admin/register-tasks/{task_id}", headers=env.admin)
    ).status_code == 404
    assert (
        await env.http.get(f"/api/v1/admin/register-templates/{tpl['id']}", headers=env.admin)
    ).status_code == 404


@pytest.fixture
def gpg_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="pmxk-"))  # short: gpg-agent's socket lives there
    home.chmod(0o700)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)


async def test_encrypted_register_built_by_the_worker_downloads_and_decrypts(
    env: Env, gpg_home: Path, tmp_path: Path
) -> None:
    gpg = gnupg.GPG(gnupghome=str(gpg_home))
    key = gpg.gen_key(
        gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            subkey_type="ECDH",
            subkey_curve="cv25519",
            name_email="registers@provider.test",
            no_protection=True,
        )
    )
    r = await env.http.post(
        "/api/v1/admin/providers/p1/register-templates",
        json=body(encryption={"public_key": gpg.export_keys(key.fingerprint)}),
        headers=env.admin,
    )
    tpl = r.json()
    for deliver in (False, False):
        r = await env.http.post(
            f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
            json={"date": yesterday().key, "deliver": deliver},
            headers=env.admin,
        )
        assert r.status_code == 201
    worker = RegisterWorker(env.hub, FAST)
    assert await worker.run_once() == 2
    listed = (await env.http.get("/api/v1/admin/register-tasks?provider=p1", headers=env.admin)).json()
    assert [t["run"] for t in listed] == [2, 1] and all(t["status"] == "done" for t in listed)
    assert all(t["sent_at"] is None and t["delivered"] == {} for t in listed)
    name = f"p1_{yesterday().first:%Y%m%d}.dbf.pgp"
    plains = []
    for t in listed:
        assert t["file_name"] == name and t["content_type"] == "application/pgp-encrypted"
        r = await env.http.get(f"/api/v1/admin/register-tasks/{t['id']}/file", headers=env.admin)
        assert r.status_code == 200 and r.headers["content-disposition"] == f'attachment; filename="{name}"'
        assert len(r.content) == t["file_size"]
        plain = gpg.decrypt(r.content)
        assert plain.ok, plain.status
        plains.append(plain.data)
    # two builds of one period: the same plain bytes (encryption itself is randomised)
    assert plains[0] == plains[1]
    (tmp_path / "r.dbf").write_bytes(plains[0])
    expected = await expected_rows(env.hub, "p1", yesterday())
    records = list(dbfread.DBF(str(tmp_path / "r.dbf")))
    assert [(r["ID"], round(r["AMOUNT"] * 100)) for r in records] == [(p.id, p.amount) for p in expected]
    assert listed[0]["rows"] == len(expected)
    assert listed[0]["totals"]["by_currency"]["RUB"]["amount"] == sum(p.amount for p in expected)
    r = await env.http.get("/api/v1/admin/register-tasks?status=bogus", headers=env.admin)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


async def test_background_worker_hook_runs_tasks(env: Env) -> None:
    from paymux.worker.registers import running_register_worker

    r = await env.http.post("/api/v1/admin/providers/p1/register-templates", json=body(), headers=env.admin)
    tid = r.json()["id"]
    r = await env.http.post(
        f"/api/v1/admin/register-templates/{tid}/regenerate",
        json={"date": yesterday().key},
        headers=env.admin,
    )
    task_id = r.json()["id"]
    settings = RegisterSettings(settle_seconds=0, poll_seconds=0.05, schedule_every_seconds=3600)
    async with running_register_worker(env.hub, settings) as worker:
        for _ in range(200):
            t = (await env.http.get(f"/api/v1/admin/register-tasks/{task_id}", headers=env.admin)).json()
            if t["status"] == "done":
                break
            await asyncio.sleep(0.05)
    assert t["status"] == "done" and t["rows"] == 4 and worker.finished == {task_id: "done"}
