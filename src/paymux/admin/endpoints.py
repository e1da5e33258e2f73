"""Admin API: catalog, routes, tariffs, switches, balances, top-ups, payments (admin tokens)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit, offload
from paymux.admin.credentials import channel_in_scope
from paymux.api.deps import AdminDep, HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Count, Id, Ident
from paymux.audit.states import AuditAs, catalog_change
from paymux.auth.keys import UnknownChannel, issue_channel_key
from paymux.auth.principal import channel_scope
from paymux.catalog import service as catalog
from paymux.catalog.file import CatalogTooLarge, apply_catalog, dump_yaml, export_catalog, load_yaml
from paymux.catalog.schemas import AgentIn, ChannelGroupIn, ChannelIn, ProviderIn, ServiceIn, TariffIn
from paymux.errors import Problem, invalid, not_found
from paymux.gateways.exchanges import for_payment as inbound_exchanges
from paymux.ledger.models import Account
from paymux.ledger.topups import record_topup
from paymux.masking import mask_secrets
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.payments.details import payment_attempts, payment_postings
from paymux.payments.models import Payment
from paymux.payments.visibility import (
    EXCHANGES,
    INBOUND,
    MONEY_FIELDS,
    PaymentScope,
    payment_scope,
    payment_view,
)
from paymux.routing.switch import list_switches, switch_back, switch_provider
from paymux.runtime import Hub
from paymux.tariffs import service as tariffs
from paymux.tariffs.calc import TariffError

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

T = TypeVar("T")


async def _change(
    hub: Hub, session: AsyncSession, fn: Callable[[], Awaitable[T]], audit_as: AuditAs | None = None
) -> T:
    """Run a catalog change, turning validation errors into 422 problems; audit, commit, refresh caches."""
    try:
        result = await fn()
    except (catalog.CatalogError, TariffError, MoneyError) as e:
        await session.rollback()
        raise invalid("invalid-catalog", str(e)) from None
    if audit_as is not None:
        await audit_as.write(session, result)
    await session.commit()
    hub.catalog_changed()
    return result


def _actor(admin: Any) -> str:
    return str(getattr(admin, "audit_name", f"admin:{admin.name}"))


# --- catalog ----------------------------------------------------------------------------------------------


@router.get("/catalog", response_class=Response, responses={200: {"content": {"application/yaml": {}}}})
async def get_catalog(_: AdminDep, session: ReadSessionDep) -> Response:
    """The whole catalog as the YAML file `paymux catalog export` prints: secrets as `***` (written in
    a thread).

    Applying the file (`POST /catalog`, `paymux catalog apply`) keeps the stored secrets where it says `***`.
    """
    text = await asyncio.to_thread(dump_yaml, await export_catalog(session))
    return Response(text, media_type="application/yaml")


@router.post("/catalog")
async def post_catalog(
    request: Request,
    admin: AdminDep,
    hub: HubDep,
    session: SessionDep,
    dry_run: Annotated[bool, Query(description="report only, change nothing")] = False,
) -> dict[str, Any]:
    """Apply a catalog YAML (or JSON) document: idempotent upsert, returns what changed.

    The body may be ``PAYMUX_BODY_LIMIT_CATALOG`` bytes long, and each list hold
    ``PAYMUX_CATALOG_MAX_ITEMS`` items (413 beyond); it is read and validated in a thread."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    try:
        data = await offload.in_thread(load_yaml, raw, hub.settings.catalog_max_items)
    except CatalogTooLarge as e:
        raise Problem(413, "catalog-too-large", "Catalog document too large", str(e)) from None
    except ValueError as e:
        raise invalid("invalid-catalog", str(e)) from None

    async def _applied(r: Any) -> Any:
        return {"summary": r.summary(), "changes": r.lines()}

    try:
        report = (
            await _change(
                hub,
                session,
                lambda: apply_catalog(session, data, actor=_actor(admin)),
                AuditAs(admin, "catalog.apply", "catalog", None, _applied),
            )
            if not dry_run
            else await apply_catalog(session, data, actor=_actor(admin))
        )
        if dry_run:
            await session.rollback()
        return {"summary": report.summary(), "changes": report.lines(), "dry_run": dry_run}
    finally:
        await offload.release_in_thread(data)  # thousands of models would be freed on the loop


