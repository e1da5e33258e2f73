"""E-money in the back office: issuers (what each emitted, its float and fees; created and edited by
the Administrator), customers and their wallets ("Coins") with history and blocks, and the
transactions of a period. Anti-fraud pages are in ``wallet_fraud``.

Every list exports to Excel; amounts are shown in each issuer's unit (its precision and code).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    EMONEY,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Filter, ListSpec
from paymux.backoffice.sections.wallet_views import (
    amount_text,
    coin_row,
    col,
    customer_columns,
    customer_row,
    day_filter,
    issuer_filter,
    listing,
    operation_columns,
    operation_row,
    set_status,
    state_filter,
    type_filter,
    units_of,
)
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem
from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.wallets import service
from paymux.wallets.admin import CODE, issuer_view
from paymux.wallets.models import (
    CUSTOMER_KINDS,
    IDENTIFICATION_LEVELS,
    STATUSES,
    Issuer,
    Wallet,
    WalletCustomer,
    WalletOperation,
)
from paymux.wallets.units import format_units, parse_units

router = section_router()
register(
    Section(
        "wallets",
        router,
        menu=(
            MenuEntry("Issuers", "/backoffice/emoney/issuers", P.WALLETS_READ, 70, area=EMONEY),
            MenuEntry("Wallet customers", "/backoffice/emoney/customers", P.WALLETS_READ, 71, area=EMONEY),
            MenuEntry("Coins", "/backoffice/emoney/coins", P.WALLETS_READ, 72, area=EMONEY),
            MenuEntry("Transactions", "/backoffice/emoney/transactions", P.WALLETS_READ, 76, area=EMONEY),
        ),
        permissions=(P.WALLETS_READ, P.WALLETS_MANAGE, P.WALLETS_BLOCK),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.WALLETS_READ))]
Manager = Annotated[Principal, Depends(require(P.WALLETS_MANAGE))]
Blocker = Annotated[Principal, Depends(require(P.WALLETS_BLOCK))]
Reason = Annotated[str, Form(max_length=500)]


# --- issuers ------------------------------------------------------------------------------------------


@router.get("/emoney/issuers")
async def issuers_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    hub = request.app.state.hub
    totals: dict[int, dict[str, int]] = {}
    for i in (await units_of(session)).values():
        totals[i.id] = await service.issuer_totals(session, hub.accounts, i)

    def row(i: Issuer) -> dict[str, Any]:
        t = totals.get(i.id, {"emitted": 0, "wallets": 0, "fees": 0})
        return {
            "code": i.code,
            "code_href": f"/backoffice/emoney/issuers/{i.code}",
            "name": i.name,
            "kind": i.kind,
            "currency": i.currency,
            "precision": i.precision,
            "emission_limit": amount_text(i.emission_limit, i) or "—",
            "emitted": amount_text(t["emitted"], i),
            "float": amount_text(-t["emitted"], i),
            "wallets": amount_text(t["wallets"], i),
            "fees": amount_text(t["fees"], i),
            "enabled": i.enabled,
        }

    spec = ListSpec(
        query=select(Issuer),
        columns=[
            col("code", "Code", Issuer.code),
            col("name", "Name", Issuer.name),
            col("kind", "Kind", Issuer.kind),
            col("currency", "Currency", Issuer.currency),
            col("precision", "Precision"),
            col("emission_limit", "Emission limit"),
            col("emitted", "Emission total"),
            col("float", "Float balance"),
            col("wallets", "In wallets"),
            col("fees", "Fees"),
            col("enabled", "Enabled"),
        ],
        search=[Issuer.code, Issuer.name],
        default_sort="code",
        default_desc=False,
        sheet="issuers",
        row_view=row,
    )
    return listing(
        request,
        await spec.run(session, request),
        "Issuers",
        "issuers",
        template="emoney/issuers.html",
        intro="What each issuer emitted and has not redeemed equals what its wallets hold plus its fees.",
    )


@router.post("/emoney/issuers")
async def issuers_create(
    request: Request,
    session: DbDep,
    me: Manager,
    code: Annotated[str, Form(max_length=32)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "emoney",
    currency: Annotated[str, Form(max_length=3)] = "",
    precision: Annotated[str, Form(max_length=1)] = "",
    emission_limit: Annotated[str, Form(max_length=24)] = "",
    spread: Annotated[str, Form(max_length=12)] = "0",
) -> Response:
    """A new issuer and its float account (audited)."""
    back = "/backoffice/emoney/issuers"
    try:
        if not re.match(CODE, code.strip()) or not name.strip():
            return redirect(back, error="Give a code (small letters, digits, - or _) and a name.")
        issuer = await service.create_issuer(
            session,
            request.app.state.hub.accounts,
            code=code.strip(),
            name=name.strip(),
            kind=kind,
            currency=currency.strip().upper(),
            precision=int(precision) if precision.isdigit() else None,
            emission_limit=None,
            fee_rules={},
            exchange_spread_percent=service.parse_spread(spread.strip() or "0"),
        )
        if emission_limit.strip():
            issuer.emission_limit = parse_units(
                emission_limit.strip(), issuer.precision, "emission_limit", allow_zero=True
            )
        await session.flush()
        await audit.record(
            session, me, "wallet_issuer.create", f"wallet_issuer:{issuer.code}", None, issuer_view(issuer)
        )
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await session.commit()
    return redirect(f"{back}/{issuer.code}", "The issuer was created.")


async def _issuer(session: AsyncSession, code: str) -> Issuer:
    issuer = await session.scalar(select(Issuer).where(Issuer.code == code[:32]))
    if issuer is None:
        raise PageNotFound()
    return issuer


@router.get("/emoney/issuers/{code}")
async def issuer_detail(request: Request, code: str, session: ReadDbDep, me: Reader) -> Response:
    i = await _issuer(session, code)
    t = await service.issuer_totals(session, request.app.state.hub.accounts, i)
    return render(
        request,
        "emoney/issuer.html",
        issuer=i,
        totals={k: amount_text(v, i) for k, v in t.items()},
        float_balance=amount_text(-t["emitted"], i),
        emission_limit=format_units(i.emission_limit, i.precision) if i.emission_limit is not None else "",
    )


@router.post("/emoney/issuers/{code}")
async def issuer_edit(
    code: str,
    session: DbDep,
    me: Manager,
    name: Annotated[str, Form(max_length=200)] = "",
    emission_limit: Annotated[str, Form(max_length=24)] = "",
    spread: Annotated[str, Form(max_length=12)] = "",
    enabled: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Name, limit of emission (blank: none), spread and enabled (audited)."""
    found = await _issuer(session, code)
    back = f"/backoffice/emoney/issuers/{found.code}"
    i = await locked(session, Issuer, found.id)
    assert i is not None
    before = issuer_view(i)
    try:
        if name.strip():
            i.name = name.strip()
        text = emission_limit.strip()
        i.emission_limit = parse_units(text, i.precision, "emission_limit", allow_zero=True) if text else None
        if spread.strip():
            i.exchange_spread_percent = service.parse_spread(spread.strip())
        if enabled in ("yes", "no"):
            i.enabled = enabled == "yes"
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    i.updated_at = utcnow()
    await session.flush()
    await audit.record(session, me, "wallet_issuer.update", f"wallet_issuer:{i.code}", before, issuer_view(i))
    await session.commit()
    return redirect(back, "The issuer was saved.")


