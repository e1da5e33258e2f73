"""E-money: contracts (fees and limits of a customer or a group) and merchants' cashback profiles,
with the maker-checker of their changes (``paymux.wallets.contract_proposals``).

A Financial specialist proposes (``contracts.propose``); a CFO approves or rejects
(``contracts.approve``); nobody decides on their own proposal. Every list exports to Excel.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import yaml
from fastapi import Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.access import zone
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
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.catalog.schemas import describe_validation_error
from paymux.errors import Problem
from paymux.wallets import contract_proposals as prop
from paymux.wallets.contract_models import (
    CONTRACT_TYPES,
    DEFAULT_CASHBACK_TYPES,
    WalletCashbackProfile,
    WalletContract,
    WalletContractProposal,
)
from paymux.wallets.models import Issuer
from paymux.wallets.units import format_units
from paymux.yaml_text import load_field

router = section_router()
register(
    Section(
        "wallet_contracts",
        router,
        menu=(
            MenuEntry("Contracts", "/backoffice/wallets/contracts", P.CONTRACTS_READ, 20, area=EMONEY),
            MenuEntry("Cashback profiles", "/backoffice/wallets/cashback", P.CONTRACTS_READ, 21, area=EMONEY),
        ),
        permissions=(P.CONTRACTS_READ, P.CONTRACTS_PROPOSE, P.CONTRACTS_APPROVE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.CONTRACTS_READ))]
Proposer = Annotated[Principal, Depends(require(P.CONTRACTS_PROPOSE))]
Approver = Annotated[Principal, Depends(require(P.CONTRACTS_APPROVE))]

KINDS = {"contract": "contracts", "cashback": "cashback"}  # proposal kind -> its path
TERMS_EXAMPLE = """p2p:
  fee: {percent: "0.5", min: 100}
  limits:
    - {name: p2p-max, identification: identified, max_amount: "15000.00", monthly_amount: "300000.00"}
withdrawal:
  fee: {fixed: 500}
  limits: []