@router.post("/catalog/library")
async def post_library(
    request: Request,
    admin: AdminDep,
    hub: HubDep,
    session: SessionDep,
    provider: Annotated[Ident, Query(description="the catalog's provider the library is of")],
    apply: Annotated[bool, Query(description="write the changes (default: the diff only)")] = False,
    disable_missing: Annotated[
        bool, Query(description="disable services the library no longer lists")
    ] = False,
) -> dict[str, Any]:
    """Import a provider library (an aggregator's service list, CSV or JSON; docs/catalog.md): the
    diff against the catalog, and with ``apply=true`` the changes (refused while any row has a
    problem)."""
    from paymux.catalog.library import LibraryError, apply_import, detect_format, plan_import, read_rows

    raw = await request.body()
    try:
        rows = await offload.in_thread(
            read_rows, raw, detect_format(raw, None, request.headers.get("content-type"))
        )
    except LibraryError as e:
        raise invalid("invalid-library", str(e)) from None
    try:
        plan = await plan_import(session, provider, rows, disable_missing=disable_missing)
    except catalog.CatalogError as e:
        raise invalid("invalid-library", str(e)) from None
    out = plan.as_dict()
    if not apply:
        await session.rollback()
        return {**out, "applied": False}
    if plan.problems:
        raise invalid(
            "invalid-library",
            f"{len(plan.problems)} rows have problems; nothing was changed",
            problems=plan.problems[:100],
        )

    async def _applied(r: Any) -> Any:
        return {"provider": provider, "summary": plan.summary()}

    await _change(
        hub,
        session,
        lambda: apply_import(session, plan, actor=_actor(admin)),
        AuditAs(admin, "catalog.library", f"provider:{provider}", None, _applied),
    )
    return {**out, "applied": True}


@router.get("/providers", response_model=list[ProviderIn])
async def list_providers(_: AdminDep, session: ReadSessionDep) -> list[ProviderIn]:
    """Providers; config secrets are shown as `***` (sending `***` back keeps the stored value)."""
    return [
        catalog.masked_provider(catalog.provider_to_schema(p)) for p in await catalog.list_providers(session)
    ]


@router.get("/providers/{code}", response_model=ProviderIn)
async def get_provider(code: str, _: AdminDep, session: ReadSessionDep) -> ProviderIn:
    """A provider; config secrets are shown as `***` (sending `***` back keeps the stored value)."""
    row = await _found(catalog.get_provider(session, code))
    return catalog.masked_provider(catalog.provider_to_schema(row))


