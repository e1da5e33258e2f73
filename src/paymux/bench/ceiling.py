"""The SQL ceiling of ``paymux bench``: the rows of accepted payments written by plain SQL.

One accepted payment writes one ``payments`` row, one ``journal_entries`` row, three ``postings``
(channel_collected +total, the provider's deposit -amount, fees_unearned -fee) and three balance
updates (the deposit's guarded by its floor, as the hub does). Here the same rows go into a database
of the same schema and catalog, by one connection and without any Python framework in between:

* ``batched``: ``batch`` payments per transaction, each table written with one ``executemany``
  (stdlib ``sqlite3`` with WAL and ``synchronous=FULL``, or ``asyncpg``) - the machine's ceiling;
* ``per_payment``: one payment per transaction, statement by statement, as the hub writes them -
  the ceiling of one connection that commits every payment on its own.

Row contents (amounts, tariffs, route reasons, timestamps) are built before the clock starts.
Money is in integer minor units.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHANNEL = "kiosk-1"
SERVICE = "bench-mobile"
PROVIDER = "alpha"
CURRENCY = "RUB"

PAYMENT_COLUMNS = (
    "id",
    "channel_id",
    "external_id",
    "request_hash",
    "service_id",
    "account",
    "currency",
    "amount",
    "fee",
    "total",
    "remuneration",
    "commission",
    "fee_tariff_id",
    "remuneration_tariff_id",
    "commission_tariff_id",
    "fields",
    "status",
    "provider_id",
    "provider_service_code",
    "route_reason",
    "tried_provider_ids",
    "attempts",
    "failovers",
    "in_doubt",
    "needs_attention",
    "next_attempt_at",
    "expires_at",
    "created_at",
    "updated_at",
)


@dataclass(slots=True)
class Ids:
    channel: int
    service: int
    provider: int
    fee_tariff: int | None
    remuneration_tariff: int | None
    commission_tariff: int | None
    collected_account: int = 0
    deposit_account: int = 0
    fees_account: int = 0


@dataclass(slots=True)
class Row:
    """One payment's values (ids are assigned when written)."""

    external_id: str
    request_hash: str
    account: str
    amount: int
    fee: int
    total: int
    remuneration: int
    commission: int
    route_reason: str


