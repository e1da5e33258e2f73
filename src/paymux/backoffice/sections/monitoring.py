"""System monitoring: health (database reachable, version), worker queues, database size."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import __version__
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    OPERATIONS,
    MenuEntry,
    ReadDbDep,
    Section,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.sections.dashboard import provider_states
from paymux.backoffice.sections.ops import workbook
from paymux.db.base import utcnow
from paymux.payments.models import FINAL_STATUSES, Payment
from paymux.runtime import Hub

router = section_router()
register(
    Section(
        "monitoring",
        router,
        menu=(MenuEntry("Monitoring", "/backoffice/monitoring", P.MONITORING_READ, 40, area=OPERATIONS),),
        permissions=(P.MONITORING_READ,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.MONITORING_READ))]


async def payment_queues(session: AsyncSession) -> dict[str, int]:
    """Unfinished payments due now, held in processing, in doubt; payments needing attention."""
    now = utcnow()
    open_ = Payment.status.not_in(FINAL_STATUSES)

    async def count(*where: Any) -> int:
        return int(await session.scalar(select(func.count()).select_from(Payment).where(*where)) or 0)

    return {
        "due": await count(open_, Payment.next_attempt_at <= now),
        "processing": await count(open_, Payment.status == "processing"),
        "in_doubt": await count(open_, Payment.in_doubt.is_(True)),
        "attention": await count(Payment.needs_attention.is_(True)),
        "unfinished": await count(open_),
    }


async def register_tasks(session: AsyncSession) -> dict[str, int] | None:
    """Register sending tasks by status, or None when the table is not there."""
    conn = await session.connection()
    exists = await conn.run_sync(lambda c: inspect(c).has_table("register_tasks"))
    if not exists:
        return None
    rows = (await session.execute(text("SELECT status, COUNT(*) FROM register_tasks GROUP BY status"))).all()
    return {str(s): int(n) for s, n in rows}


async def database_size(session: AsyncSession, hub: Hub) -> int | None:
    """Bytes used by the database: the SQLite file (with its WAL), or ``pg_database_size``."""
    if hub.sqlite:
        path = make_url(hub.engine.url.render_as_string(hide_password=False)).database or ""
        if not path or path == ":memory:":
            return None
        return _file_sizes(path, path + "-wal")
    value = await session.scalar(text("SELECT pg_database_size(current_database())"))
    return None if value is None else int(value)


def _file_sizes(*paths: str) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p))


def human_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@router.get("/monitoring")
async def monitoring(request: Request, session: ReadDbDep, _: Reader) -> Response:
    hub: Hub = request.app.state.hub
    started = time.perf_counter()
    try:
        await session.execute(text("SELECT 1"))
        db_ok, db_error = True, ""
    except Exception as e:
        db_ok, db_error = False, type(e).__name__
    latency_ms = int((time.perf_counter() - started) * 1000)
    queues = await payment_queues(session) if db_ok else {}
    tasks = await register_tasks(session) if db_ok else None
    size = await database_size(session, hub) if db_ok else None
    providers = await provider_states(hub) if db_ok else []
    if request.query_params.get("export") == "xlsx":
        rows: list[list[Any]] = [["version", __version__], ["database", hub.describe()["database"]]]
        rows += [["database_size_bytes", size]] + [[f"payments_{k}", v] for k, v in queues.items()]
        rows += [[f"register_tasks_{k}", v] for k, v in (tasks or {}).items()]
        return workbook(request, "monitoring", [("Monitoring", ["Measure", "Value"], rows)])
    response = render(
        request,
        "monitoring/index.html",
        version=__version__,
        db_ok=db_ok,
        db_error=db_error,
        latency_ms=latency_ms,
        backend="SQLite" if hub.sqlite else "PostgreSQL",
        database=hub.describe()["database"],
        size=human_bytes(size),
        size_bytes=size,
        queues=queues,
        tasks=tasks,
        providers=providers,
    )
    response.headers["Refresh"] = "15"
    return response
