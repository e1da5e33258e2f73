"""Recording audit events and verifying the hash chain.

Every row's ``hash`` is SHA-256 over the previous row's hash and the row's canonical JSON content;
``seq`` numbers rows 1, 2, 3... without gaps. A changed row breaks its own hash, a removed row
breaks the sequence and the next row's link. The app only ever inserts into the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.audit.models import AuditEvent
from paymux.db.base import utcnow
from paymux.masking import mask_secrets

GENESIS = "0" * 64
# any constant: the advisory lock that orders appends on PostgreSQL
_PG_LOCK_KEY = 7_317_202_611


def _plain(value: Any) -> Any:
    """JSON-ready copy of ``value`` (what is stored is exactly what is hashed)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=_default, ensure_ascii=False))


def _default(o: Any) -> Any:
    if isinstance(o, dt.datetime):
        return o.astimezone(dt.UTC).isoformat() if o.tzinfo else o.isoformat()
    if isinstance(o, dt.date | dt.time):
        return o.isoformat()
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if isinstance(o, set | frozenset | tuple):
        return sorted(o) if isinstance(o, set | frozenset) else list(o)
    return str(o)


def canonical(row: AuditEvent) -> bytes:
    content = {
        "seq": row.seq,
        "at": row.at.astimezone(dt.UTC).isoformat(),
        "actor": row.actor,
        "actor_user_id": row.actor_user_id,
        "ip": row.ip,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "before": row.before,
        "after": row.after,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, row: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(row)).hexdigest()


async def record(
    session: AsyncSession,
    actor: Any,
    action: str,
    target: str = "",
    before: Any = None,
    after: Any = None,
    *,
    outcome: str = "ok",
    ip: str | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (the caller commits, with the change itself).

    ``actor``: a string, or an object with ``audit_name`` (and optionally ``user_id`` and ``ip``),
    e.g. a ``Principal``. ``before``/``after``: JSON-able states; secret fields are masked.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    last = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        )
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    name = actor if isinstance(actor, str) else str(getattr(actor, "audit_name", actor))
    row = AuditEvent(
        seq=seq,
        at=utcnow(),
        actor=name[:200],
        actor_user_id=None if isinstance(actor, str) else getattr(actor, "user_id", None),
        ip=(ip if ip is not None else ("" if isinstance(actor, str) else getattr(actor, "ip", "") or ""))[
            :64
        ],
        action=action[:64],
        target=target[:300],
        outcome=outcome[:16],
        # secrets never reach the log (callers pass states as reads show them; this is the safety net)
        before=mask_secrets(_plain(before)),
        after=mask_secrets(_plain(after)),
        prev_hash=prev,
    )
    row.hash = chain_hash(prev, row)
    session.add(row)
    await session.flush()
    return row


@dataclass
class ChainCheck:
    rows: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_chain(session: AsyncSession, *, batch: int = 1000, max_problems: int = 50) -> ChainCheck:
    """Walk the whole log in order and report every broken link, changed row or missing seq."""
    check = ChainCheck()
    prev_hash = GENESIS
    expected_seq = 1
    after_seq = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(batch)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            check.rows += 1
            if row.seq != expected_seq:
                check.problems.append(f"rows {expected_seq}..{row.seq - 1} are missing (removed)")
            if row.prev_hash != prev_hash:
                check.problems.append(f"row {row.seq}: does not link to the previous row")
            if chain_hash(row.prev_hash, row) != row.hash:
                check.problems.append(f"row {row.seq}: content does not match its hash (changed)")
            prev_hash = row.hash
            expected_seq = row.seq + 1
            after_seq = row.seq
            check.head_seq, check.head_hash = row.seq, row.hash
        session.expunge_all()
        if len(check.problems) >= max_problems:
            break
    return check


async def count_events(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
