"""What the e-money back-office pages share (not a section): amounts in an issuer's unit, list cells,
dict-row columns, date-range and type/state/issuer filters, the rows of operations, customers and
wallets, and blocking a customer or a wallet (audited as the admin API does)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    PageNotFound,
    format_dt,
    language_of,
    timezone_of,
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.listing import Column, Filter, respond
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.wallets.models import (
    OPERATION_STATES,
    OPERATION_TYPES,
    Issuer,
    Wallet,
    WalletCustomer,
    WalletOperation,
)
from paymux.wallets.units import format_units


async def units_of(session: AsyncSession) -> dict[int, Issuer]:
    """Every issuer by id (few: read once per page)."""
    return {i.id: i for i in (await session.scalars(select(Issuer))).all()}


def amount_text(minor: int | None, issuer: Issuer | None) -> str:
    if minor is None or issuer is None:
        return ""
    return f"{format_units(minor, issuer.precision)} {issuer.currency}"


def cell_for(request: Request) -> Callable[[Any], str]:
    """How a list cell shows a value: times in the viewer's zone, flags as yes/no, None as blank."""
    tz, t = timezone_of(request), translator(language_of(request))

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, dt.datetime):
            return format_dt(v, tz)
        if isinstance(v, bool):
            return t("yes") if v else t("no")
        return str(v)

    return cell


def listing(request: Request, page: Any, title: str, table: str, **context: Any) -> Response:
    """The e-money list page (``emoney/list.html`` unless ``template`` is given) or its export."""
    template = context.pop("template", "emoney/list.html")
    return respond(request, page, template, title=title, table=table, cell=cell_for(request), **context)


def col(key: str, title: str, sort: Any = None) -> Column:
    """A column of dict rows (what the pages' ``row_view`` makes)."""

    def value(r: dict[str, Any]) -> Any:
        return r.get(key)

    return Column(key, title, sort, value)


def day_filter(column: Any, tz: str, *, end: bool) -> Callable[[Select[Any], str], Select[Any]]:
    """From (or to, inclusive) a local date typed in the viewer's timezone."""

    def apply(q: Select[Any], v: str) -> Select[Any]:
        try:
            day = dt.date.fromisoformat(v)
        except ValueError:
            return q.where(false())
        at = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), zone(tz))
        return q.where(column < at) if end else q.where(column >= at)

    return apply


def operation_row(
    op: WalletOperation, issuers: dict[int, Issuer], email: str | None = None
) -> dict[str, Any]:
    src = issuers.get(op.issuer_id)
    dst = next((i for i in issuers.values() if i.currency == op.to_currency), src)
    return {
        "id": op.id,
        "id_href": f"/backoffice/emoney/operations/{op.id}",
        "created_at": op.created_at,
        "type": op.type,
        "state": op.state,
        "customer": op.customer_id,
        "customer_href": f"/backoffice/emoney/customers/{op.customer_id}",
        "email": email,
        "amount": amount_text(op.amount, src),
        "fee": amount_text(op.fee, src),
        "to_amount": amount_text(op.to_amount, dst),
        "from_wallet": op.from_wallet_id,
        "to_wallet": op.to_wallet_id,
        "hold_reason": op.hold_reason or "",
        "blocked": op.blocked,
        "problem": (op.problem or {}).get("detail", "") if op.problem else "",
        "reviewed_by": op.reviewed_by or "",
        "review_reason": op.review_reason or "",
    }


def operation_columns(*, email: bool = False, hold: bool = False) -> list[Column]:
    cols = [
        col("id", "Operation", WalletOperation.id),
        col("created_at", "Created", WalletOperation.created_at),
        col("type", "Type", WalletOperation.type),
        col("state", "State", WalletOperation.state),
        col("customer", "Customer", WalletOperation.customer_id),
    ]
    if email:
        cols.append(col("email", "E-mail", WalletCustomer.email))
    cols += [
        col("amount", "Amount", WalletOperation.amount),
        col("fee", "Fee"),
        col("to_amount", "Received"),
        col("from_wallet", "From wallet"),
        col("to_wallet", "To wallet"),
    ]
    if hold:
        cols += [col("hold_reason", "Why it waits"), col("blocked", "Blocked")]
    else:
        cols += [col("problem", "Problem"), col("review_reason", "Review reason")]
    return cols


def type_filter() -> Filter:
    return Filter(
        "type", "Type", lambda q, v: q.where(WalletOperation.type == v), [(t, t) for t in OPERATION_TYPES]
    )


def state_filter() -> Filter:
    return Filter(
        "state", "State", lambda q, v: q.where(WalletOperation.state == v), [(s, s) for s in OPERATION_STATES]
    )


def issuer_filter(issuers: dict[int, Issuer]) -> Filter:
    codes = {i.code: i.id for i in issuers.values()}
    return Filter(
        "issuer",
        "Issuer",
        lambda q, v: q.where(WalletOperation.issuer_id == codes.get(v, -1)),
        [(c, c) for c in sorted(codes)],
    )


async def set_status(
    session: AsyncSession, me: Principal, model: Any, row_id: int, status: str, reason: str
) -> None:
    """Block or unblock a customer or a wallet, audited as the admin API does."""
    row = await locked(session, model, row_id)
    if row is None:
        raise PageNotFound()
    before = row.status
    row.status, row.updated_at = status, utcnow()
    kind = "wallet_customer" if model is WalletCustomer else "wallet"
    action = f"{kind}.block" if status == "blocked" else f"{kind}.unblock"
    await audit.record(
        session, me, action, f"{kind}:{row.id}", {"status": before}, {"status": status, "reason": reason}
    )
    await session.commit()


def customer_row(c: WalletCustomer) -> dict[str, Any]:
    return {
        "id": c.id,
        "id_href": f"/backoffice/emoney/customers/{c.id}",
        "external_ref": c.external_ref,
        "name": c.name or "",
        "email": c.email or "",
        "phone": c.phone or "",
        "kind": c.kind,
        "identification": c.identification,
        "status": c.status,
        "created_at": c.created_at,
    }


def customer_columns() -> list[Column]:
    return [
        col("id", "Customer", WalletCustomer.id),
        col("external_ref", "Reference", WalletCustomer.external_ref),
        col("name", "Name", WalletCustomer.name),
        col("email", "E-mail", WalletCustomer.email),
        col("phone", "Phone", WalletCustomer.phone),
        col("kind", "Kind", WalletCustomer.kind),
        col("identification", "Identification", WalletCustomer.identification),
        col("status", "Status", WalletCustomer.status),
        col("created_at", "Created", WalletCustomer.created_at),
    ]


def coin_row(w: Wallet, balance: int, issuers: dict[int, Issuer]) -> dict[str, Any]:
    i = issuers.get(w.issuer_id)
    return {
        "id": w.id,
        "id_href": f"/backoffice/emoney/coins/{w.id}",
        "customer": w.customer_id,
        "customer_href": f"/backoffice/emoney/customers/{w.customer_id}",
        "issuer": i.code if i else "",
        "balance": amount_text(balance, i),
        "overdraft": amount_text(w.overdraft, i),
        "status": w.status,
        "created_at": w.created_at,
    }