# --- customers ----------------------------------------------------------------------------------------


@router.get("/emoney/customers")
async def customers_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(WalletCustomer),
        columns=customer_columns(),
        search=[WalletCustomer.external_ref, WalletCustomer.name, WalletCustomer.email, WalletCustomer.phone],
        filters=[
            Filter(
                "kind",
                "Kind",
                lambda q, v: q.where(WalletCustomer.kind == v),
                [(k, k) for k in CUSTOMER_KINDS],
            ),
            Filter(
                "identification",
                "Identification",
                lambda q, v: q.where(WalletCustomer.identification == v),
                [(k, k) for k in IDENTIFICATION_LEVELS],
            ),
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(WalletCustomer.status == v),
                [(s, s) for s in STATUSES],
            ),
        ],
        default_sort="created_at",
        sheet="wallet-customers",
        row_view=customer_row,
    )
    return listing(request, await spec.run(session, request), "Wallet customers", "customers")


async def _wallet_rows(session: AsyncSession, where: Any, issuers: dict[int, Issuer]) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(Wallet, Account.balance)
            .outerjoin(Account, Account.id == Wallet.account_id)
            .where(where)
            .order_by(Wallet.id)
        )
    ).all()
    return [coin_row(w, int(bal or 0), issuers) for w, bal in rows]


