"""Catalog: services, providers, channels, channel groups and agents: list, create, edit, enable/disable.

Changes go through the catalog service layer (the upserts ``paymux catalog apply`` uses), are audited
with their before and after states, and refresh the hub's catalog cache after the commit. Secrets are
never shown: a provider's config shows them as ``***`` (``paymux.masking``; left as ``***``, the stored
value is kept by the upsert) and a channel's HMAC secret is write-only (left empty, it is kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.audit.states import catalog_change
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.auth.user_models import User
from paymux.backoffice.forms import timezones
from paymux.backoffice.framework import (
    PROVIDERS,
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
from paymux.backoffice.sections.credentials import keys_of_channel
from paymux.backoffice.sections.ops import YES_NO, code_choices, yes_no
from paymux.catalog import service as catalog
from paymux.catalog.models import CHANNEL_KINDS, STRATEGIES, Agent, Channel, ChannelGroup, Provider, Service
from paymux.catalog.schemas import (
    AgentIn,
    ChannelGroupIn,
    ChannelIn,
    ProviderIn,
    ServiceIn,
    describe_validation_error,
)
from paymux.gateways import service as gateways
from paymux.gateways.base import inbound_names
from paymux.gateways.models import InboundGateway
from paymux.gateways.schemas import GatewayIn
from paymux.masking import MASK
from paymux.money import CURRENCIES
from paymux.providers.base import protocol_classes
from paymux.runtime import Hub
from paymux.yaml_text import load_field

router = section_router()
register(
    Section(
        "catalog",
        router,
        menu=(MenuEntry("Catalog", "/backoffice/catalog/services", P.CATALOG_READ, 30, area=PROVIDERS),),
        permissions=(P.CATALOG_READ, P.CATALOG_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.CATALOG_READ))]
Writer = Annotated[Principal, Depends(require(P.CATALOG_WRITE))]


@dataclass(frozen=True)
class Kind:
    slug: str  # in the URL
    name: str  # catalog_change's kind
    title: str  # msgid
    model: Any
    schema: type[BaseModel]
    toggles: bool  # has enabled/disabled


KINDS = {
    k.slug: k
    for k in (
        Kind("services", "service", "Services", Service, ServiceIn, True),
        Kind("providers", "provider", "Providers", Provider, ProviderIn, True),
        Kind("channels", "channel", "Channels", Channel, ChannelIn, True),
        Kind("channel-groups", "channel_group", "Channel groups", ChannelGroup, ChannelGroupIn, False),
        Kind("agents", "agent", "Agents", Agent, AgentIn, True),
        Kind("gateways", "gateway", "Inbound gateways", InboundGateway, GatewayIn, True),
    )
}


def _kind(slug: str) -> Kind:
    kind = KINDS.get(slug)
    if kind is None:
        raise PageNotFound()
    return kind


def _spec(kind: Kind) -> ListSpec:
    m = kind.model
    columns = [
        Column("code", "Code", m.code),
        Column("name", "Name", m.name),
    ]
    extra: dict[str, list[Column]] = {
        "services": [
            Column("category", "Category", Service.category),
            Column("currency", "Currency", Service.currency),
            Column("strategy", "Strategy", Service.strategy),
        ],
        "providers": [
            Column("protocol", "Protocol", Provider.protocol),
            Column("settlement", "Settlement", Provider.settlement),
            Column("timezone", "Timezone", Provider.timezone),
        ],
        "channels": [
            Column("kind", "Kind", Channel.kind),
            Column("signing", "Signing", Channel.signing),
        ],
        "gateways": [Column("protocol", "Protocol", InboundGateway.protocol)],
    }
    columns += extra.get(kind.slug, [])
    filters: list[Filter] = []
    if kind.toggles:
        columns.append(Column("enabled", "Enabled", m.enabled))
        filters.append(Filter("enabled", "Enabled", yes_no(m.enabled), YES_NO))
    if kind.slug == "services":
        filters.append(Filter("currency", "Currency", lambda q, v: q.where(Service.currency == v.upper())))
    if kind.slug == "providers":
        filters.append(
            Filter(
                "settlement",
                "Settlement",
                lambda q, v: q.where(Provider.settlement == v),
                [("prepaid", "prepaid"), ("postpaid", "postpaid")],
            )
        )
    if kind.slug == "channels":
        filters.append(
            Filter("kind", "Kind", lambda q, v: q.where(Channel.kind == v), [(k, k) for k in CHANNEL_KINDS])
        )
    return ListSpec(
        query=select(m),
        columns=columns,
        search=[m.code, m.name],
        filters=filters,
        default_sort="code",
        default_desc=False,
        sheet=kind.slug,
    )


@router.get("/catalog/{slug}")
async def catalog_list(request: Request, slug: str, session: ReadDbDep, _: Reader) -> Response:
    kind = _kind(slug)
    page = await _spec(kind).run(session, request)
    return respond(request, page, "catalog/list.html", kind=kind, kinds=KINDS)


# --- forms ------------------------------------------------------------------------------------------------


def _yaml(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    return str(yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False))


async def _current(session: AsyncSession, kind: Kind, code: str) -> dict[str, Any] | None:
    """The item as its form shows it (secrets masked), or None when it does not exist."""
    row = await session.scalar(select(kind.model).where(kind.model.code == code))
    if row is None:
        return None
    if kind.slug == "providers":
        data = catalog.masked_provider(catalog.provider_to_schema(row)).model_dump(mode="json")
    elif kind.slug == "services":
        data = (await catalog.service_to_schema(session, row)).model_dump(mode="json")
    elif kind.slug == "channels":
        channel = catalog.masked_channel(await catalog.channel_to_schema(session, row))
        data = channel.model_dump(mode="json")
        data["signing"]["has_secret"] = bool(data["signing"].pop("hmac_secret", None))
    elif kind.slug == "agents":
        data = (await catalog.agent_to_schema(session, row)).model_dump(mode="json")
    elif kind.slug == "gateways":
        data = gateways.masked(await gateways.gateway_to_schema(session, row)).model_dump(mode="json")
    else:
        data = catalog.channel_group_to_schema(row).model_dump(mode="json")
    return data


def _form_view(kind: Kind, data: dict[str, Any]) -> dict[str, Any]:
    """Flat strings for the form's fields from the item's user-facing form."""
    view: dict[str, Any] = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    if kind.slug == "providers":
        view["config"] = _yaml(data.get("config"))
        view["overdraft"] = _yaml(data.get("overdraft"))
        for k, v in (data.get("breaker") or {}).items():
            view[f"breaker_{k}"] = v
    if kind.slug == "services":
        view["fields"] = _yaml(data.get("fields"))
        route = data.get("route") or {}
        view["strategy"] = route.get("strategy", "priority")
        view["candidates"] = _yaml(route.get("candidates"))
    if kind.slug == "channels":
        signing = data.get("signing") or {}
        view["signing_mode"] = signing.get("mode", "none")
        view["signing_required"] = signing.get("required", False)
        view["rsa_public_key"] = signing.get("rsa_public_key") or ""
        view["has_secret"] = signing.get("has_secret", False)
    if kind.slug == "gateways":
        view["config"] = _yaml(data.get("config"))
        view["limits"] = _yaml(data.get("limits"))
        for name in ("services", "ignore_params", "allow_ips", "trusted_proxies"):
            view[name] = ", ".join(data.get(name) or [])
        auth = data.get("auth") or {}
        view["login"] = auth.get("login") or ""
        view["has_password"] = bool(auth.get("password_hash"))
        view["client_cert"] = _yaml(auth.get("client_cert"))
        view["channel"] = data.get("channel") or data.get("code", "")
    return view


def _words(text: str) -> list[str]:
    """A comma- or space-separated list."""
    return [w for w in text.replace(",", " ").split() if w]


def _load(text: str, what: str, default: Any) -> Any:
    if not text.strip():
        return default
    try:
        value = load_field(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{what}: not readable YAML ({e})") from None
    return default if value is None else value


async def _has_hmac_secret(session: AsyncSession, code: str) -> bool:
    return bool(await session.scalar(select(Channel.hmac_secret).where(Channel.code == code)))


async def _input(session: AsyncSession, kind: Kind, code: str, f: dict[str, str]) -> dict[str, Any]:
    """The catalog schema's input from the posted form. Raises ValueError for unreadable parts."""
    data: dict[str, Any] = {"code": code, "name": f.get("name", "")}
    on = f.get("enabled") == "1"
    if kind.slug == "providers":
        data |= {
            "protocol": f.get("protocol", ""),
            "config": _load(f.get("config", ""), "config", {}),  # the upsert keeps what is left as ***
            "timezone": f.get("timezone") or "UTC",
            "settlement": f.get("settlement") or "postpaid",
            "overdraft": _load(f.get("overdraft", ""), "overdraft", {}),
            "breaker": {
                k: f.get(f"breaker_{k}") or default
                for k, default in (
                    ("window_seconds", 60),
                    ("min_calls", 10),
                    ("failure_rate_percent", 50),
                    ("open_seconds", 30),
                )
            },
            "enabled": on,
        }
    elif kind.slug == "services":
        data |= {
            "category": f.get("category") or "other",
            "currency": f.get("currency", ""),
            "account_pattern": f.get("account_pattern") or r"^.{1,64}$",
            "account_hint": f.get("account_hint") or None,
            "min_amount": f.get("min_amount") or None,
            "max_amount": f.get("max_amount") or None,
            "lifetime_seconds": f.get("lifetime_seconds") or None,
            "periodic_days": f.get("periodic_days") or None,
            "project": f.get("project", "").strip() or None,
            "fields": _load(f.get("fields", ""), "fields", []),
            "enabled": on,
            "route": {
                "strategy": f.get("strategy") or "priority",
                "candidates": _load(f.get("candidates", ""), "candidates", []),
            },
        }
    elif kind.slug == "channels":
        kept = MASK if await _has_hmac_secret(session, code) else None  # left empty: keep the stored one
        mode = f.get("signing_mode") or "none"
        data |= {
            "kind": f.get("kind", ""),
            "group": f.get("group") or None,
            "agent": f.get("agent") or None,
            "manager": f.get("manager") or None,
            "enabled": on,
            "signing": {
                "mode": mode,
                "required": f.get("signing_required") == "1",
                "hmac_secret": f.get("hmac_secret") or kept,
                "rsa_public_key": f.get("rsa_public_key", "").strip() or None,
            },
        }
    elif kind.slug == "agents":
        data["enabled"] = on
        data["manager"] = f.get("manager") or None
    elif kind.slug == "gateways":
        login = f.get("login", "").strip() or None
        stored = await session.scalar(select(InboundGateway.password_hash).where(InboundGateway.code == code))
        password = f.get("password") or None
        kept = MASK if login and stored else None
        data |= {
            "protocol": f.get("protocol", ""),
            "channel": f.get("channel") or None,
            "enabled": on,
            "services": _words(f.get("services", "")),
            "default_service": f.get("default_service") or None,
            "service_param": f.get("service_param") or "service",
            "limits": _load(f.get("limits", ""), "limits", {}),
            "ignore_params": _words(f.get("ignore_params", "")),
            "check": f.get("check") or "provider",
            "check_txn_id": f.get("check_txn_id") or "own",
            "pay_result": f.get("pay_result") or "accepted",
            "auth": {
                "login": login,
                # left empty: the stored password is kept (*** stands for its hash)
                **(
                    {"password": password}
                    if password
                    else {"password_hash": MASK if login and stored else None}
                ),
                "client_cert": _load(f.get("client_cert", ""), "client certificate", None),
            },
            "allow_ips": _words(f.get("allow_ips", "")),
            "trusted_proxies": _words(f.get("trusted_proxies", "")),
            "config": _load(f.get("config", ""), "config", {}),  # the upsert keeps what is left as ***
        }
    return data


