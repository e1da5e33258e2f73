"""Register sending tasks against real servers on 127.0.0.1: SMTP (STARTTLS + auth), FTP, SFTP.

A server that refuses (SMTP 451, FTP down) or drops the connection (SFTP) makes the task retry;
when it comes back the register is sent, each destination exactly once.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from harness import Env, hub_env
from paymux.db.base import utcnow
from paymux.money import format_amount
from paymux.registers.models import RegisterTask, RegisterTemplate
from paymux.registers.settings import RegisterSettings
from paymux.registers.tasks import run_task
from paymux.registers.worker import RegisterWorker
from paymux.worker.jobs import claim_due
from registers_helpers import catalog, expected_rows, make_payments, place_in_period, yesterday
from registers_servers import PASSWORD, USER, FtpServerThread, SftpServer, free_port, self_signed, start_smtp

FAST = RegisterSettings(settle_seconds=0, poll_seconds=0.05, lease_seconds=30, schedule_every_seconds=3600)


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with hub_env(db_url, catalog=catalog()) as e:
        ids = await make_payments(e, 6)
        await place_in_period(e.hub, ids, yesterday())
        yield e


def template(deliveries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "daily",
        "name": "Daily register",
        "kind": "daily",
        "format": "csv",
        "columns": [{"field": "id"}, {"field": "account"}, {"field": "amount"}, {"field": "final_at"}],
        "file_name": "{provider}_{date:%Y%m%d}.{ext}",
        "subject": "Register {provider} {date:%d.%m.%Y}: {rows} payments",
        "deliveries": deliveries,
        "schedule": {"at": "00:00"},
        "retry": {"max_attempts": 10, "base_seconds": 0.2, "max_seconds": 0.5},
    }
    body.update(extra)
    return body


async def create_template(env: Env, body: dict[str, Any], provider: str = "p1") -> dict[str, Any]:
    r = await env.http.post(
        f"/api/v1/admin/providers/{provider}/register-templates", json=body, headers=env.admin
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def backdate_template(env: Env, template_id: int) -> None:
    """As if the template had been created yesterday, so yesterday's register is scheduled."""
    async with env.hub.sessions() as session:
        await session.execute(
            update(RegisterTemplate)
            .where(RegisterTemplate.id == template_id)
            .values(created_at=utcnow() - dt.timedelta(days=1))
        )
        await session.commit()


async def tasks(env: Env) -> list[RegisterTask]:
    async with env.hub.read_sessions() as session:
        return list((await session.scalars(select(RegisterTask).order_by(RegisterTask.id))).all())


async def until(cond: Callable[[], Awaitable[bool]], worker: RegisterWorker, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await cond():
        assert time.monotonic() < deadline, "condition not reached"
        await worker.run_once()
        await asyncio.sleep(0.05)


async def download(env: Env, task_id: int) -> bytes:
    r = await env.http.get(f"/api/v1/admin/register-tasks/{task_id}/file", headers=env.admin)
    assert r.status_code == 200, r.text
    return r.content


async def check_register(env: Env, data: bytes) -> None:
    """The CSV holds yesterday's payments of p1, as the payments table has them."""
    expected = await expected_rows(env.hub, "p1", yesterday())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";"))
    assert [(int(r[0]), r[1], r[2]) for r in rows[1:-1]] == [
        (p.id, p.account, format_amount(p.amount, "RUB")) for p in expected
    ]
    assert rows[-1][2] == format_amount(sum(p.amount for p in expected), "RUB")