@router.get("/emoney/customers/{customer_id}")
async def customer_detail(request: Request, customer_id: Id, session: ReadDbDep, me: Reader) -> Response:
    c = await session.get(WalletCustomer, customer_id)
    if c is None:
        raise PageNotFound()
    issuers = await units_of(session)
    wallets = await _wallet_rows(session, Wallet.customer_id == c.id, issuers)
    own = select(Wallet.id).where(Wallet.customer_id == c.id)
    spec = ListSpec(
        query=select(WalletOperation).where(
            or_(
                WalletOperation.customer_id == c.id,
                WalletOperation.to_wallet_id.in_(own),
            )
        ),
        columns=operation_columns(),
        filters=[type_filter(), state_filter()],
        default_sort="id",
        sheet=f"customer-{c.id}-operations",
        row_view=lambda op: operation_row(op, issuers),
    )
    return listing(
        request,
        await spec.run(session, request),
        "Operations",
        "operations",
        template="emoney/customer.html",
        customer=c,
        wallets=wallets,
    )


@router.post("/emoney/customers/{customer_id}/block")
async def customer_block(customer_id: Id, session: DbDep, me: Blocker, reason: Reason = "") -> Response:
    back = f"/backoffice/emoney/customers/{customer_id}"
    if not reason.strip():
        return redirect(back, error="Give a reason.")
    await set_status(session, me, WalletCustomer, customer_id, "blocked", reason.strip())
    return redirect(back, "The customer is blocked.")


@router.post("/emoney/customers/{customer_id}/unblock")
async def customer_unblock(customer_id: Id, session: DbDep, me: Blocker, reason: Reason = "") -> Response:
    back = f"/backoffice/emoney/customers/{customer_id}"
    await set_status(session, me, WalletCustomer, customer_id, "active", reason.strip())
    return redirect(back, "The customer is unblocked.")


# --- wallets ("coins") --------------------------------------------------------------------------------


@router.get("/emoney/coins")
async def coins_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    issuers = await units_of(session)
    codes = {i.code: i.id for i in issuers.values()}
    spec = ListSpec(
        query=select(Wallet, Account.balance.label("balance"), WalletCustomer.email.label("email"))
        .outerjoin(Account, Account.id == Wallet.account_id)
        .join(WalletCustomer, WalletCustomer.id == Wallet.customer_id),
        columns=[
            col("id", "Wallet", Wallet.id),
            col("customer", "Customer", Wallet.customer_id),
            col("email", "E-mail", WalletCustomer.email),
            col("issuer", "Issuer"),
            col("balance", "Balance", Account.balance),
            col("overdraft", "Overdraft"),
            col("status", "Status", Wallet.status),
            col("created_at", "Created", Wallet.created_at),
        ],
        search=[WalletCustomer.email, WalletCustomer.name, WalletCustomer.external_ref],
        filters=[
            Filter(
                "issuer",
                "Issuer",
                lambda q, v: q.where(Wallet.issuer_id == codes.get(v, -1)),
                [(c, c) for c in sorted(codes)],
            ),
            Filter("status", "Status", lambda q, v: q.where(Wallet.status == v), [(s, s) for s in STATUSES]),
        ],
        default_sort="id",
        sheet="wallets",
        row_view=lambda r: {**coin_row(r[0], int(r.balance or 0), issuers), "email": r.email or ""},
    )
    return listing(
        request,
        await spec.run(session, request),
        "Coins",
        "coins",
        intro="Customers' wallets with their balances.",
    )


