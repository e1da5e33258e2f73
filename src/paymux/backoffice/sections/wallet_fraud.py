"""E-money anti-fraud in the back office: applications (operations held by a limit or a rule) searched
by operation id, customer e-mail or exact amount; an operation's page to approve or reject it with a
reason and to block or unblock it; the blocks (customers, wallets, operations); and the rules.

The Anti-fraud specialist (``wallets.block``) acts; ``wallets.read`` reads. Every change is audited.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux import audit
from paymux.api.params import Id, parse_id
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
    listing,
    operation_columns,
    operation_row,
    type_filter,
    units_of,
)
from paymux.errors import Problem
from paymux.ledger.models import Account
from paymux.wallets import fraud, service
from paymux.wallets.models import (
    FRAUD_RULE_KINDS,
    OPERATION_TYPES,
    Issuer,
    Wallet,
    WalletCustomer,
    WalletFraudRule,
    WalletOperation,
)

router = section_router()
register(
    Section(
        "wallet_fraud",
        router,
        menu=(
            MenuEntry("Applications", "/backoffice/emoney/applications", P.WALLETS_READ, 73, area=EMONEY),
            MenuEntry("Blocks", "/backoffice/emoney/blocks", P.WALLETS_READ, 74, area=EMONEY),
            MenuEntry("Anti-fraud rules", "/backoffice/emoney/fraud-rules", P.WALLETS_READ, 75, area=EMONEY),
        ),
        permissions=(P.WALLETS_READ, P.WALLETS_BLOCK),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.WALLETS_READ))]
Blocker = Annotated[Principal, Depends(require(P.WALLETS_BLOCK))]
Reason = Annotated[str, Form(max_length=500)]
INTRO = "Operations held by a limit or an anti-fraud rule, oldest first: open one to approve or reject it."
RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
DONE = {
    "approve": "The operation is approved.",
    "reject": "The operation is rejected.",
    "block": "The operation is blocked.",
    "unblock": "The operation is unblocked.",
}


# --- applications -------------------------------------------------------------------------------------


@router.get("/emoney/applications")
async def applications(request: Request, session: ReadDbDep, me: Reader) -> Response:
    issuers = await units_of(session)
    params = request.query_params
    query: Any = (
        select(WalletOperation, WalletCustomer.email.label("email"))
        .join(WalletCustomer, WalletCustomer.id == WalletOperation.customer_id)
        .where(WalletOperation.state == "pending_review")
    )
    query = await fraud.search(
        query,
        session,
        operation_id=parse_id(params.get("operation", "").strip())
        if params.get("operation", "").strip()
        else None,
        email=params.get("email", "")[:254],
        amount=params.get("amount", "")[:24],
    )
    if params.get("operation", "").strip() and parse_id(params.get("operation", "").strip()) is None:
        query = query.where(WalletOperation.id == -1)  # not an id: nothing has it
    spec = ListSpec(
        query=query,
        columns=operation_columns(email=True, hold=True),
        filters=[
            # applied above (they need the issuers' precisions); listed so the form keeps them
            Filter("operation", "Operation id", lambda q, v: q),
            Filter("email", "Customer e-mail", lambda q, v: q),
            Filter("amount", "Exact amount", lambda q, v: q),
            type_filter(),
        ],
        default_sort="id",
        default_desc=False,
        sheet="wallet-applications",
        row_view=lambda r: operation_row(r[0], issuers, r.email),
    )
    return listing(
        request,
        await spec.run(session, request),
        "Applications",
        "applications",
        intro=INTRO,
    )


@router.get("/emoney/operations/{operation_id}")
async def operation_detail(request: Request, operation_id: Id, session: ReadDbDep, me: Reader) -> Response:
    op = await session.get(WalletOperation, operation_id)
    if op is None:
        raise PageNotFound()
    issuers = await units_of(session)
    customer = await session.get(WalletCustomer, op.customer_id)
    rule = await session.get(WalletFraudRule, op.fraud_rule_id) if op.fraud_rule_id else None
    return render(
        request,
        "emoney/operation.html",
        op=op,
        row=operation_row(op, issuers, customer.email if customer else None),
        customer=customer,
        rule=rule,
    )


@router.post("/emoney/operations/{operation_id}/{action}")
async def operation_act(
    request: Request, operation_id: Id, action: str, session: DbDep, me: Blocker, reason: Reason = ""
) -> Response:
    """Approve, reject, block or unblock an operation that waits, with a reason (audited)."""
    if action not in DONE:
        raise PageNotFound()
    back = f"/backoffice/emoney/operations/{operation_id}"
    reason = reason.strip()
    if action in ("reject", "block") and not reason:
        return redirect(back, error="Give a reason.")
    try:
        if action in ("approve", "reject"):
            op = await service.review(
                session,
                request.app.state.hub.accounts,
                operation_id,
                approve=action == "approve",
                actor=me.audit_name,
                reason=reason,
            )
            before: dict[str, Any] = {"state": "pending_review"}
            after: dict[str, Any] = {"state": op.state, "reason": reason}
        else:
            op = await fraud.set_operation_blocked(session, operation_id, action == "block")
            before, after = {"blocked": action != "block"}, {"blocked": op.blocked, "reason": reason}
    except Problem as e:
        await session.rollback()
        if e.status == 404:
            raise PageNotFound() from None
        return redirect(back, error=e.detail or e.title)
    await audit.record(session, me, f"wallet_operation.{action}", f"wallet_operation:{op.id}", before, after)
    await session.commit()
    if action == "approve" and op.state == "failed":
        return redirect(back, error=(op.problem or {}).get("detail") or "The operation could not be posted.")
    return redirect(back, DONE[action])


# --- blocks -------------------------------------------------------------------------------------------

BLOCK_KINDS = (("customers", "Customers"), ("wallets", "Wallets"), ("operations", "Operations"))


@router.get("/emoney/blocks")
async def blocks(request: Request, session: ReadDbDep, me: Reader) -> Response:
    """What is blocked: customers, wallets or held operations (one list at a time, ``?what=``)."""
    what = request.query_params.get("what", "customers")
    issuers = await units_of(session)
    if what == "wallets":
        spec = ListSpec(
            query=select(Wallet, Account.balance.label("balance"))
            .outerjoin(Account, Account.id == Wallet.account_id)
            .where(Wallet.status == "blocked"),
            columns=[
                col("id", "Wallet", Wallet.id),
                col("customer", "Customer", Wallet.customer_id),
                col("issuer", "Issuer"),
                col("balance", "Balance"),
                col("status", "Status"),
            ],
            default_sort="id",
            sheet="blocked-wallets",
            row_view=lambda r: coin_row(r[0], int(r.balance or 0), issuers),
        )
    elif what == "operations":
        spec = ListSpec(
            query=select(WalletOperation).where(WalletOperation.blocked.is_(True)),
            columns=operation_columns(hold=True),
            default_sort="id",
            sheet="blocked-operations",
            row_view=lambda op: operation_row(op, issuers),
        )
    else:
        what = "customers"
        spec = ListSpec(
            query=select(WalletCustomer).where(WalletCustomer.status == "blocked"),
            columns=customer_columns(),
            search=[WalletCustomer.email, WalletCustomer.name, WalletCustomer.external_ref],
            default_sort="id",
            sheet="blocked-customers",
            row_view=customer_row,
        )
    return listing(
        request,
        await spec.run(session, request),
        "Blocks",
        f"blocked-{what}",
        template="emoney/blocks.html",
        what=what,
        kinds=BLOCK_KINDS,
    )


# --- rules --------------------------------------------------------------------------------------------


@router.get("/emoney/fraud-rules")
async def rules_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    issuers = await units_of(session)

    def row(r: WalletFraudRule) -> dict[str, Any]:
        i = issuers.get(r.issuer_id) if r.issuer_id else None
        return {
            "id": r.id,
            "name": r.name,
            "kind": r.kind,
            "type": r.type,
            "issuer": i.code if i else "",
            "max_count": r.max_count,
            "max_amount": amount_text(r.max_amount, i),
            "window_minutes": r.window_minutes,
            "enabled": r.enabled,
            "what": fraud.describe(r, i),
            "created_by": r.created_by,
        }

    spec = ListSpec(
        query=select(WalletFraudRule),
        columns=[
            col("name", "Name", WalletFraudRule.name),
            col("kind", "Kind", WalletFraudRule.kind),
            col("type", "Type", WalletFraudRule.type),
            col("issuer", "Issuer"),
            col("max_count", "Most operations"),
            col("max_amount", "Most amount"),
            col("window_minutes", "Window, minutes"),
            col("enabled", "Enabled"),
            col("what", "What it holds"),
            col("created_by", "Added by"),
        ],
        search=[WalletFraudRule.name],
        default_sort="name",
        default_desc=False,
        sheet="anti-fraud-rules",
        row_view=row,
    )
    return listing(
        request,
        await spec.run(session, request),
        "Anti-fraud rules",
        "rules",
        template="emoney/rules.html",
        kinds=FRAUD_RULE_KINDS,
        types=OPERATION_TYPES,
        issuers=sorted(i.code for i in issuers.values()),
    )


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


@router.post("/emoney/fraud-rules")
async def rules_add(
    session: DbDep,
    me: Blocker,
    name: Annotated[str, Form(max_length=64)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    type: Annotated[str, Form(max_length=20)] = "",
    issuer: Annotated[str, Form(max_length=32)] = "",
    max_count: Annotated[str, Form(max_length=9)] = "",
    max_amount: Annotated[str, Form(max_length=24)] = "",
    window_minutes: Annotated[str, Form(max_length=9)] = "",
) -> Response:
    back = "/backoffice/emoney/fraud-rules"
    if not RULE_NAME.match(name.strip()):
        return redirect(back, error="Give a name (small letters, digits, '.', '-' or '_').")
    try:
        found = await session.scalar(select(Issuer).where(Issuer.code == issuer)) if issuer else None
        fields = fraud.RuleFields(
            name=name.strip(),
            kind=kind,
            type=type,
            issuer=found,
            max_count=_int(max_count),
            max_amount=fraud.parse_rule_amount(max_amount.strip(), found),
            window_minutes=_int(window_minutes),
        )
        rule = await fraud.add_rule(session, fields, me.audit_name)
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    view = fraud.rule_view(rule, found)
    await audit.record(session, me, "wallet_fraud_rule.create", f"wallet_fraud_rule:{rule.id}", None, view)
    await session.commit()
    return redirect(back, "The rule was added.")


@router.post("/emoney/fraud-rules/{rule_id}")
async def rules_change(
    rule_id: Id, session: DbDep, me: Blocker, action: Annotated[str, Form(max_length=10)] = ""
) -> Response:
    """Enable, disable or delete a rule (audited)."""
    back = "/backoffice/emoney/fraud-rules"
    if action not in ("enable", "disable", "delete"):
        return redirect(back, error="Choose what to do with the rule.")
    try:
        rule = await fraud.rule_or_404(session, rule_id)
    except Problem:
        raise PageNotFound() from None
    issuer = await session.get(Issuer, rule.issuer_id) if rule.issuer_id else None
    before = fraud.rule_view(rule, issuer)
    if action == "delete":
        await session.delete(rule)
        after = None
    else:
        rule.enabled = action == "enable"
        await session.flush()
        after = fraud.rule_view(rule, issuer)
    verb = "delete" if action == "delete" else "update"
    await audit.record(
        session, me, f"wallet_fraud_rule.{verb}", f"wallet_fraud_rule:{rule_id}", before, after
    )
    await session.commit()
    return redirect(back, "The rule was removed." if action == "delete" else "The rule was saved.")