def build_rows(n: int, tag: str) -> list[Row]:
    rows: list[Row] = []
    for i in range(n):
        amount = 10_000 + (i * 7 % 900) * 100  # 100.00 - 999.00 RUB in kopecks
        fee = max(100, amount // 100)
        remuneration = amount * 12 // 1000
        account = f"9{i:09d}"
        digest = hashlib.sha256(f"{tag}|{i}|{account}|{amount}".encode()).hexdigest()
        reason = (
            f"strategy cheapest; remuneration ranking: alpha {remuneration // 100}.{remuneration % 100:02d},"
            " beta 5.50; chose alpha"
        )
        rows.append(
            Row(
                external_id=f"{tag}{i}",
                request_hash=digest,
                account=account,
                amount=amount,
                fee=fee,
                total=amount + fee,
                remuneration=remuneration,
                commission=min(amount * 5 // 1000, 5000),
                route_reason=reason,
            )
        )
    return rows


def _result(kind: str, n: int, seconds: float, batch: int) -> dict[str, Any]:
    return {
        "mode": kind,
        "payments": n,
        "batch": batch,
        "seconds": round(seconds, 4),
        "per_s": round(n / seconds, 1) if seconds > 0 else 0.0,
    }


def _pick_tariffs(
    rows: Sequence[tuple[Any, ...]], provider_id: int, channel_id: int
) -> dict[str, int | None]:
    """(id, kind, provider_id, channel_id) rows -> the tariff ids a payment of kiosk-1 to alpha uses."""
    out: dict[str, int | None] = {"fee": None, "remuneration": None, "commission": None}
    for tid, kind, prov, chan in rows:
        if kind == "remuneration" and prov != provider_id:
            continue
        if kind == "commission" and chan not in (None, channel_id):
            continue
        if out.get(kind) is None:
            out[kind] = int(tid)
    return out


# --- SQLite (stdlib sqlite3) -------------------------------------------------------------------------------

_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores the naive UTC datetimes of paymux


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _sqlite_one(conn: sqlite3.Connection, sql: str, *args: Any) -> Any:
    row = conn.execute(sql, args).fetchone()
    if row is None:
        raise RuntimeError(f"the scratch database has no row for: {sql} {args}")
    return row[0]


def _sqlite_account(conn: sqlite3.Connection, kind: str, owner: int, now: str) -> int:
    found = conn.execute(
        "SELECT id FROM accounts WHERE kind = ? AND owner_id = ? AND currency = ?", (kind, owner, CURRENCY)
    ).fetchone()
    if found:
        return int(found[0])
    cur = conn.execute(
        "INSERT INTO accounts (kind, owner_id, currency, balance, updated_at) VALUES (?, ?, ?, 0, ?)",
        (kind, owner, CURRENCY, now),
    )
    return int(cur.lastrowid or 0)


def _sqlite_ids(conn: sqlite3.Connection, needed: int) -> Ids:
    ids = Ids(
        channel=int(_sqlite_one(conn, "SELECT id FROM channels WHERE code = ?", CHANNEL)),
        service=int(_sqlite_one(conn, "SELECT id FROM services WHERE code = ?", SERVICE)),
        provider=int(_sqlite_one(conn, "SELECT id FROM providers WHERE code = ?", PROVIDER)),
        fee_tariff=None,
        remuneration_tariff=None,
        commission_tariff=None,
    )
    t = _pick_tariffs(
        conn.execute("SELECT id, kind, provider_id, channel_id FROM tariff_versions ORDER BY id").fetchall(),
        ids.provider,
        ids.channel,
    )
    ids.fee_tariff, ids.remuneration_tariff, ids.commission_tariff = (
        t["fee"],
        t["remuneration"],
        t["commission"],
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).strftime(_SQLITE_TS)
    conn.execute("BEGIN IMMEDIATE")
    ids.collected_account = _sqlite_account(conn, "channel_collected", ids.channel, now)
    ids.deposit_account = _sqlite_account(conn, "provider_deposit", ids.provider, now)
    ids.fees_account = _sqlite_account(conn, "fees_unearned", 0, now)
    balance = int(_sqlite_one(conn, "SELECT balance FROM accounts WHERE id = ?", ids.deposit_account))
    if balance < needed:  # fund the deposit with a balanced top-up entry, as `topups` would
        bank = _sqlite_account(conn, "bank", 0, now)
        cur = conn.execute(
            "INSERT INTO journal_entries (kind, payment_id, memo, created_at) VALUES ('topup', NULL, ?, ?)",
            ("bench ceiling deposit", now),
        )
        entry = cur.lastrowid
        top = needed - balance
        conn.executemany(
            _SQLITE_POSTING,
            [(entry, ids.deposit_account, top, CURRENCY, now), (entry, bank, -top, CURRENCY, now)],
        )
        conn.executemany(
            "UPDATE accounts SET balance = balance + ?, updated_at = ? WHERE id = ?",
            [(top, now, ids.deposit_account), (-top, now, bank)],
        )
    conn.execute("COMMIT")
    return ids


def _sqlite_insert(columns: Sequence[str]) -> str:
    return f"INSERT INTO payments ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_SQLITE_PAY = _sqlite_insert(PAYMENT_COLUMNS)
_SQLITE_PAY_AUTO_ID = _sqlite_insert(PAYMENT_COLUMNS[1:])
_SQLITE_ENTRY = (
    "INSERT INTO journal_entries (id, kind, payment_id, memo, created_at) VALUES (?, ?, ?, NULL, ?)"
)
_SQLITE_POSTING = (
    "INSERT INTO postings (entry_id, account_id, amount, currency, created_at) VALUES (?, ?, ?, ?, ?)"
)
_SQLITE_UPDATE = "UPDATE accounts SET balance = balance + ?, updated_at = ? WHERE id = ?"
_SQLITE_UPDATE_FLOOR = (
    "UPDATE accounts SET balance = balance + ?, updated_at = ? WHERE id = ? AND balance + ? >= ?"
)


def _sqlite_payment_params(ids: Ids, pid: int, r: Row, now: str, expires: str) -> tuple[Any, ...]:
    return (
        pid,
        ids.channel,
        r.external_id,
        r.request_hash,
        ids.service,
        r.account,
        CURRENCY,
        r.amount,
        r.fee,
        r.total,
        r.remuneration,
        r.commission,
        ids.fee_tariff,
        ids.remuneration_tariff,
        ids.commission_tariff,
        "{}",
        "accepted",
        ids.provider,
        "MOB",
        r.route_reason,
        "[]",
        0,
        0,
        0,
        0,
        now,
        expires,
        now,
        now,
    )


def sqlite_ceiling(path: Path, payments: int, batch: int = 200, per_payment: int = 0) -> dict[str, Any]:
    """Write ``payments`` accepted payments in batches (and ``per_payment`` one per transaction)."""
    conn = _sqlite_connect(path)
    try:
        rows = build_rows(payments + per_payment, tag=f"ceil-{time.time_ns()}-")
        ids = _sqlite_ids(conn, sum(r.amount for r in rows))
        ts = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        now, expires = ts.strftime(_SQLITE_TS), (ts + dt.timedelta(days=1)).strftime(_SQLITE_TS)
        next_pay = int(_sqlite_one(conn, "SELECT coalesce(max(id), 0) FROM payments")) + 1
        next_entry = int(_sqlite_one(conn, "SELECT coalesce(max(id), 0) FROM journal_entries")) + 1
        acc = (ids.collected_account, ids.deposit_account, ids.fees_account)
        out: dict[str, Any] = {}

        # batched: `batch` payments per transaction
        batched = rows[:payments]
        t0 = time.perf_counter()
        for start in range(0, len(batched), batch):
            chunk = batched[start : start + batch]
            pay_ids = range(next_pay, next_pay + len(chunk))
            entry_ids = range(next_entry, next_entry + len(chunk))
            next_pay += len(chunk)
            next_entry += len(chunk)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                _SQLITE_PAY,
                [
                    _sqlite_payment_params(ids, p, r, now, expires)
                    for p, r in zip(pay_ids, chunk, strict=True)
                ],
            )
            conn.executemany(
                _SQLITE_ENTRY,
                [(e, "payment_accept", p, now) for e, p in zip(entry_ids, pay_ids, strict=True)],
            )
            postings: list[tuple[Any, ...]] = []
            for e, r in zip(entry_ids, chunk, strict=True):
                postings.append((e, acc[0], r.total, CURRENCY, now))
                postings.append((e, acc[1], -r.amount, CURRENCY, now))
                postings.append((e, acc[2], -r.fee, CURRENCY, now))
            conn.executemany(_SQLITE_POSTING, postings)
            updated = conn.executemany(_SQLITE_UPDATE, [(r.total, now, acc[0]) for r in chunk]).rowcount
            updated += conn.executemany(
                _SQLITE_UPDATE_FLOOR, [(-r.amount, now, acc[1], -r.amount, 0) for r in chunk]
            ).rowcount
            updated += conn.executemany(_SQLITE_UPDATE, [(-r.fee, now, acc[2]) for r in chunk]).rowcount
            if updated != 3 * len(chunk):
                conn.execute("ROLLBACK")
                raise RuntimeError(f"SQL ceiling: {updated} of {3 * len(chunk)} balance updates applied")
            conn.execute("COMMIT")
        out["batched"] = _result("batched", len(batched), time.perf_counter() - t0, batch)

        # one payment per transaction, statement by statement
        if per_payment:
            t0 = time.perf_counter()
            for r in rows[payments:]:
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.execute(_SQLITE_PAY_AUTO_ID, _sqlite_payment_params(ids, 0, r, now, expires)[1:])
                pid = cur.lastrowid
                cur = conn.execute(
                    "INSERT INTO journal_entries (kind, payment_id, memo, created_at) VALUES (?, ?, NULL, ?)",
                    ("payment_accept", pid, now),
                )
                eid = cur.lastrowid
                conn.executemany(
                    _SQLITE_POSTING,
                    [
                        (eid, acc[0], r.total, CURRENCY, now),
                        (eid, acc[1], -r.amount, CURRENCY, now),
                        (eid, acc[2], -r.fee, CURRENCY, now),
                    ],
                )
                conn.execute(_SQLITE_UPDATE, (r.total, now, acc[0]))
                conn.execute(_SQLITE_UPDATE_FLOOR, (-r.amount, now, acc[1], -r.amount, 0))
                conn.execute(_SQLITE_UPDATE, (-r.fee, now, acc[2]))
                conn.execute("COMMIT")
            out["per_payment"] = _result("per_payment", per_payment, time.perf_counter() - t0, 1)
        return out
    finally:
        conn.close()


# --- PostgreSQL (asyncpg) ----------------------------------------------------------------------------------


def _pg_insert(columns: Sequence[str], returning: str = "") -> str:
    values = ", ".join(
        f"${i}::jsonb" if c in ("fields", "tried_provider_ids") else f"${i}" for i, c in enumerate(columns, 1)
    )
    return f"INSERT INTO payments ({', '.join(columns)}) VALUES ({values}){returning}"


_PG_PAY = _pg_insert(PAYMENT_COLUMNS)
_PG_PAY_AUTO_ID = _pg_insert(PAYMENT_COLUMNS[1:], " RETURNING id")
_PG_ENTRY = (
    "INSERT INTO journal_entries (id, kind, payment_id, memo, created_at) VALUES ($1, $2, $3, NULL, $4)"
)
_PG_POSTING = (
    "INSERT INTO postings (entry_id, account_id, amount, currency, created_at) VALUES ($1, $2, $3, $4, $5)"
)
_PG_UPDATE = "UPDATE accounts SET balance = balance + $1, updated_at = $2 WHERE id = $3"
_PG_UPDATE_FLOOR = (
    "UPDATE accounts SET balance = balance + $1, updated_at = $2 WHERE id = $3 AND balance + $1 >= $4"
)
_PG_NEXTVAL = "SELECT nextval($1::regclass) FROM generate_series(1, $2)"


def _pg_payment_params(ids: Ids, pid: int, r: Row, now: dt.datetime, expires: dt.datetime) -> tuple[Any, ...]:
    return (
        pid,
        ids.channel,
        r.external_id,
        r.request_hash,
        ids.service,
        r.account,
        CURRENCY,
        r.amount,
        r.fee,
        r.total,
        r.remuneration,
        r.commission,
        ids.fee_tariff,
        ids.remuneration_tariff,
        ids.commission_tariff,
        "{}",
        "accepted",
        ids.provider,
        "MOB",
        r.route_reason,
        "[]",
        0,
        0,
        False,
        False,
        now,
        expires,
        now,
        now,
    )


async def _pg_account(conn: Any, kind: str, owner: int, now: dt.datetime) -> int:
    found = await conn.fetchval(
        "SELECT id FROM accounts WHERE kind = $1 AND owner_id = $2 AND currency = $3", kind, owner, CURRENCY
    )
    if found is not None:
        return int(found)
    return int(
        await conn.fetchval(
            "INSERT INTO accounts (kind, owner_id, currency, balance, updated_at) VALUES ($1, $2, $3, 0, $4)"
            " RETURNING id",
            kind,
            owner,
            CURRENCY,
            now,
        )
    )


async def _pg_ids(conn: Any, needed: int) -> Ids:
    async def one(sql: str, arg: str) -> int:
        v = await conn.fetchval(sql, arg)
        if v is None:
            raise RuntimeError(f"the database has no row for: {sql} {arg}")
        return int(v)

    ids = Ids(
        channel=await one("SELECT id FROM channels WHERE code = $1", CHANNEL),
        service=await one("SELECT id FROM services WHERE code = $1", SERVICE),
        provider=await one("SELECT id FROM providers WHERE code = $1", PROVIDER),
        fee_tariff=None,
        remuneration_tariff=None,
        commission_tariff=None,
    )
    t = _pick_tariffs(
        [
            tuple(r)
            for r in await conn.fetch(
                "SELECT id, kind, provider_id, channel_id FROM tariff_versions ORDER BY id"
            )
        ],
        ids.provider,
        ids.channel,
    )
    ids.fee_tariff, ids.remuneration_tariff, ids.commission_tariff = (
        t["fee"],
        t["remuneration"],
        t["commission"],
    )
    now = dt.datetime.now(dt.UTC)
    async with conn.transaction():
        ids.collected_account = await _pg_account(conn, "channel_collected", ids.channel, now)
        ids.deposit_account = await _pg_account(conn, "provider_deposit", ids.provider, now)
        ids.fees_account = await _pg_account(conn, "fees_unearned", 0, now)
        balance = int(await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", ids.deposit_account))
        if balance < needed:
            bank = await _pg_account(conn, "bank", 0, now)
            entry = await conn.fetchval(
                "INSERT INTO journal_entries (kind, payment_id, memo, created_at)"
                " VALUES ('topup', NULL, 'bench ceiling deposit', $1) RETURNING id",
                now,
            )
            top = needed - balance
            await conn.executemany(
                _PG_POSTING,
                [(entry, ids.deposit_account, top, CURRENCY, now), (entry, bank, -top, CURRENCY, now)],
            )
            await conn.executemany(_PG_UPDATE, [(top, now, ids.deposit_account), (-top, now, bank)])
    return ids


async def postgres_ceiling(dsn: str, payments: int, batch: int = 200, per_payment: int = 0) -> dict[str, Any]:
    """The same as :func:`sqlite_ceiling` on PostgreSQL (``dsn`` as asyncpg takes it)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = build_rows(payments + per_payment, tag=f"ceil-{time.time_ns()}-")
        ids = await _pg_ids(conn, sum(r.amount for r in rows))
        pay_seq = await conn.fetchval("SELECT pg_get_serial_sequence('payments', 'id')")
        entry_seq = await conn.fetchval("SELECT pg_get_serial_sequence('journal_entries', 'id')")
        now = dt.datetime.now(dt.UTC)
        expires = now + dt.timedelta(days=1)
        acc = (ids.collected_account, ids.deposit_account, ids.fees_account)
        out: dict[str, Any] = {}

        batched = rows[:payments]
        t0 = time.perf_counter()
        for start in range(0, len(batched), batch):
            chunk = batched[start : start + batch]
            async with conn.transaction():
                pay_ids = [r[0] for r in await conn.fetch(_PG_NEXTVAL, pay_seq, len(chunk))]
                entry_ids = [r[0] for r in await conn.fetch(_PG_NEXTVAL, entry_seq, len(chunk))]
                await conn.executemany(
                    _PG_PAY,
                    [
                        _pg_payment_params(ids, p, r, now, expires)
                        for p, r in zip(pay_ids, chunk, strict=True)
                    ],
                )
                await conn.executemany(
                    _PG_ENTRY,
                    [(e, "payment_accept", p, now) for e, p in zip(entry_ids, pay_ids, strict=True)],
                )
                postings: list[tuple[Any, ...]] = []
                for e, r in zip(entry_ids, chunk, strict=True):
                    postings.append((e, acc[0], r.total, CURRENCY, now))
                    postings.append((e, acc[1], -r.amount, CURRENCY, now))
                    postings.append((e, acc[2], -r.fee, CURRENCY, now))
                await conn.executemany(_PG_POSTING, postings)
                await conn.executemany(_PG_UPDATE, [(r.total, now, acc[0]) for r in chunk])
                await conn.executemany(_PG_UPDATE_FLOOR, [(-r.amount, now, acc[1], 0) for r in chunk])
                await conn.executemany(_PG_UPDATE, [(-r.fee, now, acc[2]) for r in chunk])
        out["batched"] = _result("batched", len(batched), time.perf_counter() - t0, batch)

        if per_payment:
            t0 = time.perf_counter()
            for r in rows[payments:]:
                async with conn.transaction():
                    pid = await conn.fetchval(
                        _PG_PAY_AUTO_ID, *_pg_payment_params(ids, 0, r, now, expires)[1:]
                    )
                    eid = await conn.fetchval(
                        "INSERT INTO journal_entries (kind, payment_id, memo, created_at)"
                        " VALUES ($1, $2, NULL, $3) RETURNING id",
                        "payment_accept",
                        pid,
                        now,
                    )
                    await conn.executemany(
                        _PG_POSTING,
                        [
                            (eid, acc[0], r.total, CURRENCY, now),
                            (eid, acc[1], -r.amount, CURRENCY, now),
                            (eid, acc[2], -r.fee, CURRENCY, now),
                        ],
                    )
                    await conn.execute(_PG_UPDATE, r.total, now, acc[0])
                    await conn.execute(_PG_UPDATE_FLOOR, -r.amount, now, acc[1], 0)
                    await conn.execute(_PG_UPDATE, -r.fee, now, acc[2])
            out["per_payment"] = _result("per_payment", per_payment, time.perf_counter() - t0, 1)
        return out
    finally:
        await conn.close()