async def _upsert(session: AsyncSession, kind: Kind, item: BaseModel) -> str:
    if isinstance(item, ProviderIn):
        return await catalog.upsert_provider(session, item)
    if isinstance(item, ServiceIn):
        return await catalog.upsert_service(session, item)
    if isinstance(item, ChannelIn):
        return await catalog.upsert_channel(session, item)
    if isinstance(item, AgentIn):
        return await catalog.upsert_agent(session, item)
    if isinstance(item, ChannelGroupIn):
        return await catalog.upsert_channel_group(session, item)
    if isinstance(item, GatewayIn):
        return await gateways.upsert_gateway(session, item)
    raise TypeError(kind.slug)


async def _gateway_channels(session: AsyncSession) -> list[tuple[str, str]]:
    """(code, "code · name") of the channels of kind gateway."""
    gateway_codes = set((await session.scalars(select(Channel.code).where(Channel.kind == "gateway"))).all())
    return [(c, label) for c, label in await code_choices(session, Channel) if c in gateway_codes]


async def _choices(session: AsyncSession) -> dict[str, Any]:
    return {
        "protocols": sorted(protocol_classes()),
        "inbound_protocols": inbound_names(),
        "gateway_channels": await _gateway_channels(session),
        "timezones": timezones(),
        "currencies": sorted(CURRENCIES),
        "strategies": STRATEGIES,
        "channel_kinds": CHANNEL_KINDS,
        "groups": await code_choices(session, ChannelGroup),
        "agents": await code_choices(session, Agent),
        "managers": await _managers(session),
    }