@router.get("/emoney/coins/{wallet_id}")
async def coin_detail(request: Request, wallet_id: Id, session: ReadDbDep, me: Reader) -> Response:
    w = await session.get(Wallet, wallet_id)
    if w is None:
        raise PageNotFound()
    issuers = await units_of(session)
    i = issuers.get(w.issuer_id)
    balance = await service.account_balance(session, w.account_id)

    def row(r: Any) -> dict[str, Any]:
        return {
            "posting": r[0].id,
            "at": r[0].created_at,
            "amount": amount_text(r[0].amount, i),
            "kind": r.kind,
            "operation": r.operation,
            "operation_href": f"/backoffice/emoney/operations/{r.operation}" if r.operation else "",
        }

    spec = ListSpec(
        query=select(Posting, JournalEntry.kind.label("kind"), WalletOperation.id.label("operation"))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .outerjoin(WalletOperation, WalletOperation.entry_id == Posting.entry_id)
        .where(Posting.account_id == (w.account_id or -1)),
        columns=[
            col("posting", "Posting", Posting.id),
            col("at", "When", Posting.created_at),
            col("amount", "Amount", Posting.amount),
            col("kind", "Entry"),
            col("operation", "Operation"),
        ],
        default_sort="posting",
        sheet=f"wallet-{w.id}-history",
        row_view=row,
    )
    return listing(
        request,
        await spec.run(session, request),
        "History",
        "history",
        template="emoney/coin.html",
        wallet=w,
        issuer=i,
        balance=amount_text(balance, i),
        available=amount_text(balance + w.overdraft, i),
    )


@router.post("/emoney/coins/{wallet_id}/block")
async def coin_block(wallet_id: Id, session: DbDep, me: Blocker, reason: Reason = "") -> Response:
    back = f"/backoffice/emoney/coins/{wallet_id}"
    if not reason.strip():
        return redirect(back, error="Give a reason.")
    await set_status(session, me, Wallet, wallet_id, "blocked", reason.strip())
    return redirect(back, "The wallet is blocked.")


@router.post("/emoney/coins/{wallet_id}/unblock")
async def coin_unblock(wallet_id: Id, session: DbDep, me: Blocker, reason: Reason = "") -> Response:
    back = f"/backoffice/emoney/coins/{wallet_id}"
    await set_status(session, me, Wallet, wallet_id, "active", reason.strip())
    return redirect(back, "The wallet is unblocked.")


# --- transactions by period ---------------------------------------------------------------------------


@router.get("/emoney/transactions")
async def transactions(request: Request, session: ReadDbDep, me: Reader) -> Response:
    issuers = await units_of(session)
    spec = ListSpec(
        query=select(WalletOperation, WalletCustomer.email.label("email")).join(
            WalletCustomer, WalletCustomer.id == WalletOperation.customer_id
        ),
        columns=operation_columns(email=True),
        search=[WalletCustomer.email, WalletCustomer.external_ref, WalletCustomer.name],
        filters=[
            Filter(
                "from",
                "From (date)",
                day_filter(WalletOperation.created_at, me.timezone, end=False),
                kind="date",
            ),
            Filter(
                "to", "To (date)", day_filter(WalletOperation.created_at, me.timezone, end=True), kind="date"
            ),
            type_filter(),
            state_filter(),
            issuer_filter(issuers),
        ],
        default_sort="id",
        page_size=50,
        sheet="wallet-transactions",
        row_view=lambda r: operation_row(r[0], issuers, r.email),
    )
    return listing(request, await spec.run(session, request), "Transactions", "transactions")