@router.put("/providers/{code}")
async def put_provider(
    code: str, body: ProviderIn, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    _same_code(code, body.code)
    return {
        "code": code,
        "change": await _change(
            hub,
            session,
            lambda: catalog.upsert_provider(session, body),
            await catalog_change(admin, session, "provider", code, "provider.put"),
        ),
    }


@router.get("/services", response_model=list[ServiceIn])
async def list_services(_: AdminDep, session: ReadSessionDep) -> list[ServiceIn]:
    return [await catalog.service_to_schema(session, s) for s in await catalog.list_services(session)]


@router.get("/services/{code}", response_model=ServiceIn)
async def get_service(code: str, _: AdminDep, session: ReadSessionDep) -> ServiceIn:
    return await catalog.service_to_schema(session, await _found(catalog.get_service(session, code)))


@router.put("/services/{code}")
async def put_service(
    code: str, body: ServiceIn, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    """Create or update a service together with its route."""
    _same_code(code, body.code)
    return {
        "code": code,
        "change": await _change(
            hub,
            session,
            lambda: catalog.upsert_service(session, body),
            await catalog_change(admin, session, "service", code, "service.put"),
        ),
    }


@router.get("/services/{code}/route")
async def get_route(code: str, _: AdminDep, hub: HubDep, session: ReadSessionDep) -> dict[str, Any]:
    """A service's route, with the health of each provider on it."""
    svc = await catalog.service_to_schema(session, await _found(catalog.get_service(session, code)))
    snap = await hub.catalog.get()
    health = {}
    for c in svc.route.candidates:
        p = snap.providers_by_code.get(c.provider)
        if p is not None:
            health[c.provider] = {"enabled": p.enabled, **hub.breakers.state(p.id, p.breaker)}
    return {"service": code, "route": svc.route.model_dump(), "providers": health}


@router.get("/channel-groups", response_model=list[ChannelGroupIn])
async def list_groups(_: AdminDep, session: ReadSessionDep) -> list[ChannelGroupIn]:
    return [catalog.channel_group_to_schema(g) for g in await catalog.list_channel_groups(session)]


@router.put("/channel-groups/{code}")
async def put_group(
    code: str, body: ChannelGroupIn, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    _same_code(code, body.code)
    return {
        "code": code,
        "change": await _change(
            hub,
            session,
            lambda: catalog.upsert_channel_group(session, body),
            await catalog_change(admin, session, "channel_group", code, "channel_group.put"),
        ),
    }


@router.get("/agents", response_model=list[AgentIn])
async def list_agents(_: AdminDep, session: ReadSessionDep) -> list[AgentIn]:
    return [await catalog.agent_to_schema(session, a) for a in await catalog.list_agents(session)]


@router.put("/agents/{code}")
async def put_agent(
    code: str, body: AgentIn, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    _same_code(code, body.code)
    audit_as = await catalog_change(admin, session, "agent", code, "agent.put")
    change = await _change(hub, session, lambda: catalog.upsert_agent(session, body), audit_as)
    return {"code": code, "change": change}


@router.get("/channels", response_model=list[ChannelIn])
async def list_channels(admin: AdminDep, session: ReadSessionDep) -> list[ChannelIn]:
    """Channels; HMAC secrets are shown as `***` (sending `***` back keeps the stored secret)."""
    out = []
    scope = await channel_scope(session, admin)
    for c in await catalog.list_channels(session):
        if scope is not None and c.id not in scope:
            continue
        out.append(catalog.masked_channel(await catalog.channel_to_schema(session, c)))
    return out


@router.put("/channels/{code}")
async def put_channel(
    code: str, body: ChannelIn, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    _same_code(code, body.code)
    return {
        "code": code,
        "change": await _change(
            hub,
            session,
            lambda: catalog.upsert_channel(session, body),
            await catalog_change(admin, session, "channel", code, "channel.put"),
        ),
    }


@router.post("/channels/{code}/keys", status_code=201)
async def new_channel_key(code: str, admin: AdminDep, session: SessionDep) -> dict[str, str]:
    """Issue a new API key for the channel; it is shown only in this answer."""
    await channel_in_scope(session, admin, code)
    try:
        key = await issue_channel_key(session, code)
    except UnknownChannel as e:
        raise not_found(str(e)) from None
    await audit.record(session, admin, "channel.key_issue", f"channel:{code}", None, {"key_prefix": key[:12]})
    await session.commit()
    return {"channel": code, "key": key}


EnableKind = Literal["provider", "service", "agent", "channel"]


@router.post("/{kind}s/{code}/enable")
async def enable(
    kind: EnableKind, code: str, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    audit_as = await catalog_change(admin, session, kind, code, f"{kind}.enable")
    change = await _change(hub, session, lambda: catalog.set_enabled(session, kind, code, True), audit_as)
    return {"code": code, "change": change}


@router.post("/{kind}s/{code}/disable")
async def disable(
    kind: EnableKind, code: str, admin: AdminDep, hub: HubDep, session: SessionDep
) -> dict[str, str]:
    audit_as = await catalog_change(admin, session, kind, code, f"{kind}.disable")
    change = await _change(hub, session, lambda: catalog.set_enabled(session, kind, code, False), audit_as)
    return {"code": code, "change": change}


# --- tariffs -----------------------------------------------------------------------------------------------


@router.get("/tariffs", response_model=list[TariffIn])
async def list_tariffs(
    _: AdminDep,
    session: ReadSessionDep,
    kind: str | None = None,
    service: str | None = None,
    provider: str | None = None,
) -> list[TariffIn]:
    """Tariff versions with their history, newest first; an unknown service or provider is refused (422)."""
    lookups = (("service", service, catalog.get_service), ("provider", provider, catalog.get_provider))
    for what, code, lookup in lookups:
        if code is not None:
            try:
                await lookup(session, code)
            except catalog.CatalogError as e:
                raise invalid("unknown-" + what, str(e)) from None
    rows = await tariffs.history(session, kind=kind, service=service, provider=provider)
    return [await tariffs.version_to_schema(session, r) for r in rows]


@router.post("/tariffs", status_code=201)
async def add_tariff(
    body: TariffIn, admin: AdminDep, hub: HubDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """Add a tariff version (versions are never overwritten)."""

    async def _added(r: Any) -> Any:
        return None if r[0] == "unchanged" else {"id": r[1].id, **body.model_dump(mode="json")}

    result, row = await _change(
        hub,
        session,
        lambda: tariffs.add_version(session, body, _actor(admin)),
        AuditAs(admin, "tariff.add", f"tariff:{body.kind}", None, _added),
    )
    if result == "unchanged":
        response.status_code = 200
    return {"id": row.id, "change": result}


# --- routing switches -------------------------------------------------------------------------------------


class SwitchBody(BaseModel):
    off: Ident = Field(description="provider to move away from")
    onto: Ident | None = Field(None, description="provider to move onto (optional)")
    service: Ident | None = Field(None, description="one service; every service when omitted")


@router.post("/switches", status_code=201)
async def post_switch(
    body: SwitchBody, admin: AdminDep, hub: HubDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """One-click switch of a service, or of every service, off a provider (optionally onto another)."""
    r = await _change(
        hub,
        session,
        lambda: switch_provider(session, body.off, body.onto, body.service, _actor(admin)),
        AuditAs(admin, "routing.switch", f"provider:{body.off}", None, _switch_state),
    )
    if not r.changed:
        response.status_code = 200
    return {
        "switch_id": r.switch_id,
        "candidates_changed": r.candidates_changed,
        "services": r.services,
        "message": r.message,
        "changes": [c.as_dict() for c in r.changes],
    }


@router.post("/switches/{switch_id}/revert")
async def revert_switch(switch_id: Id, admin: AdminDep, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    r = await _change(
        hub,
        session,
        lambda: switch_back(session, switch_id, _actor(admin)),
        AuditAs(admin, "routing.switch_back", f"switch:{switch_id}", None, _switch_state),
    )
    return {
        "switch_id": r.switch_id,
        "candidates_changed": r.candidates_changed,
        "services": r.services,
        "message": r.message,
        "changes": [c.as_dict() for c in r.changes],
    }


async def _switch_state(r: Any) -> Any:
    return {
        "switch_id": r.switch_id,
        "candidates_changed": r.candidates_changed,
        "services": r.services,
        "changes": [c.as_dict() for c in r.changes],
    }


@router.get("/switches")
async def get_switches(_: AdminDep, session: ReadSessionDep) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "off_provider_id": s.off_provider_id,
            "onto_provider_id": s.onto_provider_id,
            "service_id": s.service_id,
            "candidates_changed": s.candidates_changed,
            "actor": s.actor,
            "created_at": s.created_at,
        }
        for s in await list_switches(session)
    ]


# --- balances and top-ups ---------------------------------------------------------------------------------


@router.get("/balances")
async def balances(
    _: AdminDep, hub: HubDep, session: ReadSessionDep, kind: str | None = None, currency: str | None = None
) -> list[dict[str, Any]]:
    """Every ledger account with its balance (debit positive), optionally filtered."""
    snap = await hub.catalog.get()
    q = select(Account).order_by(Account.kind, Account.owner_id, Account.currency)
    if kind:
        q = q.where(Account.kind == kind)
    if currency:
        q = q.where(Account.currency == currency)
    out = []
    for a in (await session.scalars(q)).all():
        out.append(
            {
                "kind": a.kind,
                "owner": _owner(snap, a.kind, a.owner_id),
                "currency": a.currency,
                "balance": format_amount(a.balance, a.currency),
                "balance_minor": a.balance,
                "updated_at": a.updated_at,
            }
        )
    return out


def _owner(snap: Any, kind: str, owner_id: int) -> str | None:
    if kind.startswith("provider"):
        p = snap.providers.get(owner_id)
        return p.code if p else str(owner_id)
    if kind.startswith("channel"):
        c = snap.channels.get(owner_id)
        return c.code if c else str(owner_id)
    return None


class TopUpBody(BaseModel):
    amount: Ident = Field(examples=["100000.00"])
    currency: Ident = Field(min_length=3, max_length=3)
    reference: Ident = Field(min_length=1, max_length=100, description="bank reference; makes it idempotent")


@router.post("/providers/{code}/topups", status_code=201)
async def topup(
    code: str, body: TopUpBody, admin: AdminDep, hub: HubDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """Record a top-up of a prepaid provider's deposit."""
    try:
        amount = parse_amount(body.amount, body.currency)
    except MoneyError as e:
        raise invalid("invalid-amount", str(e)) from None
    row, created = await record_topup(
        hub, session, code, body.currency, amount, reference=body.reference, actor=_actor(admin)
    )
    if created:
        await audit.record(session, admin, "provider.topup", f"provider:{code}", None, body.model_dump())
    await session.commit()
    if not created:
        response.status_code = 200
    return {
        "id": row.id,
        "provider": code,
        "amount": format_amount(row.amount, row.currency),
        "currency": row.currency,
        "reference": row.reference,
        "created": created,
    }


@router.get("/providers/{code}/balance")
async def provider_balance(code: str, _: AdminDep, hub: HubDep, session: ReadSessionDep) -> dict[str, Any]:
    snap = await hub.catalog.get()
    p = snap.providers_by_code.get(code)
    if p is None:
        raise not_found(f"provider {code!r}")
    rows = (
        await session.scalars(
            select(Account).where(Account.owner_id == p.id, Account.kind.like("provider_%"))
        )
    ).all()
    return {
        "provider": code,
        "settlement": p.settlement,
        "accounts": [
            {
                "kind": a.kind,
                "currency": a.currency,
                "balance": format_amount(a.balance, a.currency),
                "overdraft": format_amount(p.overdraft.get(a.currency, 0), a.currency),
            }
            for a in rows
        ],
        "health": {"enabled": p.enabled, **hub.breakers.state(p.id, p.breaker)},
    }


# --- payments ---------------------------------------------------------------------------------------------


@router.get("/payments")
async def search_payments(
    admin: AdminDep,
    hub: HubDep,
    session: ReadSessionDep,
    status: str | None = None,
    service: str | None = None,
    provider: str | None = None,
    channel: str | None = None,
    account: str | None = None,
    external_id: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    needs_attention: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[Count, Query()] = 0,
) -> dict[str, Any]:
    """Search payments with filters, newest first. An agent's users get their channels' payments with
    the fields they may see (``paymux.payments.visibility``), and cannot filter by the others."""
    snap = await hub.catalog.get()
    scope = await payment_scope(session, admin)
    for field, value in (("provider", provider), ("needs_attention", needs_attention)):
        if value is not None and not scope.shows(field):
            raise invalid("hidden-field", f"agent users cannot filter payments by {field}")
    q = select(Payment)
    if scope.channels is not None:  # an agent's users see only the agent's channels
        q = q.where(Payment.channel_id.in_(scope.channels or [-1]))
    if status:
        q = q.where(Payment.status == status)
    if service:
        q = q.where(Payment.service_id == _id_of(snap.services.get(service), "service", service))
    if provider:
        q = q.where(Payment.provider_id == _id_of(snap.providers_by_code.get(provider), "provider", provider))
    if channel:
        q = q.where(Payment.channel_id == _id_of(snap.channels_by_code.get(channel), "channel", channel))
    if account:
        q = q.where(Payment.account == account)
    if external_id:
        q = q.where(Payment.external_id == external_id)
    if created_from:
        q = q.where(Payment.created_at >= created_from)
    if created_to:
        q = q.where(Payment.created_at < created_to)
    if needs_attention is not None:
        q = q.where(Payment.needs_attention == needs_attention)
    total = await session.scalar(select(func.count()).select_from(q.subquery()))
    rows = (await session.scalars(q.order_by(Payment.id.desc()).limit(limit).offset(offset))).all()
    return {"total": total, "items": [_payment_dict(snap, scope, p) for p in rows]}


def _id_of(view: Any, what: str, code: str) -> int:
    if view is None:
        raise invalid("unknown-" + what, f"unknown {what} {code!r}")
    return int(view.id)


def _code_of(snap: Any) -> Callable[[str, int], Any]:
    tables = {"service": snap.services_by_id, "channel": snap.channels, "provider": snap.providers}

    def code_of(kind: str, owner_id: int) -> Any:
        found = tables[kind].get(owner_id)
        return found.code if found else owner_id

    return code_of


def _payment_dict(snap: Any, scope: PaymentScope, p: Payment) -> dict[str, Any]:
    """What the caller may see of ``p``, amounts as decimal strings."""
    view = payment_view(scope, p, _code_of(snap))
    for k in MONEY_FIELDS & view.keys():
        view[k] = None if view[k] is None else format_amount(view[k], p.currency)
    return view


@router.get("/payments/{payment_id}")
async def payment_details(
    payment_id: Id, admin: AdminDep, hub: HubDep, session: ReadSessionDep
) -> dict[str, Any]:
    """Everything about one payment: pricing, route, attempts with the provider exchange, postings
    (to an agent's users: what they may see of it, and the postings on their channels' accounts)."""
    p = await session.get(Payment, payment_id)
    scope = await payment_scope(session, admin)
    if p is None or not scope.sees_payment_of(p.channel_id):
        raise not_found(f"payment {payment_id}")
    snap = await hub.catalog.get()
    out = _payment_dict(snap, scope, p)
    if scope.shows(EXCHANGES):
        out["attempts"] = [
            {
                "provider": _code_of(snap)("provider", a.provider_id),
                "step": a.step,
                "outcome": a.outcome,
                "code": a.code,
                "message": a.message,
                "provider_txn_id": a.provider_txn_id,
                "started_at": a.started_at,
                "elapsed_ms": a.elapsed_ms,
                "exchanges": mask_secrets(a.exchanges),
            }
            for a in await payment_attempts(session, p.id)
        ]
    out["postings"] = [
        {
            "entry": e,
            "entry_kind": ek,
            "at": at,
            "account": f"{ak}:{_owner(snap, ak, owner) or 'system'}",
            "amount": format_amount(amt, cur),
            "currency": cur,
        }
        for e, ek, at, ak, owner, amt, cur in scope.postings(await payment_postings(session, p.id))
    ]
    if scope.shows(INBOUND):
        # requests of a payment system through an inbound gateway (e.g. OSMP), with our answers
        out["inbound"] = mask_secrets(await inbound_exchanges(session, p.id))
    return out


@router.get("/health/providers")
async def providers_health(_: AdminDep, hub: HubDep) -> list[dict[str, Any]]:
    """Each provider's circuit breaker as seen by this process."""
    snap = await hub.catalog.get()
    return [
        {"provider": p.code, "enabled": p.enabled, **hub.breakers.state(p.id, p.breaker)}
        for p in snap.providers.values()
    ]


async def _found(aw: Awaitable[T]) -> T:
    try:
        return await aw
    except catalog.CatalogError as e:
        raise not_found(str(e)) from None


def _same_code(path_code: str, body_code: str) -> None:
    if path_code != body_code:
        raise invalid("code-mismatch", f"the body's code {body_code!r} differs from the URL's {path_code!r}")