async def _managers(session: AsyncSession) -> list[tuple[str, str]]:
    """(username, "username · full name") of the operator's staff, who can manage agents and channels."""
    rows = (await session.execute(select(User.username, User.full_name).order_by(User.username))).all()
    return [(u, f"{u} · {n}" if n else u) for u, n in rows]


async def _form(
    request: Request,
    session: AsyncSession,
    kind: Kind,
    view: dict[str, Any],
    *,
    new: bool,
    error: str = "",
    status: int = 200,
    keys: list[dict[str, Any]] | None = None,
) -> Response:
    return render(
        request,
        "catalog/item.html",
        status,
        kind=kind,
        kinds=KINDS,
        f=view,
        new=new,
        error=error,
        keys=keys or [],
        **await _choices(session),
    )


@router.get("/catalog/new/{slug}")
async def catalog_new(request: Request, slug: str, session: DbDep, _: Writer) -> Response:
    kind = _kind(slug)
    blank: dict[str, Any] = {"code": "", "name": "", "enabled": True}
    return await _form(request, session, kind, blank, new=True)


@router.get("/catalog/{slug}/{code}")
async def catalog_item(request: Request, slug: str, code: str, session: ReadDbDep, me: Reader) -> Response:
    kind = _kind(slug)
    data = await _current(session, kind, code)
    if data is None:
        raise PageNotFound()
    keys = await keys_of_channel(session, me, code) if kind.slug == "channels" else []
    return await _form(request, session, kind, _form_view(kind, data), new=False, keys=keys)


