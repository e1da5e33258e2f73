"""What the admin API and the back office show of desks, days and operations, and the cash desk
report for a period and currency. Amounts are decimal strings in major units."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.user_models import Organization
from paymux.cashdesks import service
from paymux.cashdesks.models import CashDay, CashDesk, CashOperation, CashSystemOperation
from paymux.cashdesks.receipts import ReceiptData, masked_document
from paymux.money import format_amount
from paymux.wallets.models import WalletCustomer

SYSTEM_SIGN = {"cash_input": 1, "collection": -1, "investment": 1}


def amounts(values: dict[str, Any] | None) -> dict[str, str] | None:
    if values is None:
        return None
    return {c: format_amount(int(v), c) for c, v in values.items()}


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def organization_name(session: AsyncSession, desk: CashDesk) -> str:
    return str(await session.scalar(select(Organization.name).where(Organization.id == desk.organization_id)))


async def desk_view(session: AsyncSession, desk: CashDesk) -> dict[str, Any]:
    day = await service.open_day_of(session, desk, lock=False)
    return {
        "id": desk.id,
        "code": desk.code,
        "name": desk.name,
        "organization": await organization_name(session, desk),
        "currencies": desk.currencies,
        "balances": amounts(await service.desk_balances(session, desk)),
        "cashiers": await service.cashiers_of(session, desk.id),
        "open_day": day.id if day else None,
    }


def day_view(day: CashDay) -> dict[str, Any]:
    return {
        "id": day.id,
        "desk_id": day.desk_id,
        "state": day.state,
        "opened_by": day.opened_by,
        "opened_at": iso(day.opened_at),
        "opening_count": amounts(day.opening_count),
        "opening_book": amounts(day.opening_book),
        "closed_by": day.closed_by,
        "closed_at": iso(day.closed_at),
        "closing_count": amounts(day.closing_count),
        "closing_book": amounts(day.closing_book),
        "difference": amounts(day.difference),
        "accepted_by": day.accepted_by,
        "accepted_at": iso(day.accepted_at),
        "accept_note": day.accept_note,
    }


def operation_view(op: CashOperation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": op.id,
        "desk_id": op.desk_id,
        "day_id": op.day_id,
        "type": op.type,
        "state": op.state,
        "wallet": op.wallet_id,
        "customer": op.customer_id,
        "amount": format_amount(op.amount, op.currency),
        "currency": op.currency,
        "fee": format_amount(op.fee, op.currency),
        "cash": format_amount(op.cash_delta if op.state == "done" else 0, op.currency),
        "document": masked_document(op.document),
        "reverses": op.reverses_id,
        "redeem_request": op.redeem_request_id,
        "reason": op.reason,
        "wallet_operation": op.wallet_operation_id,
        "entry_id": op.entry_id,
        "cashier": op.cashier,
        "created_at": iso(op.created_at),
        "receipt": f"/api/v1/admin/cashdesks/operations/{op.id}/receipt",
    }
    if op.problem:
        out["problem"] = op.problem
    return out


def system_view(op: CashSystemOperation) -> dict[str, Any]:
    return {
        "id": op.id,
        "type": op.type,
        "desk_id": op.desk_id,
        "day_id": op.day_id,
        "amount": format_amount(op.amount, op.currency),
        "currency": op.currency,
        "note": op.note,
        "state": op.state,
        "proposed_by": op.proposed_by,
        "proposed_at": iso(op.proposed_at),
        "decided_by": op.decided_by,
        "decided_at": iso(op.decided_at),
        "decision_note": op.decision_note,
        "entry_id": op.entry_id,
    }


async def receipt_data(session: AsyncSession, op: CashOperation) -> ReceiptData:
    desk = await service.get_desk(session, op.desk_id)
    c = await session.get(WalletCustomer, op.customer_id) if op.customer_id else None
    customer = f"{c.name or ''} ({c.external_ref})".strip() if c else ""
    return ReceiptData(
        operation_id=op.id,
        type=op.type,
        state=op.state,
        at=op.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        organization=await organization_name(session, desk),
        desk=f"{desk.code} - {desk.name}",
        cashier=op.cashier,
        customer=customer,
        wallet=str(op.wallet_id or ""),
        amount=f"{format_amount(op.amount, op.currency)} {op.currency}",
        fee=f"{format_amount(op.fee, op.currency)} {op.currency}",
        document=op.document,
        reason=op.reason,
        reverses=op.reverses_id,
    )


async def desk_report(
    session: AsyncSession, desk: CashDesk, currency: str, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """The desk's days opened in [start, end), its operations in that currency, and their totals."""
    days = (
        await session.scalars(
            select(CashDay)
            .where(CashDay.desk_id == desk.id, CashDay.opened_at >= start, CashDay.opened_at < end)
            .order_by(CashDay.opened_at)
        )
    ).all()
    ops = (
        await session.scalars(
            select(CashOperation)
            .where(
                CashOperation.desk_id == desk.id,
                CashOperation.currency == currency,
                CashOperation.created_at >= start,
                CashOperation.created_at < end,
            )
            .order_by(CashOperation.id)
        )
    ).all()
    sys_ops = (
        await session.scalars(
            select(CashSystemOperation)
            .where(
                CashSystemOperation.desk_id == desk.id,
                CashSystemOperation.currency == currency,
                CashSystemOperation.state == "approved",
                CashSystemOperation.decided_at >= start,
                CashSystemOperation.decided_at < end,
            )
            .order_by(CashSystemOperation.id)
        )
    ).all()
    cash_in = sum(o.cash_delta for o in ops if o.state == "done" and o.cash_delta > 0)
    cash_out = -sum(o.cash_delta for o in ops if o.state == "done" and o.cash_delta < 0)
    sys_in = sum(s.amount for s in sys_ops if SYSTEM_SIGN[s.type] > 0)
    sys_out = sum(s.amount for s in sys_ops if SYSTEM_SIGN[s.type] < 0)
    differences = sum(
        int((d.difference or {}).get(currency, 0))
        + int(d.opening_count.get(currency, 0))
        - int(d.opening_book.get(currency, 0))
        for d in days
    )
    balance = (await service.desk_balances(session, desk)).get(currency, 0)

    def fmt(v: int) -> str:
        return format_amount(v, currency)

    return {
        "desk": desk.code,
        "name": desk.name,
        "organization": await organization_name(session, desk),
        "currency": currency,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": [
            {
                "id": d.id,
                "state": d.state,
                "opened_at": iso(d.opened_at),
                "opened_by": d.opened_by,
                "closed_at": iso(d.closed_at),
                "opening_count": fmt(int(d.opening_count.get(currency, 0))),
                "closing_count": fmt(int((d.closing_count or {}).get(currency, 0)))
                if d.closing_count
                else None,
                "difference": fmt(int((d.difference or {}).get(currency, 0))) if d.difference else None,
            }
            for d in days
        ],
        "operations": [operation_view(o) for o in ops],
        "system_operations": [system_view(s) for s in sys_ops],
        "totals": {
            "operations": sum(1 for o in ops if o.state == "done"),
            "cash_in": fmt(cash_in),
            "cash_out": fmt(cash_out),
            "system_in": fmt(sys_in),
            "system_out": fmt(sys_out),
            "differences": fmt(differences),
            "net": fmt(cash_in - cash_out + sys_in - sys_out + differences),
        },
        "balance": fmt(balance),
    }
