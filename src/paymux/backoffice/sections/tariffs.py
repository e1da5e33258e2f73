"""Tariffs: versions with their history, and the maker-checker of changes.

A Financial specialist proposes a version (``tariffs.propose``); a CFO approves or rejects it
(``tariffs.approve``); nobody decides on their own proposal; approval creates the version
(``paymux.tariffs.proposals``).
"""

from __future__ import annotations

import datetime as dt
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
    FINANCE,
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
from paymux.backoffice.sections.ops import code_choices, day_filter, id_by_code
from paymux.catalog.models import Channel, ChannelGroup, Provider, Service
from paymux.catalog.schemas import TariffIn, describe_validation_error
from paymux.db.base import utcnow
from paymux.money import CURRENCIES, ROUNDING_MODES
from paymux.runtime import Hub
from paymux.tariffs import proposals as prop
from paymux.tariffs.calc import rule_from_json, rule_to_dict
from paymux.tariffs.models import TARIFF_KINDS, TariffVersion, scope_key
from paymux.yaml_text import load_field

router = section_router()
register(
    Section(
        "tariffs",
        router,
        menu=(
            MenuEntry("Tariffs", "/backoffice/tariffs", P.TARIFFS_READ, 32, area=FINANCE),
            MenuEntry("Tariff approvals", "/backoffice/tariffs/proposals", P.TARIFFS_READ, 33, area=FINANCE),
        ),
        permissions=(P.TARIFFS_READ, P.TARIFFS_PROPOSE, P.TARIFFS_APPROVE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.TARIFFS_READ))]
Proposer = Annotated[Principal, Depends(require(P.TARIFFS_PROPOSE))]
Approver = Annotated[Principal, Depends(require(P.TARIFFS_APPROVE))]

_SCOPES = (
    ("service", Service, TariffVersion.service_id),
    ("provider", Provider, TariffVersion.provider_id),
    ("channel_group", ChannelGroup, TariffVersion.channel_group_id),
    ("channel", Channel, TariffVersion.channel_id),
)


def rule_text(rule: dict[str, Any]) -> str:
    """A rule's user-facing form on one line: ``fixed 1.00 · percent 1.5 · min 1.00``."""
    parts = []
    for key, value in rule.items():
        if key == "tiers":
            tiers = "; ".join(" ".join(f"{k} {v}" for k, v in t.items()) for t in value)
            parts.append(f"tiers [{tiers}]")
        else:
            parts.append(f"{key} {value}")
    return " · ".join(parts)


def version_rule(row: TariffVersion) -> str:
    return rule_text(rule_to_dict(rule_from_json(row.rule), row.currency))


def _scope_filter(model: Any, column: Any) -> Any:
    return lambda q, v: q.where(column.in_(select(model.id).where(model.code == v)))


async def _versions_spec(session: AsyncSession, me: Principal) -> ListSpec:
    aliases = {
        name: select(model.code).where(model.id == col).scalar_subquery() for name, model, col in _SCOPES
    }
    query = select(TariffVersion, *(a.label(n) for n, a in aliases.items()))
    return ListSpec(
        query=query,
        columns=[
            Column("id", "ID", TariffVersion.id, lambda r: r[0].id),
            Column("kind", "Kind", TariffVersion.kind, lambda r: r[0].kind),
            Column("service", "Service", None, lambda r: r.service),
            Column("provider", "Provider", None, lambda r: r.provider),
            Column("channel_group", "Channel group", None, lambda r: r.channel_group),
            Column("channel", "Channel", None, lambda r: r.channel),
            Column("currency", "Currency", TariffVersion.currency, lambda r: r[0].currency),
            Column("rule", "Rule", None, lambda r: version_rule(r[0])),
            Column(
                "effective_from",
                "Effective from",
                TariffVersion.effective_from,
                lambda r: r[0].effective_from,
            ),
            Column("created_by", "Created by", TariffVersion.created_by, lambda r: r[0].created_by),
            Column("note", "Note", None, lambda r: r[0].note),
        ],
        search=[TariffVersion.created_by, TariffVersion.note],
        filters=[
            Filter(
                "kind", "Kind", lambda q, v: q.where(TariffVersion.kind == v), [(k, k) for k in TARIFF_KINDS]
            ),
            *[
                Filter(name, title, _scope_filter(model, col), await code_choices(session, model))
                for (name, model, col), title in zip(
                    _SCOPES, ("Service", "Provider", "Channel group", "Channel"), strict=True
                )
            ],
            Filter("currency", "Currency", lambda q, v: q.where(TariffVersion.currency == v.upper())),
            Filter(
                "from",
                "From (date)",
                day_filter(TariffVersion.effective_from, me.timezone, end=False),
                kind="date",
            ),
            Filter(
                "to",
                "To (date)",
                day_filter(TariffVersion.effective_from, me.timezone, end=True),
                kind="date",
            ),
        ],
        default_sort="effective_from",
        page_size=50,
        sheet="tariffs",
    )