"""


def _minor(value: int | None, precision: int) -> str:
    return "" if value is None else format_units(value, precision)


def terms_text(terms: dict[str, Any]) -> str:
    """Terms on one line per type: ``p2p: fee {...}; 2 limits``."""
    parts = []
    for op_type, t in terms.items():
        fee = json.dumps(t.get("fee"), sort_keys=True) if t.get("fee") else "no fee"
        names = ", ".join(str(lim.get("name")) for lim in t.get("limits", []))
        parts.append(f"{op_type}: {fee}" + (f"; limits {names}" if names else ""))
    return " · ".join(parts) or "—"


def _date_filter(column: Any, tz: str, end: bool) -> Any:
    def apply(q: Any, v: str) -> Any:
        try:
            day = dt.date.fromisoformat(v)
        except ValueError:
            return q
        start = dt.datetime.combine(day, dt.time(), tzinfo=zone(tz))
        return q.where(column < start + dt.timedelta(days=1)) if end else q.where(column >= start)

    return apply


# --- lists --------------------------------------------------------------------------------------------


def _contracts_spec() -> ListSpec:
    C = WalletContract
    return ListSpec(
        query=select(C, Issuer.code.label("issuer")).join(Issuer, Issuer.id == C.issuer_id),
        columns=[
            Column("id", "ID", C.id, lambda r: r[0].id),
            Column("issuer", "Issuer", Issuer.code, lambda r: r.issuer),
            Column("customer", "Customer", C.customer_id, lambda r: r[0].customer_id),
            Column("group", "Group", C.group_code, lambda r: r[0].group_code),
            Column("version", "Version", C.version, lambda r: r[0].version),
            Column("effective_from", "Effective from", C.effective_from, lambda r: r[0].effective_from),
            Column("terms", "Terms", None, lambda r: terms_text(r[0].terms or {})),
            Column("created_by", "Created by", C.created_by, lambda r: r[0].created_by),
            Column("note", "Note", None, lambda r: r[0].note),
        ],
        search=[C.group_code, C.created_by, C.note],
        filters=[
            Filter("issuer", "Issuer", lambda q, v: q.where(Issuer.code == v)),
            Filter("group", "Group", lambda q, v: q.where(C.group_code == v)),
            Filter(
                "customer",
                "Customer",
                lambda q, v: (
                    q.where(C.customer_id == int(v)) if v.isascii() and v.isdigit() and len(v) < 19 else q
                ),
            ),
        ],
        default_sort="id",
        sheet="contracts",
    )


def _profiles_spec() -> ListSpec:
    W = WalletCashbackProfile
    return ListSpec(
        query=select(W, Issuer.code.label("issuer"), Issuer.precision.label("precision")).join(
            Issuer, Issuer.id == W.issuer_id
        ),
        columns=[
            Column("id", "ID", W.id, lambda r: r[0].id),
            Column("merchant", "Merchant", W.merchant_id, lambda r: r[0].merchant_id),
            Column("version", "Version", W.version, lambda r: r[0].version),
            Column("effective_from", "Effective from", W.effective_from, lambda r: r[0].effective_from),
            Column("issuer", "Paid in", Issuer.code, lambda r: r.issuer),
            Column("mode", "Mode", W.mode, lambda r: r[0].mode),
            Column("percent", "Percent", None, lambda r: r[0].percent or ""),
            Column("fixed", "Fixed amount", None, lambda r: _minor(r[0].fixed, r.precision)),
            Column(
                "per_operation_cap",
                "Cap per operation",
                None,
                lambda r: _minor(r[0].per_operation_cap, r.precision),
            ),
            Column("monthly_cap", "Monthly cap", None, lambda r: _minor(r[0].monthly_cap, r.precision)),
            Column("funding", "Funded by", W.funding, lambda r: r[0].funding),
            Column("types", "Operation types", None, lambda r: ", ".join(r[0].operation_types or [])),
            Column("enabled", "Enabled", W.enabled, lambda r: "yes" if r[0].enabled else "no"),
            Column("created_by", "Created by", W.created_by, lambda r: r[0].created_by),
        ],
        search=[W.created_by, W.note],
        filters=[Filter("issuer", "Paid in", lambda q, v: q.where(Issuer.code == v))],
        default_sort="id",
        sheet="cashback-profiles",
    )


def _proposals_spec(kind: str, me: Principal) -> ListSpec:
    T = WalletContractProposal
    return ListSpec(
        query=select(T).where(T.kind == kind),
        columns=[
            Column("id", "ID", T.id),
            Column("status", "Status", T.status),
            Column("scope", "Scope", T.scope),
            Column("effective_from", "Effective from", T.effective_from),
            Column("proposed_by", "Proposed by", T.proposed_by),
            Column("proposed_at", "Proposed", T.proposed_at),
            Column("decided_by", "Decided by", T.decided_by),
            Column("decided_at", "Decided", T.decided_at),
            Column("result_id", "Version", T.result_id),
        ],
        search=[T.scope, T.proposed_by, T.decided_by, T.note],
        filters=[
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(T.status == v),
                [(s, s) for s in ("pending", "approved", "rejected")],
            ),
            Filter("from", "From (date)", _date_filter(T.proposed_at, me.timezone, end=False), kind="date"),
            Filter("to", "To (date)", _date_filter(T.proposed_at, me.timezone, end=True), kind="date"),
        ],
        default_sort="id",
        sheet=f"{kind}-proposals",
    )


def _is_dt(v: object) -> bool:
    return isinstance(v, dt.datetime)


@router.get("/wallets/contracts")
async def contracts_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    page = await _contracts_spec().run(session, request)
    return respond(
        request, page, "wallet_contracts/list.html", kind="contract", title="Contracts", is_dt=_is_dt
    )


@router.get("/wallets/cashback")
async def profiles_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    page = await _profiles_spec().run(session, request)
    return respond(
        request, page, "wallet_contracts/list.html", kind="cashback", title="Cashback profiles", is_dt=_is_dt
    )


@router.get("/wallets/contracts/proposals")
async def contract_proposals(request: Request, session: ReadDbDep, me: Reader) -> Response:
    page = await _proposals_spec("contract", me).run(session, request)
    return respond(
        request,
        page,
        "wallet_contracts/proposals.html",
        kind="contract",
        title="Contract approvals",
        is_dt=_is_dt,
    )


@router.get("/wallets/cashback/proposals")
async def cashback_proposals(request: Request, session: ReadDbDep, me: Reader) -> Response:
    page = await _proposals_spec("cashback", me).run(session, request)
    return respond(
        request,
        page,
        "wallet_contracts/proposals.html",
        kind="cashback",
        title="Cashback approvals",
        is_dt=_is_dt,
    )


# --- proposal forms -----------------------------------------------------------------------------------


CONTRACT_FIELDS = ("issuer", "customer", "group", "effective_from", "terms", "note")
CASHBACK_FIELDS = (
    "merchant",
    "issuer",
    "mode",
    "percent",
    "fixed",
    "per_operation_cap",
    "monthly_cap",
    "funding",
    "effective_from",
    "note",
)


async def _issuers(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(Issuer.code).order_by(Issuer.code))).all())


def _when(raw: str, tz: str) -> dt.datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"effective_from: {raw!r} is not a date and time") from None
    return when.replace(tzinfo=zone(tz)) if when.tzinfo is None else when


def _contract_data(form: dict[str, str], tz: str) -> dict[str, Any]:
    try:
        terms = load_field(form["terms"]) if form["terms"].strip() else {}
    except yaml.YAMLError as e:
        raise ValueError(f"terms: not readable YAML ({e})") from None
    data: dict[str, Any] = {
        "issuer": form["issuer"],
        "terms": terms,
        "effective_from": _when(form["effective_from"], tz),
        "note": form["note"].strip() or None,
    }
    if form["customer"].strip():
        data["customer"] = _int(form["customer"], "customer")
    if form["group"].strip():
        data["group"] = form["group"].strip()
    return data


def _int(text: str, field: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) < 19):
        raise ValueError(f"{field}: {text[:30]!r} is not a customer id")
    return int(text)


def _cashback_data(form: dict[str, str], types: list[str], enabled: bool, tz: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "merchant": _int(form["merchant"], "merchant"),
        "issuer": form["issuer"],
        "mode": form["mode"],
        "funding": form["funding"],
        "operation_types": types,
        "enabled": enabled,
        "effective_from": _when(form["effective_from"], tz),
        "note": form["note"].strip() or None,
    }
    for k in ("percent", "fixed", "per_operation_cap", "monthly_cap"):
        if form[k].strip():
            data[k] = form[k].strip()
    return data


@router.get("/wallets/contracts/proposals/new")
async def contract_new(request: Request, session: DbDep, _: Proposer) -> Response:
    form = dict.fromkeys(CONTRACT_FIELDS, "")
    for k in ("issuer", "customer", "group"):
        form[k] = request.query_params.get(k, "")[:40]
    form["terms"] = TERMS_EXAMPLE
    return render(
        request,
        "wallet_contracts/propose_contract.html",
        form=form,
        error="",
        issuers=await _issuers(session),
    )


@router.post("/wallets/contracts/proposals")
async def contract_create(request: Request, session: DbDep, me: Proposer) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k, "") or "") for k in CONTRACT_FIELDS}
    data: dict[str, Any] = {}
    try:
        data = _contract_data(form, me.timezone)
        row = await prop.propose_contract(session, prop.ContractIn.model_validate(data), me)
    except ValidationError as e:
        error = describe_validation_error(e, data)
    except Problem as e:
        error = e.detail or e.title
    except ValueError as e:
        error = str(e)
    else:
        return await _proposed(session, me, row)
    await session.rollback()
    return render(
        request,
        "wallet_contracts/propose_contract.html",
        422,
        form=form,
        error=error,
        issuers=await _issuers(session),
    )


@router.get("/wallets/cashback/proposals/new")
async def cashback_new(request: Request, session: DbDep, _: Proposer) -> Response:
    form = dict.fromkeys(CASHBACK_FIELDS, "") | {"mode": "percent", "funding": "merchant"}
    form["merchant"] = request.query_params.get("merchant", "")[:20]
    return render(
        request,
        "wallet_contracts/propose_cashback.html",
        form=form,
        types=list(DEFAULT_CASHBACK_TYPES),
        enabled=True,
        all_types=CONTRACT_TYPES,
        error="",
        issuers=await _issuers(session),
    )


@router.post("/wallets/cashback/proposals")
async def cashback_create(request: Request, session: DbDep, me: Proposer) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k, "") or "") for k in CASHBACK_FIELDS}
    types = [str(t) for t in raw.getlist("operation_types")][:10]
    enabled = bool(raw.get("enabled"))
    data: dict[str, Any] = {}
    try:
        data = _cashback_data(form, types, enabled, me.timezone)
        row = await prop.propose_cashback(session, prop.CashbackIn.model_validate(data), me)
    except ValidationError as e:
        error = describe_validation_error(e, data)
    except Problem as e:
        error = e.detail or e.title
    except ValueError as e:
        error = str(e)
    else:
        return await _proposed(session, me, row)
    await session.rollback()
    return render(
        request,
        "wallet_contracts/propose_cashback.html",
        422,
        form=form,
        types=types,
        enabled=enabled,
        all_types=CONTRACT_TYPES,
        error=error,
        issuers=await _issuers(session),
    )


async def _proposed(session: AsyncSession, me: Principal, row: WalletContractProposal) -> Response:
    state = prop.proposal_state(row)
    await audit.record(
        session, me, f"wallets.{row.kind}.propose", f"wallet_contract_proposal:{row.id}", None, state
    )
    await session.commit()
    return redirect(
        f"/backoffice/wallets/{KINDS[row.kind]}/proposals/{row.id}",
        "The change was proposed; it waits for approval.",
    )


# --- a proposal and the decision ----------------------------------------------------------------------


async def _detail(
    request: Request,
    session: AsyncSession,
    me: Principal,
    kind: str,
    proposal_id: int,
    error: str = "",
    status: int = 200,
) -> Response:
    row = await session.get(WalletContractProposal, proposal_id)
    if row is None or row.kind != kind:
        raise PageNotFound()
    proposed = {k: v for k, v in row.payload.items() if v is not None and k not in ("terms", "note")}
    terms = (
        yaml.safe_dump(row.payload.get("terms"), sort_keys=False, allow_unicode=True)
        if kind == "contract"
        else ""
    )
    return render(
        request,
        "wallet_contracts/proposal.html",
        status,
        r=row,
        kind=kind,
        path=KINDS[kind],
        proposed=proposed,
        terms=terms,
        own=row.proposed_by_key == prop.actor_key(me),
        error=error,
    )


async def _decide(
    request: Request,
    session: AsyncSession,
    me: Principal,
    kind: str,
    proposal_id: int,
    note: str,
    approve: bool,
) -> Response:
    try:
        row = await prop.locked_proposal(session, proposal_id, kind)
    except Problem:
        raise PageNotFound() from None
    before = prop.proposal_state(row)
    try:
        if approve:
            await prop.approve(session, row, me, note.strip()[:500] or None)
        else:
            await prop.reject(session, row, me, note.strip()[:500] or None)
    except (prop.ProposalError, Problem) as e:
        await session.rollback()
        status = (
            403 if isinstance(e, prop.OwnProposal) else 409 if isinstance(e, prop.AlreadyDecided) else 422
        )
        message = (e.detail or e.title) if isinstance(e, Problem) else str(e)
        return await _detail(request, session, me, kind, proposal_id, message, status)
    action = f"wallets.{kind}.{'approve' if approve else 'reject'}"
    await audit.record(
        session, me, action, f"wallet_contract_proposal:{row.id}", before, prop.proposal_state(row)
    )
    await session.commit()
    msg = "Approved: the new version was created." if approve else "Rejected: nothing changed."
    return redirect(f"/backoffice/wallets/{KINDS[kind]}/proposals/{proposal_id}", msg)


@router.get("/wallets/contracts/proposals/{proposal_id}")
async def contract_proposal(request: Request, proposal_id: Id, session: ReadDbDep, me: Reader) -> Response:
    return await _detail(request, session, me, "contract", proposal_id)


@router.get("/wallets/cashback/proposals/{proposal_id}")
async def cashback_proposal(request: Request, proposal_id: Id, session: ReadDbDep, me: Reader) -> Response:
    return await _detail(request, session, me, "cashback", proposal_id)


@router.post("/wallets/contracts/proposals/{proposal_id}/approve")
async def contract_approve(
    request: Request, proposal_id: Id, session: DbDep, me: Approver, note: Annotated[str, Form()] = ""
) -> Response:
    return await _decide(request, session, me, "contract", proposal_id, note, True)


@router.post("/wallets/contracts/proposals/{proposal_id}/reject")
async def contract_reject(
    request: Request, proposal_id: Id, session: DbDep, me: Approver, note: Annotated[str, Form()] = ""
) -> Response:
    return await _decide(request, session, me, "contract", proposal_id, note, False)


@router.post("/wallets/cashback/proposals/{proposal_id}/approve")
async def cashback_approve(
    request: Request, proposal_id: Id, session: DbDep, me: Approver, note: Annotated[str, Form()] = ""
) -> Response:
    return await _decide(request, session, me, "cashback", proposal_id, note, True)


@router.post("/wallets/cashback/proposals/{proposal_id}/reject")
async def cashback_reject(
    request: Request, proposal_id: Id, session: DbDep, me: Approver, note: Annotated[str, Form()] = ""
) -> Response:
    return await _decide(request, session, me, "cashback", proposal_id, note, False)
