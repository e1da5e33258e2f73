"""The audit log: hash chain, append-only table, `paymux audit verify`, admin API changes recorded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from harness import hub_env
from paymux import audit
from paymux.audit.models import AuditEvent
from paymux.audit.service import GENESIS, chain_hash, verify_chain


async def _three(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s:
        await audit.record(
            s, "user:ann", "user.create", "user:bob", None, {"username": "bob", "password": "x"}
        )
        await audit.record(
            s,
            "user:ann",
            "role.update",
            "role:cfo",
            {"require_second_factor": False},
            {"require_second_factor": True},
            ip="10.0.0.1",
        )
        await audit.record(s, "user:bob", "login", "user:bob", None, {"method": "password"}, outcome="failed")
        await s.commit()


async def _tamper(sessions: async_sessionmaker[AsyncSession], statement: str) -> None:
    """What an attacker with database rights could do: get past the trigger, then change the table.

    PostgreSQL: triggers off for this transaction only (the schema is shared by the tests);
    SQLite (a file per test): drop the triggers.
    """
    async with sessions() as s:
        if s.get_bind().dialect.name == "postgresql":
            await s.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            await s.execute(text("DROP TRIGGER audit_log_no_update"))
            await s.execute(text("DROP TRIGGER audit_log_no_delete"))
        await s.execute(text(statement))
        await s.commit()


async def test_rows_are_chained_and_secrets_masked(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _three(sessions)
    async with sessions() as s:
        rows = (await s.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
        assert [r.seq for r in rows] == [1, 2, 3]
        assert rows[0].prev_hash == GENESIS and rows[1].prev_hash == rows[0].hash
        assert all(chain_hash(r.prev_hash, r) == r.hash for r in rows)
        assert rows[0].after == {"username": "bob", "password": "***"}
        assert rows[1].ip == "10.0.0.1" and rows[2].outcome == "failed"
        check = await verify_chain(s)
        assert check.ok and check.rows == 3 and check.head_hash == rows[2].hash


async def test_the_database_refuses_updates_and_deletes(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _three(sessions)
    for stmt in ("UPDATE audit_log SET actor = 'x' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 2"):
        async with sessions() as s:
            with pytest.raises(DBAPIError, match="append-only"):
                await s.execute(text(stmt))
            await s.rollback()


async def test_verify_finds_a_changed_row(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _three(sessions)
    await _tamper(sessions, "UPDATE audit_log SET target = 'role:operator' WHERE seq = 2")
    async with sessions() as s:
        check = await verify_chain(s)
    assert check.problems == ["row 2: content does not match its hash (changed)"]


async def test_verify_finds_a_removed_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _three(sessions)
    await _tamper(sessions, "DELETE FROM audit_log WHERE seq = 2")
    async with sessions() as s:
        check = await verify_chain(s)
    assert check.problems == ["rows 2..2 are missing (removed)", "row 3: does not link to the previous row"]


def test_cli_verify_exit_codes(db_url: str) -> None:
    import asyncio

    from paymux.db.engine import create_engine, session_factory

    async def seed(tamper: bool) -> None:
        engine = create_engine(db_url)
        sessions = session_factory(engine)
        if not tamper:
            await _three(sessions)
        else:
            await _tamper(sessions, "UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 1")
        await engine.dispose()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env["PAYMUX_DATABASE_URL"] = db_url
    cmd = [sys.executable, "-c", "from paymux.cli import main; main()", "audit", "verify"]
    asyncio.run(seed(False))
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "3 audit rows" in ok.stdout and "intact: yes" in ok.stdout
    asyncio.run(seed(True))
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "row 1: content does not match its hash (changed)" in bad.stderr


async def test_admin_api_changes_are_audited_with_before_and_after(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        r = await env.http.put(
            "/api/v1/admin/providers/p2",
            headers=env.admin,
            json={
                "code": "p2",
                "name": "Provider two renamed",
                "protocol": "jsonhttp",
                "config": {"url": env.urls["p2"], "password": "s3cret"},
                "settlement": "postpaid",
            },
        )
        assert r.status_code == 200, r.text
        r = await env.http.post("/api/v1/admin/providers/p3/disable", headers=env.admin)
        assert r.status_code == 200
        r = await env.http.post(
            "/api/v1/admin/providers/p1/topups",
            headers=env.admin,
            json={"amount": "10.00", "currency": "RUB", "reference": "bank-1"},
        )
        assert r.status_code == 201
        async with env.hub.read_sessions() as s:
            rows = (await s.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
            check = await verify_chain(s)
    by_action = {r.action: r for r in rows}
    put = by_action["provider.put"]
    assert put.actor == "admin:test" and put.target == "provider:p2" and put.ip == "127.0.0.1"
    assert put.before["name"] == "Provider two" and put.after["name"] == "Provider two renamed"
    assert put.after["config"]["password"] == "***"
    off = by_action["provider.disable"]
    assert off.before["enabled"] is True and off.after["enabled"] is False
    assert by_action["provider.topup"].after["reference"] == "bank-1"
    assert check.ok
