"""The demo load: N payments through the HTTP channel API, then a check that none was lost or doubled."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import typer
from sqlalchemy import func, select

from paymux.ledger.service import verify_ledger
from paymux.payments.models import FINAL_STATUSES, Payment
from paymux.runtime import Hub

if TYPE_CHECKING:
    from paymux.demo.run import DemoInfo

# service -> (account generator, currency, amount range in minor units)
SERVICES: dict[str, tuple[Any, str, tuple[int, int]]] = {
    "mts-topup": (lambda r: "9" + "".join(r.choices("0123456789", k=9)), "RUB", (1_000, 300_000)),
    "beeline-topup": (lambda r: "9" + "".join(r.choices("0123456789", k=9)), "RUB", (1_000, 300_000)),
    "megafon-topup": (lambda r: "9" + "".join(r.choices("0123456789", k=9)), "RUB", (1_000, 300_000)),
    "tele2-topup": (lambda r: "9" + "".join(r.choices("0123456789", k=9)), "RUB", (1_000, 300_000)),
    "mosenergo": (lambda r: "".join(r.choices("0123456789", k=10)), "RUB", (10_000, 900_000)),
    "mosvodokanal": (lambda r: "".join(r.choices("0123456789", k=10)), "RUB", (10_000, 500_000)),
    "mosgaz": (lambda r: "".join(r.choices("0123456789", k=10)), "RUB", (10_000, 500_000)),
    "rostelecom": (lambda r: "".join(r.choices("0123456789", k=12)), "RUB", (10_000, 300_000)),
    "tricolor-tv": (lambda r: "".join(r.choices("0123456789", k=12)), "RUB", (10_000, 300_000)),
    "steam-wallet": (lambda r: "player_" + "".join(r.choices("abcdef0123", k=8)), "RUB", (10_000, 500_000)),
    "enel-ro": (lambda r: "RO" + "".join(r.choices("0123456789", k=8)), "EUR", (100, 30_000)),
    "digi-ro": (lambda r: "".join(r.choices("0123456789", k=9)), "EUR", (100, 10_000)),
}


def _amount(minor: int, digits: int = 2) -> str:
    q, r = divmod(minor, 10**digits)
    return f"{q}.{r:0{digits}d}"


async def run_load(hub: Hub, base: str, info: DemoInfo, n: int, concurrency: int) -> int:
    """Send ``n`` payments, wait until all are final, print a summary; returns the exit code."""
    from paymux.demo.run import REFUSED_ACCOUNT

    rng = random.Random()
    channels = [c for c in info.channel_keys if c != "mobile"] or list(info.channel_keys)
    run_tag = uuid.uuid4().hex[:8]
    accepted: dict[int, str] = {}
    errors: Counter[str] = Counter()
    sem = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        with typer.progressbar(length=n, label="sending payments") as bar:

            async def one(i: int) -> None:
                service = rng.choice(list(SERVICES))
                gen, cur, (lo, hi) = SERVICES[service]
                account = (
                    REFUSED_ACCOUNT if service.endswith("-topup") and rng.randrange(50) == 0 else gen(rng)
                )
                channel = rng.choice(channels)
                body = {
                    "external_id": f"demo-{run_tag}-{i}",
                    "service": service,
                    "account": account,
                    "amount": _amount(rng.randrange(lo, hi)),
                    "currency": cur,
                }
                headers = {"Authorization": f"Bearer {info.channel_keys[channel]}"}
                async with sem:
                    for _ in range(5):
                        try:
                            r = await client.post("/api/v1/payments", json=body, headers=headers)
                        except httpx.TransportError as e:
                            errors[f"transport: {type(e).__name__}"] += 1
                            await asyncio.sleep(0.2)
                            continue
                        if r.status_code in (200, 201):
                            accepted[r.json()["id"]] = body["external_id"]
                        else:
                            errors[f"{r.status_code} {r.json().get('title', '')}"] += 1
                        break
                bar.update(1)

            await asyncio.gather(*(one(i) for i in range(n)))
    accept_s = time.monotonic() - started
    typer.echo(
        f"accepted {len(accepted)} of {n} in {accept_s:.1f} s ({len(accepted) / max(accept_s, 1e-9):.0f}/s)"
    )
    ids = list(accepted)
    deadline = time.monotonic() + 120
    with typer.progressbar(length=len(ids), label="waiting for final") as bar:
        done_before = 0
        while True:
            async with hub.read_sessions() as session:
                done = await _count_final(session, ids)
            bar.update(done - done_before)
            done_before = done
            if done >= len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
    return await _summary(hub, info, ids, n, errors, time.monotonic() - started)


async def _count_final(session: Any, ids: list[int]) -> int:
    total = 0
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        total += int(
            await session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(Payment.id.in_(chunk), Payment.status.in_(FINAL_STATUSES))
            )
            or 0
        )
    return total


async def _summary(
    hub: Hub, info: DemoInfo, ids: list[int], n: int, errors: Counter[str], elapsed: float
) -> int:
    snap = await hub.catalog.get()
    rows: list[Payment] = []
    async with hub.read_sessions() as session:
        for i in range(0, len(ids), 500):
            rows += list(
                (await session.scalars(select(Payment).where(Payment.id.in_(ids[i : i + 500])))).all()
            )
        ledger = await verify_ledger(session)
    by_status = Counter(p.status for p in rows)
    by_provider = Counter((snap.providers[p.provider_id].code, p.status) for p in rows)
    failovers = sum(p.failovers for p in rows)
    # what the emulated providers really did, by the hub's transaction id (= payment id)
    done_at: dict[str, list[str]] = {}
    for code, engine in info.emulators.items():
        for t in engine.transactions():
            if t.status == "succeeded":
                done_at.setdefault(t.txn_id, []).append(code)
    wanted = {str(i) for i in ids}
    doubled = sorted(t for t, where in done_at.items() if t in wanted and len(where) > 1)
    succeeded = {str(p.id) for p in rows if p.status == "succeeded"}
    not_delivered = sorted(succeeded - set(done_at))
    failed_but_done = sorted(str(p.id) for p in rows if p.status == "failed" and str(p.id) in done_at)
    unfinished = [p.id for p in rows if p.status not in FINAL_STATUSES]
    lost = len(ids) - len(rows)  # accepted but not in the database
    typer.echo("")
    typer.echo(f"payments sent:      {n}")
    typer.echo(f"accepted:           {len(ids)}   rejected at the API: {sum(errors.values())} {dict(errors)}")
    typer.echo(f"succeeded:          {by_status['succeeded']}")
    typer.echo(f"failed:             {by_status['failed']}")
    typer.echo(f"not final:          {len(unfinished)}")
    typer.echo(f"failovers:          {failovers}")
    typer.echo("per provider (final provider: succeeded / failed):")
    for code in sorted({c for c, _ in by_provider}):
        typer.echo(f"  {code:10s} {by_provider[(code, 'succeeded')]:6d} / {by_provider[(code, 'failed')]}")
    typer.echo(f"paid twice:         {len(doubled)}")
    typer.echo(f"lost:               {lost + len(not_delivered) + len(failed_but_done)}")
    typer.echo(f"ledger balanced:    {'yes' if ledger.balanced else 'NO'}  ({ledger.entries} entries)")
    typer.echo(f"elapsed:            {elapsed:.1f} s")
    problems = []
    if doubled:
        problems.append(f"paid twice: {doubled[:10]}")
    if lost or not_delivered or failed_but_done:
        problems.append(
            f"lost: {lost}, succeeded but not delivered {not_delivered[:10]}, "
            f"failed but delivered {failed_but_done[:10]}"
        )
    if unfinished:
        problems.append(f"not final after waiting: {unfinished[:10]}")
    if not ledger.balanced:
        problems.append("ledger does not balance")
    broken = {k: v for k, v in errors.items() if not k.startswith(("4", "503"))}
    if broken:  # refusals (4xx, 503 no provider) are answers; server errors and dropped requests are not
        problems.append(f"requests that got no proper answer: {broken}")
    for p in problems:
        typer.secho(f"PROBLEM: {p}", fg=typer.colors.RED, err=True)
    return 1 if problems else 0
