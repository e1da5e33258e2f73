"""Benchmark of reconciliation: an N-line provider register matched against N payments, time and memory.

``run_reconciliation_bench(n)`` makes a fresh SQLite database (or uses ``database_url``, an empty
migrated database), inserts ``n`` final payments of one provider and day (the registers benchmark's
``fill``), writes the provider's register with the registers' own CSV writer, then edits it line by line
so that it differs from our side (every 100th amount one kopeck more, every 250th line left out, n/200
lines that are not ours) and reconciles it, measuring wall time and the process's peak resident memory
above the level before the reconciliation (sampled every 10 ms). Memory should stay flat as ``n``
grows: the file is read in chunks and the lines are stored and matched by id batches.
Run it as ``python -m paymux.reconciliation.bench 20000``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from paymux.catalog.models import Provider
from paymux.db.engine import create_engine, session_factory
from paymux.db.migrate import upgrade
from paymux.reconciliation.mapping import MappingConfig
from paymux.reconciliation.matcher import Period, reconcile_file
from paymux.registers.bench import PERIOD, _PeakSampler, fill
from paymux.registers.build import build_register
from paymux.registers.schemas import TemplateConfig

REGISTER = TemplateConfig.model_validate(
    {
        "columns": [
            {"field": "id", "title": "ID"},
            {"field": "final_at", "title": "Time"},
            {"field": "account", "title": "Account"},
            {"field": "amount", "title": "Amount"},
            {"field": "status", "title": "Status"},
        ],
        "totals": False,
    }
)
MAPPING = MappingConfig.model_validate(
    {
        "format": "csv",
        "id_column": "ID",
        "amount_column": "Amount",
        "date_column": "Time",
        "status_column": "Status",
        "account_column": "Account",
        "currency": "RUB",
    }
)


def their_version(ours: Path, theirs: Path, n: int) -> dict[str, int]:
    """Copy our register line by line with differences; returns how many of each were made."""
    made = {"amount_differs": 0, "missing_theirs": 0, "missing_ours": 0}
    with (
        ours.open(encoding="utf-8", newline="") as src,
        theirs.open("w", encoding="utf-8", newline="") as dst,
    ):
        dst.write(src.readline())
        for i, line in enumerate(src):
            if i % 250 == 249:
                made["missing_theirs"] += 1
                continue
            if i % 100 == 99:
                cells = line.rstrip("\r\n").split(";")
                whole, frac = cells[3].split(".")
                cells[3] = f"{int(whole) + (int(frac) + 1) // 100}.{(int(frac) + 1) % 100:02d}"
                line = ";".join(cells) + "\r\n"
                made["amount_differs"] += 1
            dst.write(line)
        for j in range(n // 200):
            dst.write(f"{10**12 + j};2026-01-15 12:00:00;9000000000;10.00;succeeded\r\n")
            made["missing_ours"] += 1
    return made


async def run_reconciliation_bench(
    n: int = 1_000_000, *, database_url: str | None = None, work_dir: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pmxrecbench-", dir=work_dir) as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        if database_url is None:
            await asyncio.to_thread(upgrade, url)
        t0 = time.perf_counter()
        await fill(url, n)
        fill_s = time.perf_counter() - t0
        engine = create_engine(url, timeouts=False)
        sessions = session_factory(engine)
        async with sessions() as session:
            provider = await session.scalar(select(Provider).where(Provider.code == "bench"))
        assert provider is not None
        ours, theirs = Path(tmp) / "ours.csv", Path(tmp) / "theirs.csv"
        await build_register(sessions, provider, "bench", "daily", "csv", REGISTER, PERIOD, ours)
        made = await asyncio.to_thread(their_version, ours, theirs, n)
        period = Period(PERIOD.first, PERIOD.last, PERIOD.tz)
        with _PeakSampler() as mem:
            t = time.perf_counter()
            async with sessions() as session:
                recon = await reconcile_file(
                    session,
                    provider,
                    MAPPING,
                    theirs,
                    period,
                    source="upload",
                    file_name="bench.csv",
                    actor="bench",
                )
                await session.commit()
            seconds = time.perf_counter() - t
        counts = dict(recon.counts)
        file_bytes = theirs.stat().st_size
        await engine.dispose()
    for k, v in made.items():
        if counts.get(k) != v:
            raise AssertionError(f"reconciliation found {counts.get(k)} {k}, the register was made with {v}")
    lines = sum(counts.values())
    return {
        "payments": n,
        "lines": lines,
        "counts": counts,
        "seconds": round(seconds, 2),
        "lines_per_second": round(lines / seconds) if seconds else None,
        "file_bytes": file_bytes,
        "peak_rss_increase_mib": round((mem.peak - mem.base) / 2**20, 1),
        "fill_seconds": round(fill_s, 1),
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 1_000_000
    print(json.dumps(asyncio.run(run_reconciliation_bench(n))))


if __name__ == "__main__":
    main()
