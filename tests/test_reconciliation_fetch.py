"""Scheduled fetches of providers' registers from real FTP and SFTP servers on 127.0.0.1, reconciled
in the provider's timezone; a file that is not there yet is retried; a day is reconciled once."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from harness import Env
from paymux.db.base import utcnow
from paymux.reconciliation.models import Reconciliation, ReconciliationFetch, ReconciliationMapping
from paymux.reconciliation.settings import ReconciliationSettings
from paymux.reconciliation.worker import ReconciliationWorker
from paymux.worker.reconciliation import running_reconciliation_worker
from reconciliation_helpers import MAPPING, line_of, payments, recon_env, set_mapping, write_csv
from registers_servers import PASSWORD, USER, FtpServerThread, SftpServer, free_port

SETTINGS = ReconciliationSettings(poll_seconds=0.05, schedule_every_seconds=0.05)


async def backdate_mapping(env: Env) -> None:
    """As if the mapping had existed for days, so yesterday's fetch is scheduled."""
    async with env.hub.sessions() as session:
        await session.execute(
            update(ReconciliationMapping).values(created_at=utcnow() - dt.timedelta(days=2))
        )
        await session.commit()


async def fetches(env: Env) -> list[ReconciliationFetch]:
    async with env.hub.read_sessions() as session:
        return list(
            (await session.scalars(select(ReconciliationFetch).order_by(ReconciliationFetch.id))).all()
        )


async def their_file(env: Env, folder: Path) -> Path:
    """Their register of yesterday: every payment of ours but the last succeeded one."""
    ps = [p for p in await payments(env) if p.status == "succeeded"]
    day = env.extra["period"].first
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test fixture file
    return write_csv(folder / f"p1_{day:%Y%m%d}.csv", [line_of(p) for p in ps[:-1]])


def fetch_mapping(source: dict[str, Any]) -> dict[str, Any]:
    return {
        **MAPPING,
        "fetch": {
            "source": source,
            "file_name": "{provider}_{date:%Y%m%d}.csv",
            "schedule": {"at": "00:00", "catch_up": 1},
            "retry": {"max_attempts": 3, "base_seconds": 0.05, "max_seconds": 0.1},
        },
    }


async def test_ftp_fetch_retries_until_the_file_is_there(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=5) as env:
        root = tmp_path / "ftp"
        (root / "out").mkdir(parents=True)
        ftp = FtpServerThread(root, free_port())
        ftp.start()
        try:
            await set_mapping(
                env,
                fetch_mapping(
                    {
                        "kind": "ftp",
                        "host": "127.0.0.1",
                        "port": ftp.port,
                        "username": USER,
                        "password": PASSWORD,
                        "directory": "out",
                        "timeout_seconds": 5,
                    }
                ),
            )
            await backdate_mapping(env)
            worker = ReconciliationWorker(env.hub, SETTINGS)
            assert await worker.run_once() == 1  # scheduled and claimed: the file is not there yet
            [f] = await fetches(env)
            assert f.period_key == env.extra["period"].key
            assert (f.status, f.attempts) == ("pending", 1)
            assert f.last_error and "is not there yet" in f.last_error and PASSWORD not in f.last_error
            await their_file(env, root / "out")
            async with env.hub.sessions() as session:
                await session.execute(update(ReconciliationFetch).values(due_at=utcnow()))
                await session.commit()
            assert await worker.run_once() == 1
            [f] = await fetches(env)
            assert (f.status, f.attempts, f.last_error) == ("done", 2, None)
            assert f.file_name == f"p1_{env.extra['period'].first:%Y%m%d}.csv"
            async with env.hub.read_sessions() as session:
                recon = await session.get(Reconciliation, f.reconciliation_id)
            assert recon is not None
            assert (recon.source, recon.date_from, recon.created_by) == (
                "ftp",
                env.extra["period"].first,
                "scheduler",
            )
            ok = [p for p in await payments(env) if p.status == "succeeded"]
            assert recon.counts["missing_theirs"] == 1 and recon.counts["matched"] == len(ok) - 1 == 4
            # the scheduler never makes a second fetch of the same day
            assert await worker.schedule() == 0
            assert await worker.run_once() == 0
            assert len(await fetches(env)) == 1
        finally:
            ftp.stop()


async def test_sftp_fetch_in_the_background_and_giving_up(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=4) as env:
        root = tmp_path / "sftp"
        sftp = SftpServer(root, free_port())
        await sftp.start()
        try:
            await their_file(env, root / "in")
            await set_mapping(
                env,
                fetch_mapping(
                    {
                        "kind": "sftp",
                        "host": "127.0.0.1",
                        "port": sftp.port,
                        "username": USER,
                        "private_key": sftp.client_private,
                        "host_key": sftp.host_public,
                        "directory": "in",
                        "timeout_seconds": 5,
                    }
                ),
            )
            await backdate_mapping(env)
            async with running_reconciliation_worker(env.hub, SETTINGS):
                for _ in range(200):
                    fs = await fetches(env)
                    if fs and fs[0].status == "done":
                        break
                    await asyncio.sleep(0.05)
            [f] = await fetches(env)
            assert f.status == "done", f.last_error
            async with env.hub.read_sessions() as session:
                recon = await session.get(Reconciliation, f.reconciliation_id)
            assert recon is not None and recon.source == "sftp" and recon.counts["matched"] == 3
        finally:
            await sftp.stop()
        # a server that is gone: retried up to max_attempts, then failed with the reason
        async with env.hub.sessions() as session:
            await session.execute(
                update(ReconciliationFetch).values(
                    status="pending", due_at=utcnow(), attempts=0, reconciliation_id=None
                )
            )
            await session.commit()
        worker = ReconciliationWorker(env.hub, SETTINGS)
        for _ in range(3):
            async with env.hub.sessions() as session:
                await session.execute(update(ReconciliationFetch).values(due_at=utcnow()))
                await session.commit()
            await worker.run_once(now=utcnow() + dt.timedelta(seconds=1))
        [gone] = await fetches(env)
        assert gone.status == "failed" and gone.attempts == 3
        assert gone.last_error and "sftp 127.0.0.1" in gone.last_error