@router.get("/tariffs")
async def tariffs_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = await _versions_spec(session, me)
    return respond(request, await spec.run(session, request), "tariffs/list.html", now=utcnow())


def _proposals_spec(me: Principal) -> ListSpec:
    T = prop.TariffProposal
    return ListSpec(
        query=select(T),
        columns=[
            Column("id", "ID", T.id),
            Column("status", "Status", T.status),
            Column("scope", "Scope", T.scope),
            Column("currency", "Currency", T.currency),
            Column("rule", "Rule", None, lambda r: rule_text(r.payload.get("rule", {}))),
            Column("effective_from", "Effective from", T.effective_from),
            Column("proposed_by", "Proposed by", T.proposed_by),
            Column("proposed_at", "Proposed", T.proposed_at),
            Column("decided_by", "Decided by", T.decided_by),
            Column("decided_at", "Decided", T.decided_at),
            Column("version_id", "Version", T.version_id),
        ],
        search=[T.scope, T.proposed_by, T.decided_by, T.note],
        filters=[
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(T.status == v),
                [(s, s) for s in prop.PROPOSAL_STATUSES],
            ),
            Filter("kind", "Kind", lambda q, v: q.where(T.kind == v), [(k, k) for k in TARIFF_KINDS]),
            Filter("from", "From (date)", day_filter(T.proposed_at, me.timezone, end=False), kind="date"),
            Filter("to", "To (date)", day_filter(T.proposed_at, me.timezone, end=True), kind="date"),
        ],
        default_sort="id",
        sheet="tariff-proposals",
    )


@router.get("/tariffs/proposals")
async def proposals_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    page = await _proposals_spec(me).run(session, request)
    return respond(request, page, "tariffs/proposals.html", rule_text=rule_text)


async def _form_choices(session: AsyncSession) -> dict[str, Any]:
    return {
        "kinds": TARIFF_KINDS,
        "services": await code_choices(session, Service),
        "providers": await code_choices(session, Provider),
        "channel_groups": await code_choices(session, ChannelGroup),
        "channels": await code_choices(session, Channel),
        "currencies": sorted(CURRENCIES),
        "roundings": list(ROUNDING_MODES),
    }


_FIELDS = (
    "kind",
    "service",
    "provider",
    "channel_group",
    "channel",
    "currency",
    "effective_from",
    "fixed",
    "percent",
    "min",
    "max",
    "rounding",
    "tiers",
    "note",
)


@router.get("/tariffs/proposals/new")
async def proposal_new(request: Request, session: DbDep, _: Proposer) -> Response:
    form = dict.fromkeys(_FIELDS, "") | {"kind": "fee", "currency": "", "rounding": "half_up"}
    for k in ("kind", "service", "provider", "channel_group", "channel", "currency"):
        form[k] = request.query_params.get(k, form[k])
    return render(request, "tariffs/propose.html", form=form, error="", **await _form_choices(session))


def _tariff_data(form: dict[str, str], tz: str) -> dict[str, Any]:
    """The TariffIn input from the form (validated by the caller); raises ValueError for bad input."""
    rule: dict[str, Any] = {k: form[k].strip() for k in ("fixed", "percent", "min", "max") if form[k].strip()}
    if form["rounding"] and form["rounding"] != "half_up":
        rule["rounding"] = form["rounding"]
    if form["tiers"].strip():
        try:
            tiers = load_field(form["tiers"])
        except yaml.YAMLError as e:
            raise ValueError(f"tiers: not readable YAML ({e})") from None
        rule["tiers"] = tiers
    raw = form["effective_from"].strip()
    if raw:
        try:
            when = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"effective_from: {raw!r} is not a date and time") from None
        when = when.replace(tzinfo=zone(tz)) if when.tzinfo is None else when
    else:
        when = utcnow()
    data: dict[str, Any] = {
        "kind": form["kind"],
        "currency": form["currency"],
        "effective_from": when,
        "rule": rule,
        "note": form["note"].strip() or None,
    }
    for k in ("service", "provider", "channel_group", "channel"):
        if form[k]:
            data[k] = form[k]
    return data


