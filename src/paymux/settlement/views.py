"""JSON shapes of settlement records (admin API) and small shared formatting."""

from __future__ import annotations

from typing import Any

from paymux.catalog.snapshot import Snapshot
from paymux.money import format_amount
from paymux.settlement.balances import Deposit, Point
from paymux.settlement.debts import DebtDay
from paymux.settlement.models import BalanceAlert, BankStatement, PaymentOrder, StatementLine


def code_of(snap: Snapshot, provider_id: int | None) -> str | None:
    if provider_id is None:
        return None
    p = snap.providers.get(provider_id)
    return p.code if p else str(provider_id)


def deposit_out(d: Deposit) -> dict[str, Any]:
    c = d.currency
    return {
        "provider": d.provider.code,
        "name": d.provider.name,
        "currency": c,
        "balance": format_amount(d.balance, c),
        "overdraft": format_amount(d.overdraft, c),
        "available": format_amount(d.available, c),
        "threshold": format_amount(d.rule.threshold, c) if d.rule else None,
        "low": d.low,
    }


def point_out(p: Point, currency: str) -> dict[str, Any]:
    return {
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "opening": format_amount(p.opening, currency),
        "inflow": format_amount(p.inflow, currency),
        "outflow": format_amount(p.outflow, currency),
        "closing": format_amount(p.closing, currency),
    }


def debt_out(d: DebtDay, currency: str) -> dict[str, Any]:
    return {
        "day": d.day.isoformat(),
        "payments": d.payments,
        "amount": format_amount(d.gross, currency),
        "remuneration": format_amount(d.remuneration, currency),
        "withheld": format_amount(d.withheld, currency),
        "debt": format_amount(d.debt, currency),
    }


def order_out(o: PaymentOrder, snap: Snapshot) -> dict[str, Any]:
    c = o.currency
    return {
        "id": o.id,
        "number": o.number,
        "provider": code_of(snap, o.provider_id),
        "currency": c,
        "period_start": o.period_start.isoformat(),
        "period_end": o.period_end.isoformat(),
        "payments": o.payments,
        "gross": format_amount(o.gross, c),
        "remuneration": format_amount(o.remuneration, c),
        "amount": format_amount(o.amount, c),
        "purpose": o.purpose,
        "payee": o.payee,
        "status": o.status,
        "created_by": o.created_by,
        "created_at": o.created_at,
        "approved_by": o.approved_by,
        "approved_at": o.approved_at,
        "exported_at": o.exported_at,
        "paid_at": o.paid_at,
        "paid_by": o.paid_by,
        "entry_id": o.entry_id,
    }


def alert_out(a: BalanceAlert, snap: Snapshot) -> dict[str, Any]:
    return {
        "id": a.id,
        "provider": code_of(snap, a.provider_id),
        "currency": a.currency,
        "balance": format_amount(a.balance, a.currency),
        "threshold": format_amount(a.threshold, a.currency),
        "status": a.status,
        "attempts": a.attempts,
        "delivered": a.delivered,
        "last_error": a.last_error,
        "due_at": a.due_at,
        "created_at": a.created_at,
    }


def statement_out(s: BankStatement) -> dict[str, Any]:
    return {
        "id": s.id,
        "format": s.format,
        "file_name": s.file_name,
        "account": s.account,
        "lines": s.lines,
        "new_lines": s.new_lines,
        "matched": s.matched,
        "imported_by": s.imported_by,
        "created_at": s.created_at,
    }


def line_out(ln: StatementLine, snap: Snapshot) -> dict[str, Any]:
    return {
        "id": ln.id,
        "direction": ln.direction,
        "amount": format_amount(ln.amount, ln.currency),
        "currency": ln.currency,
        "booked_on": ln.booked_on.isoformat(),
        "counterparty": ln.counterparty,
        "counterparty_account": ln.counterparty_account,
        "counterparty_inn": ln.counterparty_inn,
        "reference": ln.reference,
        "purpose": ln.purpose,
        "status": ln.status,
        "order_id": ln.order_id,
        "provider": code_of(snap, ln.provider_id),
        "entry_id": ln.entry_id,
    }