async def test_retries_until_every_server_is_back_then_sends_each_once(env: Env, tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    controller, smtp, smtp_port = start_smtp(cert)
    ftp_root, sftp_root = tmp_path / "ftp", tmp_path / "sftp"
    ftp_root.mkdir()
    sftp_root.mkdir()
    ftp = FtpServerThread(ftp_root, free_port())
    sftp = SftpServer(sftp_root, free_port())
    try:
        smtp.refuse = True  # 451 on DATA
        await sftp.start_dropping()  # accepts, then drops the connection; FTP is not started: refused
        deliveries = [
            {
                "kind": "email",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "starttls",
                "username": USER,
                "password": PASSWORD,
                "ca_pem": cert.cert_pem,
                "from_addr": "hub@paymux.test",
                "to": ["registers@provider.test"],
                "timeout_seconds": 5,
            },
            {
                "kind": "ftp",
                "host": "127.0.0.1",
                "port": ftp.port,
                "username": USER,
                "password": PASSWORD,
                "timeout_seconds": 5,
            },
            {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": sftp.port,
                "username": USER,
                "password": PASSWORD,
                "host_key": sftp.host_public,
                "directory": "in",
                "timeout_seconds": 5,
            },
        ]
        tpl = await create_template(env, template(deliveries))
        assert tpl["deliveries"][0]["password"] == "***"  # never shown back
        await backdate_template(env, tpl["id"])
        worker = RegisterWorker(env.hub, FAST)

        assert await worker.run_once() == 1  # scheduled yesterday's register, built it, all three failed
        (task,) = await tasks(env)
        assert task.period_key == yesterday().key and task.run == 0
        assert task.status == "pending" and task.attempts == 1 and task.delivered == {}
        assert task.last_error and "451" in task.last_error
        assert (
            f"ftp 127.0.0.1:{ftp.port}" in task.last_error
            and f"sftp 127.0.0.1:{sftp.port}" in task.last_error
        )
        assert PASSWORD not in task.last_error
        built = await download(env, task.id)
        await check_register(env, built)

        smtp.refuse = False  # e-mail comes back first
        await until(lambda: _delivered(env, "0"), worker)
        ftp.start()
        await until(lambda: _delivered(env, "1"), worker)
        await sftp.stop()
        (sftp_root / "in").mkdir()
        await sftp.start()
        await until(lambda: _status(env, "done"), worker)

        (task,) = await tasks(env)
        assert task.attempts >= 4 and task.last_error is None and task.sent_at is not None
        assert set(task.delivered) == {"0", "1", "2"}
        # nothing is sent twice: more rounds and scheduler runs change nothing
        for _ in range(5):
            assert await worker.run_once(now=utcnow()) == 0
        assert len(await tasks(env)) == 1
        assert len(smtp.messages) == 1 and smtp.logins
        assert ftp.uploads == [f"p1_{yesterday().first:%Y%m%d}.csv.part"]
        assert sftp.writes == [f"in/p1_{yesterday().first:%Y%m%d}.csv.part"]

        name = f"p1_{yesterday().first:%Y%m%d}.csv"
        msg = smtp.messages[0]
        assert msg["Subject"] == f"Register p1 {yesterday().first:%d.%m.%Y}: {task.rows} payments"
        (attachment,) = [p for p in msg.walk() if p.get_filename()]
        assert attachment.get_filename() == name
        assert attachment.get_payload(decode=True) == built
        assert (ftp_root / name).read_bytes() == built and not (ftp_root / (name + ".part")).exists()
        assert (sftp_root / "in" / name).read_bytes() == built
        # a done task is not retried by hand either
        r = await env.http.post(f"/api/v1/admin/register-tasks/{task.id}/retry", headers=env.admin)
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    finally:
        controller.stop()
        ftp.stop()
        await sftp.stop()


async def _delivered(env: Env, index: str) -> bool:
    (task,) = await tasks(env)
    return index in task.delivered


async def _status(env: Env, status: str) -> bool:
    (task,) = await tasks(env)
    return task.status == status


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS: it is TLS
async def test_implicit_tls_smtp_ftps_and_sftp_key_auth(env: Env, tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    controller, smtp, smtp_port = start_smtp(cert, implicit_tls=True)
    (tmp_path / "ftp").mkdir()
    (tmp_path / "sftp").mkdir()
    ftp = FtpServerThread(tmp_path / "ftp", free_port(), cert=cert)
    ftp.start()
    sftp = SftpServer(tmp_path / "sftp", free_port())
    await sftp.start()
    try:
        deliveries = [
            {
                "kind": "email",
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "ssl",
                "username": USER,
                "password": PASSWORD,
                "ca_pem": cert.cert_pem,
                "from_addr": "hub@paymux.test",
                "to": ["a@provider.test"],
                "cc": ["b@provider.test"],
                "subject": "{provider_name} {period}",
            },
            {
                "kind": "ftp",
                "host": "127.0.0.1",
                "port": ftp.port,
                "security": "explicit_tls",
                "ca_pem": cert.cert_pem,
                "username": USER,
                "password": PASSWORD,
                "temp_suffix": "",
            },
            {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": sftp.port,
                "username": USER,
                "private_key": sftp.client_private,
                "host_key": sftp.host_public,
            },
        ]
        tpl = await create_template(env, template(deliveries, format="xlsx", file_name=None, schedule=None))
        r = await env.http.post(
            f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
            json={"date": yesterday().key},
            headers=env.admin,
        )
        assert r.status_code == 201, r.text
        worker = RegisterWorker(env.hub, FAST)
        await until(lambda: _status(env, "done"), worker)
        (task,) = await tasks(env)
        assert task.run == 1 and task.created_by == "admin:test"
        data = await download(env, task.id)
        assert data[:2] == b"PK"
        name = f"p1_{yesterday().key}.xlsx"
        assert (tmp_path / "ftp" / name).read_bytes() == data
        assert (tmp_path / "sftp" / name).read_bytes() == data and sftp.writes == [f"{name}.part"]
        (msg,) = smtp.messages
        assert msg["Subject"] == f"Provider one {yesterday().key}"
        assert sorted(smtp.envelopes[0].rcpt_tos) == ["a@provider.test", "b@provider.test"]
    finally:
        controller.stop()
        ftp.stop()
        await sftp.stop()


async def test_wrong_credentials_and_host_key_fail_then_give_up(env: Env, tmp_path: Path) -> None:
    (tmp_path / "sftp").mkdir()
    sftp = SftpServer(tmp_path / "sftp", free_port())
    await sftp.start()
    other_key = SftpServer(tmp_path, 1).host_public  # a host key that is not the server's
    try:
        deliveries = [
            {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": sftp.port,
                "username": "intruder",
                "password": "wrong",
                "host_key": sftp.host_public,
                "timeout_seconds": 5,
            },
            {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": sftp.port,
                "username": USER,
                "password": PASSWORD,
                "host_key": other_key,
                "timeout_seconds": 5,
            },
        ]
        body = template(
            deliveries, schedule=None, retry={"max_attempts": 2, "base_seconds": 0.1, "max_seconds": 0.1}
        )
        tpl = await create_template(env, body)
        r = await env.http.post(
            f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
            json={"date": yesterday().key},
            headers=env.admin,
        )
        task_id = r.json()["id"]
        worker = RegisterWorker(env.hub, FAST)
        await until(lambda: _status(env, "failed"), worker)
        (task,) = await tasks(env)
        assert task.attempts == 2 and task.delivered == {} and sftp.writes == []
        assert "Permission denied" in (task.last_error or "") or "auth" in (task.last_error or "").lower()
        assert "wrong" not in (task.last_error or "")
        # a manual retry gives it new attempts; fix the template first (secrets given as *** are kept)
        fixed = await env.http.get(f"/api/v1/admin/register-templates/{tpl['id']}", headers=env.admin)
        cfg = fixed.json()
        for k in ("id", "provider", "created_at", "updated_at"):
            cfg.pop(k)
        cfg["deliveries"] = [dict(cfg["deliveries"][1], host_key=sftp.host_public)]
        assert cfg["deliveries"][0]["password"] == "***"
        r = await env.http.put(f"/api/v1/admin/register-templates/{tpl['id']}", json=cfg, headers=env.admin)
        assert r.status_code == 200, r.text
        r = await env.http.post(f"/api/v1/admin/register-tasks/{task_id}/retry", headers=env.admin)
        assert r.status_code == 200 and r.json()["status"] == "pending"
        await until(lambda: _status(env, "done"), worker)
        assert len(sftp.writes) == 1
    finally:
        await sftp.stop()


async def test_two_workers_never_take_the_same_task(env: Env, tmp_path: Path) -> None:
    """Concurrent workers (SKIP LOCKED on PostgreSQL, one writer on SQLite) run each task once."""
    (tmp_path / "ftp").mkdir()
    ftp = FtpServerThread(tmp_path / "ftp", free_port())
    ftp.start()
    try:
        deliveries = [
            {"kind": "ftp", "host": "127.0.0.1", "port": ftp.port, "username": USER, "password": PASSWORD}
        ]
        tpl = await create_template(
            env, template(deliveries, schedule=None, file_name="{provider}_{period}_{run}.{ext}")
        )
        first = yesterday().first
        for days in range(4):
            r = await env.http.post(
                f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
                json={"date": (first - dt.timedelta(days=days)).isoformat()},
                headers=env.admin,
            )
            assert r.status_code == 201
        a, b = RegisterWorker(env.hub, FAST), RegisterWorker(env.hub, FAST)
        deadline = time.monotonic() + 30
        while not all(t.status == "done" for t in await tasks(env)):
            assert time.monotonic() < deadline
            await asyncio.gather(a.run_once(), b.run_once())
        assert sorted(ftp.uploads) == sorted(
            f"p1_{(first - dt.timedelta(days=d)).isoformat()}_1.csv.part" for d in range(4)
        )
        assert all(t.attempts == 1 for t in await tasks(env))
        assert set(a.finished) | set(b.finished) == {t.id for t in await tasks(env)}
        assert not set(a.finished) & set(b.finished)
    finally:
        ftp.stop()


async def test_scheduler_is_idempotent_and_catches_up(env: Env) -> None:
    tpl = await create_template(env, template([], schedule={"at": "02:00", "catch_up": 3}))
    async with env.hub.sessions() as session:
        await session.execute(
            update(RegisterTemplate)
            .where(RegisterTemplate.id == tpl["id"])
            .values(created_at=utcnow() - dt.timedelta(days=30))
        )
        await session.commit()
    worker = RegisterWorker(env.hub, FAST)
    now = utcnow()
    created = await asyncio.gather(*(worker.schedule(now) for _ in range(3)))
    assert sum(created) == 3
    async with env.hub.read_sessions() as session:
        keys = (
            await session.scalars(select(RegisterTask.period_key).order_by(RegisterTask.period_key))
        ).all()
        assert await session.scalar(select(func.count()).select_from(RegisterTask)) == 3
    assert len(set(keys)) == 3 and max(keys) <= yesterday().key


async def test_a_worker_that_paused_past_its_lease_sends_no_register_once_it_was_taken_over(
    env: Env, tmp_path: Path
) -> None:
    """A task whose file is built waits for its FTP server. Worker A claims it and pauses; its lease
    runs out and worker B takes it over. A wakes first: it renews its lease before sending, finds it
    taken and sends nothing; B sends the register once."""
    (tmp_path / "ftp").mkdir()
    port = free_port()
    deliveries = [{"kind": "ftp", "host": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD}]
    tpl = await create_template(env, template(deliveries, schedule=None))
    r = await env.http.post(
        f"/api/v1/admin/register-templates/{tpl['id']}/regenerate",
        json={"date": yesterday().first.isoformat()},
        headers=env.admin,
    )
    assert r.status_code == 201, r.text
    assert list((await RegisterWorker(env.hub, FAST).run_round()).values()) == ["pending"]  # FTP down
    (task,) = await tasks(env)
    assert task.file_sha256 is not None and task.status == "pending"
    ftp = FtpServerThread(tmp_path / "ftp", port)
    ftp.start()
    try:
        now = utcnow() + dt.timedelta(seconds=5)  # past the retry interval
        assert await claim_due(env.hub, RegisterTask, "r-a.1", 1, FAST.lease_seconds, now) == [task.id]
        later = now + dt.timedelta(seconds=FAST.lease_seconds + 1)
        assert await claim_due(env.hub, RegisterTask, "r-b.1", 1, FAST.lease_seconds, later) == [task.id]
        assert await run_task(env.hub, task.id, "r-a.1", FAST) == "lost"
        assert ftp.uploads == []
        assert await run_task(env.hub, task.id, "r-b.1", FAST) == "done"
        assert len(ftp.uploads) == 1
    finally:
        ftp.stop()
