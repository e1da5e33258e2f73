"""Resolving discrepancies: post what is missing on our side, cancel our erroneous payments, accept.

Each line is resolved at most once: the lines are locked in id order before they are read, and each
is claimed by an update guarded by ``resolution IS NULL`` (a second click, or a concurrent one, waits
for the first, updates nothing and says what the line became). The payment changes are
guarded too: a payment is cancelled only while it is ``succeeded``, booked as succeeded only while it
is ``failed``/``cancelled``, and a payment created for a line has a deterministic ``external_id``
(unique per channel) and, when their id is their own txn id, ``provider_txn_id`` (unique per
provider), so the same transaction of theirs is never booked twice, even from two reconciliations.
Every action is written to the audit log in the same transaction. The caller commits.

Journal entries (``paymux.payments.postings``):
* post (new payment, or ours failed but theirs succeeded): acceptance + success entries;
* cancel (ours succeeded): the acceptance reversed and the success entry reversed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.catalog.models import Provider
from paymux.catalog.snapshot import Snapshot
from paymux.db.base import utcnow
from paymux.ledger.service import LedgerError, post_entry
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.payments.postings import accept_lines, provider_account, reverse, success_lines
from paymux.payments.service import price
from paymux.reconciliation.models import (
    ACCEPTED,
    AMOUNT_DIFFERS,
    CANCELLED,
    DUPLICATE,
    MISSING_OURS,
    MISSING_THEIRS,
    POSTED,
    STATUS_DIFFERS,
    Reconciliation,
    ReconciliationLine,
)
from paymux.runtime import Hub
from paymux.tariffs.calc import compute

ACTIONS = ("post", "cancel", "accept")
RESOLUTION_OF = {"post": POSTED, "cancel": CANCELLED, "accept": ACCEPTED}


class ResolveError(ValueError):
    """This action does not apply to this line (the message says why)."""


@dataclass
class Outcome:
    line_id: int
    done: bool
    message: str
    payment_id: int | None = None


def allowed_actions(line: ReconciliationLine) -> tuple[str, ...]:
    """The actions that make sense for a line in its state (none once it is resolved)."""
    if line.resolution is not None:
        return ()
    k = line.kind
    if k == MISSING_OURS:
        return ("post", "accept") if line.payment_id is None else ("accept",)
    if k in (MISSING_THEIRS, AMOUNT_DIFFERS):
        return ("cancel", "accept") if line.our_status == "succeeded" else ("accept",)
    if k == STATUS_DIFFERS:
        if line.our_status == "succeeded" and line.provider_status == "failed":
            return ("cancel", "accept")
        if line.our_status in ("failed", "cancelled") and line.provider_status == "succeeded":
            return ("post", "accept")
        return ("accept",)
    if k == DUPLICATE:
        return ("accept",)
    return ()


def line_state(line: ReconciliationLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "txn_ref": line.txn_ref,
        "payment_id": line.payment_id,
        "provider_amount": line.provider_amount,
        "our_amount": line.our_amount,
        "currency": line.currency,
        "provider_status": line.provider_status,
        "our_status": line.our_status,
        "resolution": line.resolution,
        "reason": line.reason,
        "resolved_payment_id": line.resolved_payment_id,
    }


@dataclass
class Context:
    hub: Hub
    session: AsyncSession
    recon: Reconciliation
    provider: Provider
    snap: Snapshot
    actor: Any
    channel: str | None
    service: str | None


async def resolve_lines(
    hub: Hub,
    session: AsyncSession,
    recon: Reconciliation,
    line_ids: list[int],
    action: str,
    *,
    actor: Any,
    reason: str = "",
    channel: str | None = None,
    service: str | None = None,
) -> list[Outcome]:
    """Apply ``action`` to each line (each in its own savepoint); one outcome per line, in order."""
    if action not in ACTIONS:
        raise ResolveError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    reason = reason.strip()
    if action == "accept" and not reason:
        raise ResolveError("accepting a difference needs a reason")
    provider = await session.get(Provider, recon.provider_id)
    assert provider is not None
    ctx = Context(hub, session, recon, provider, await hub.catalog.get(), actor, channel, service)
    out: list[Outcome] = []
    ids = list(dict.fromkeys(line_ids))
    # every line is locked before any is read, in id order: a resolution of the same lines at the same
    # moment waits here and then finds them resolved (and by what), as a second click does
    await session.execute(
        select(ReconciliationLine.id)
        .where(ReconciliationLine.id.in_(ids))
        .order_by(ReconciliationLine.id)
        .with_for_update()
    )
    for line_id in ids:
        line = await session.get(ReconciliationLine, line_id, populate_existing=True)
        if line is None or line.reconciliation_id != recon.id:
            out.append(Outcome(line_id, False, f"line {line_id} is not in reconciliation {recon.id}"))
            continue
        if line.resolution is not None:
            out.append(Outcome(line_id, False, f"already {line.resolution}", line.resolved_payment_id))
            continue
        if action not in allowed_actions(line):
            out.append(
                Outcome(line_id, False, f"cannot {action} a line that is {line.kind.replace('_', ' ')}")
            )
            continue
        before = line_state(line)
        try:
            async with session.begin_nested():
                if not await _claim(session, line, action, reason, actor):
                    out.append(Outcome(line_id, False, "already resolved"))
                    continue
                payment_id, message = await _ACTIONS[action](ctx, line)
                await session.execute(
                    update(ReconciliationLine)
                    .where(ReconciliationLine.id == line.id)
                    .values(resolved_payment_id=payment_id)
                )
                await session.refresh(line)
                await audit.record(
                    session,
                    actor,
                    f"reconciliation.{action}",
                    f"reconciliation-line:{line.id}",
                    before,
                    {**line_state(line), "reconciliation_id": recon.id, "message": message},
                )
        except (ResolveError, LedgerError) as e:
            out.append(Outcome(line_id, False, str(e)))
            continue
        out.append(Outcome(line_id, True, message, payment_id))
    return out


async def _claim(
    session: AsyncSession, line: ReconciliationLine, action: str, reason: str, actor: Any
) -> bool:
    name = actor if isinstance(actor, str) else str(getattr(actor, "audit_name", actor))
    row = (
        await session.execute(
            update(ReconciliationLine)
            .where(ReconciliationLine.id == line.id, ReconciliationLine.resolution.is_(None))
            .values(
                resolution=RESOLUTION_OF[action],
                reason=reason or None,
                resolved_by=name[:200],
                resolved_at=utcnow(),
            )
            .returning(ReconciliationLine.id)
        )
    ).first()
    return row is not None


async def _accept(ctx: Context, line: ReconciliationLine) -> tuple[int | None, str]:
    return line.payment_id, "difference accepted"


async def _cancel(ctx: Context, line: ReconciliationLine) -> tuple[int | None, str]:
    """Cancel our succeeded payment: reverse its acceptance and its success entry."""
    session, now = ctx.session, utcnow()
    res = await session.execute(
        update(Payment)
        .where(
            Payment.id == line.payment_id,
            Payment.provider_id == ctx.provider.id,
            Payment.status == "succeeded",
        )
        .values(
            status="cancelled",
            error_code="reconciliation",
            error_message=f"cancelled by reconciliation {ctx.recon.id}"[:500],
            updated_at=now,
        )
        .returning(Payment.id)
    )
    if res.first() is None:
        raise ResolveError(f"payment {line.payment_id} is no longer succeeded; nothing to cancel")
    p = await session.get(Payment, line.payment_id, populate_existing=True)
    assert p is not None
    key = _provider_key(ctx, p.currency)
    memo = f"reconciliation {ctx.recon.id}: cancelled"
    await post_entry(
        session,
        ctx.hub.accounts,
        "payment_cancel",
        reverse(accept_lines(p, key)),
        payment_id=p.id,
        memo=memo,
        at=now,
    )
    lines = success_lines(p, ctx.provider.id)
    if any(ln.amount for ln in lines):
        await post_entry(
            session,
            ctx.hub.accounts,
            "payment_success_reversal",
            reverse(lines),
            payment_id=p.id,
            memo=memo,
            at=now,
        )
    return p.id, f"payment {p.id} cancelled, {format_amount(p.amount, p.currency)} {p.currency} reversed"


async def _post(ctx: Context, line: ReconciliationLine) -> tuple[int | None, str]:
    if line.payment_id is not None:
        return await _post_existing(ctx, line)
    return await _post_new(ctx, line)


async def _post_existing(ctx: Context, line: ReconciliationLine) -> tuple[int | None, str]:
    """Ours failed (or was cancelled) but the provider did it: book it as succeeded."""
    session, now = ctx.session, utcnow()
    res = await session.execute(
        update(Payment)
        .where(
            Payment.id == line.payment_id,
            Payment.provider_id == ctx.provider.id,
            Payment.status.in_(("failed", "cancelled")),
        )
        .values(status="succeeded", error_code=None, error_message=None, updated_at=now)
        .returning(Payment.id)
    )
    if res.first() is None:
        raise ResolveError(f"payment {line.payment_id} is no longer failed or cancelled")
    p = await session.get(Payment, line.payment_id, populate_existing=True)
    assert p is not None
    await _book(ctx, p, now)
    return p.id, f"payment {p.id} booked as succeeded"


def _provider_key(ctx: Context, currency: str) -> Any:
    return provider_account(ctx.provider.id, ctx.provider.settlement, currency)


async def _book(ctx: Context, p: Payment, now: dt.datetime) -> None:
    memo = f"reconciliation {ctx.recon.id}: posted"
    key = _provider_key(ctx, p.currency)
    await post_entry(
        ctx.session,
        ctx.hub.accounts,
        "payment_accept",
        accept_lines(p, key),
        payment_id=p.id,
        memo=memo,
        at=now,
    )
    lines = success_lines(p, ctx.provider.id)
    if any(ln.amount for ln in lines):
        await post_entry(
            ctx.session, ctx.hub.accounts, "payment_success", lines, payment_id=p.id, memo=memo, at=now
        )


def external_id(provider_id: int, ref: str) -> str:
    """The external_id of the payment booked for their transaction ``ref`` (the same every time)."""
    return "rc-" + hashlib.sha256(f"{provider_id}:{ref}".encode()).hexdigest()[:40]


async def _post_new(ctx: Context, line: ReconciliationLine) -> tuple[int | None, str]:
    """Create the payment the provider has and we do not, as succeeded, with its entries."""
    from paymux.reconciliation.service import load_mapping

    session, snap, now = ctx.session, ctx.snap, utcnow()
    mapping = await load_mapping(session, ctx.provider.id)
    channel_code = ctx.channel or (mapping.post.channel if mapping else None)
    service_code = ctx.service or (mapping.post.service if mapping else None)
    if not channel_code or not service_code:
        raise ResolveError(
            "choose the channel and the service to book the payment in (or set them in the mapping)"
        )
    channel = snap.channels_by_code.get(channel_code)
    service = snap.services.get(service_code)
    if channel is None:
        raise ResolveError(f"channel {channel_code!r} does not exist")
    if service is None:
        raise ResolveError(f"service {service_code!r} does not exist")
    route = next((c for c in snap.routes.get(service.id, ()) if c.provider_id == ctx.provider.id), None)
    if route is None:
        raise ResolveError(f"service {service.code} has no route to provider {ctx.provider.code}")
    if line.currency != service.currency:
        raise ResolveError(
            f"the line is in {line.currency}; service {service.code} is paid in {service.currency}"
        )
    if not line.account:
        raise ResolveError("the line has no account (map the account column of the register)")
    if line.provider_amount is None or line.provider_amount <= 0 or line.txn_ref is None:
        raise ResolveError("the line has no amount")
    at = line.provider_at or now
    pricing = price(snap, service, channel, line.provider_amount, at)
    rem = snap.tariff(
        "remuneration",
        currency=service.currency,
        at=at,
        service_id=service.id,
        provider_id=ctx.provider.id,
        channel=channel,
    )
    ext = external_id(ctx.provider.id, line.txn_ref)
    txn = line.txn_ref if ctx.recon.id_kind == "provider_txn_id" else None
    existing = await _booked(ctx, channel.id, ext, txn)
    if existing is not None:
        return existing, f"already booked as payment {existing}; nothing posted again"
    amount = line.provider_amount
    p = Payment(
        channel_id=channel.id,
        external_id=ext,
        request_hash=hashlib.sha256(f"reconciliation:{ext}:{amount}".encode()).hexdigest(),
        service_id=service.id,
        account=line.account,
        currency=service.currency,
        amount=amount,
        fee=pricing.fee,
        total=amount + pricing.fee,
        remuneration=compute(rem.rule, amount) if rem else 0,
        remuneration_tariff_id=rem.id if rem else None,
        commission=pricing.commission,
        fee_tariff_id=pricing.fee_tariff_id,
        commission_tariff_id=pricing.commission_tariff_id,
        fields={},
        status="succeeded",
        provider_id=ctx.provider.id,
        provider_service_code=route.provider_service_code,
        route_reason=f"posted by reconciliation {ctx.recon.id}",
        tried_provider_ids=[ctx.provider.id],
        attempts=0,
        failovers=0,
        in_doubt=False,
        needs_attention=False,
        provider_txn_id=txn,
        expires_at=at,
        created_at=at,
        updated_at=now,
        final_at=at,
    )
    try:
        async with session.begin_nested():
            session.add(p)
            await session.flush()
    except IntegrityError:  # booked concurrently for the same transaction of theirs: now committed
        if p in session:
            session.expunge(p)
        existing = await _booked(ctx, channel.id, ext, txn)
        if existing is None:
            raise ResolveError("this transaction was booked by someone else at the same moment") from None
        return existing, f"already booked as payment {existing}; nothing posted again"
    await _book(ctx, p, now)
    return p.id, f"payment {p.id} created as succeeded, {format_amount(amount, p.currency)} {p.currency}"


async def _booked(ctx: Context, channel_id: int, ext: str, txn: str | None) -> int | None:
    """The payment already booked for their transaction (by its external id, or their txn id)."""
    found = await ctx.session.scalar(
        select(Payment.id).where(
            or_(
                (Payment.channel_id == channel_id) & (Payment.external_id == ext),
                (Payment.provider_id == ctx.provider.id) & (Payment.provider_txn_id == txn)
                if txn is not None
                else Payment.id.is_(None),
            )
        )
    )
    return None if found is None else int(found)


_ACTIONS = {"post": _post, "cancel": _cancel, "accept": _accept}