@router.post("/tariffs/proposals")
async def proposal_create(request: Request, session: DbDep, me: Proposer) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k, "") or "") for k in _FIELDS}
    try:
        data = _tariff_data(form, me.timezone)
        tariff = TariffIn.model_validate(data)
        row = await prop.propose(session, tariff, me)
    except ValidationError as e:
        error = describe_validation_error(e, data)
    except (ValueError, prop.ProposalError) as e:
        error = str(e)
    else:
        await audit.record(
            session, me, "tariff.propose", f"tariff_proposal:{row.id}", None, prop.proposal_state(row)
        )
        await session.commit()
        return redirect(
            f"/backoffice/tariffs/proposals/{row.id}", "The change was proposed; it waits for approval."
        )
    await session.rollback()
    return render(
        request, "tariffs/propose.html", 422, form=form, error=error, **await _form_choices(session)
    )


async def in_force(session: AsyncSession, tariff: TariffIn, at: dt.datetime) -> TariffVersion | None:
    """The version of exactly this scope in force at ``at`` (what an approval would replace)."""
    ids = []
    for name, model, _col in _SCOPES:
        code = getattr(tariff, name)
        ids.append(None if code is None else await id_by_code(session, model, code))
    key = scope_key(tariff.kind, ids[0], ids[1], ids[2], ids[3], tariff.currency)
    return await session.scalar(
        select(TariffVersion)
        .where(TariffVersion.scope_key == key, TariffVersion.effective_from <= at)
        .order_by(TariffVersion.effective_from.desc())
        .limit(1)
    )


async def _proposal(session: AsyncSession, proposal_id: int) -> prop.TariffProposal:
    row = await prop.get_proposal(session, proposal_id)
    if row is None:
        raise PageNotFound()
    return row


async def _detail(
    request: Request,
    session: AsyncSession,
    me: Principal,
    row: prop.TariffProposal,
    error: str = "",
    status: int = 200,
) -> Response:
    tariff = TariffIn.model_validate(row.payload)
    current = await in_force(session, tariff, utcnow())
    version = None if row.version_id is None else await session.get(TariffVersion, row.version_id)
    return render(
        request,
        "tariffs/proposal.html",
        status,
        r=row,
        tariff=tariff,
        rule=rule_text(row.payload.get("rule", {})),
        current=current,
        current_rule=version_rule(current) if current is not None else "",
        version=version,
        own=row.proposed_by_key == prop.actor_key(me),
        error=error,
    )


@router.get("/tariffs/proposals/{proposal_id}")
async def proposal_detail(request: Request, proposal_id: Id, session: ReadDbDep, me: Reader) -> Response:
    return await _detail(request, session, me, await _proposal(session, proposal_id))


async def _decide(
    request: Request, session: AsyncSession, me: Principal, proposal_id: int, note: str, approve: bool
) -> Response:
    row = await prop.locked_proposal(session, proposal_id)
    if row is None:
        raise PageNotFound()
    before = prop.proposal_state(row)
    try:
        if approve:
            await prop.approve(session, row, me, note.strip() or None)
        else:
            await prop.reject(session, row, me, note.strip() or None)
    except prop.ProposalError as e:
        await session.rollback()
        row = await _proposal(session, proposal_id)
        status = (
            403 if isinstance(e, prop.OwnProposal) else 409 if isinstance(e, prop.AlreadyDecided) else 422
        )
        return await _detail(request, session, me, row, str(e), status)
    action = "tariff.approve" if approve else "tariff.reject"
    await audit.record(session, me, action, f"tariff_proposal:{row.id}", before, prop.proposal_state(row))
    await session.commit()
    if approve:
        hub: Hub = request.app.state.hub
        hub.catalog_changed()
    msg = "Approved: the tariff version was created." if approve else "Rejected: nothing changed."
    return redirect(f"/backoffice/tariffs/proposals/{proposal_id}", msg)


@router.post("/tariffs/proposals/{proposal_id}/approve")
async def proposal_approve(
    request: Request, proposal_id: Id, session: DbDep, me: Approver, note: Annotated[str, Form()] = ""
) -> Response:
    return await _decide(request, session, me, proposal_id, note, True)


@router.post("/tariffs/proposals/{proposal_id}/reject")
async def proposal_reject(
    request: Request, proposal_id: Id, session: DbDep, me: Approver, note: Annotated[str, Form()] = ""
) -> Response:
    return await _decide(request, session, me, proposal_id, note, False)