async def _save(
    request: Request, session: AsyncSession, me: Principal, kind: Kind, code: str, new: bool
) -> Response:
    form = await request.form()
    f = {k: str(v) for k, v in form.items()}
    view = {**f, "code": code, "enabled": f.get("enabled") == "1"}
    view.pop("hmac_secret", None)  # never sent back to the page
    view.pop("password", None)
    data: dict[str, Any] = {}
    try:
        if new and await session.scalar(select(kind.model.id).where(kind.model.code == code)) is not None:
            raise ValueError(f"{code!r} already exists")
        data = await _input(session, kind, code, f)
        item = kind.schema.model_validate(data)
        audit_as = await catalog_change(
            me, session, kind.name, code, f"{kind.name}.{'create' if new else 'update'}"
        )
        change = await _upsert(session, kind, item)
        await audit_as.write(session, change)
    except ValidationError as e:
        error = describe_validation_error(e, data)
    except (ValueError, catalog.CatalogError) as e:
        error = str(e)
    else:
        await session.commit()
        hub: Hub = request.app.state.hub
        hub.catalog_changed()
        msg = "Saved." if change != "unchanged" else "Nothing changed."
        return redirect(f"/backoffice/catalog/{kind.slug}/{code}", msg)
    await session.rollback()
    return await _form(request, session, kind, view, new=new, error=error, status=422)


@router.post("/catalog/new/{slug}")
async def catalog_create(request: Request, slug: str, session: DbDep, me: Writer) -> Response:
    kind = _kind(slug)
    code = str((await request.form()).get("code", "")).strip()
    return await _save(request, session, me, kind, code, new=True)


@router.post("/catalog/{slug}/{code}")
async def catalog_update(request: Request, slug: str, code: str, session: DbDep, me: Writer) -> Response:
    kind = _kind(slug)
    if await session.scalar(select(kind.model.id).where(kind.model.code == code)) is None:
        raise PageNotFound()
    return await _save(request, session, me, kind, code, new=False)


async def _toggle(
    request: Request, session: AsyncSession, me: Principal, slug: str, code: str, on: bool
) -> Response:
    kind = _kind(slug)
    if not kind.toggles:
        raise PageNotFound()
    action = "enable" if on else "disable"
    try:
        audit_as = await catalog_change(me, session, kind.name, code, f"{kind.name}.{action}")
        change = await catalog.set_enabled(session, kind.name, code, on)  # type: ignore[arg-type]
        await audit_as.write(session, change)
    except catalog.CatalogError:
        raise PageNotFound() from None
    await session.commit()
    hub: Hub = request.app.state.hub
    hub.catalog_changed()
    return redirect(f"/backoffice/catalog/{kind.slug}/{code}", "Enabled." if on else "Disabled.")


@router.post("/catalog/{slug}/{code}/enable")
async def catalog_enable(request: Request, slug: str, code: str, session: DbDep, me: Writer) -> Response:
    return await _toggle(request, session, me, slug, code, True)


@router.post("/catalog/{slug}/{code}/disable")
async def catalog_disable(request: Request, slug: str, code: str, session: DbDep, me: Writer) -> Response:
    return await _toggle(request, session, me, slug, code, False)
