"""Admin API of invoice collection: billers (brand, methods, account, reminder policy, fee, webhook),
their API keys, webhook secret rotation, and the log and redelivery of their webhooks.

``invoices.read`` reads, ``invoices.write`` changes (``paymux.auth.permissions``). Secrets (the
webhook secret, API keys) are shown once, when they are made; every read masks them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Path, Query, Response, UploadFile
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.api.params import Id, Ident, no_control_characters
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.invoices import method_config, service
from paymux.invoices.methods.base import method_names, method_order
from paymux.invoices.models import Biller, BillerKey
from paymux.masking import MASK, mask_url
from paymux.money import MoneyError, check_currency, format_amount, parse_amount
from paymux.notifications.models import DeliveryAttempt, Notification
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.webhooks import generate_secret, seal, url_problems

router = APIRouter(prefix="/api/v1/admin/billers", tags=["invoices admin"])

Reader = Annotated[Principal, Depends(require_api(P.INVOICES_READ))]
Writer = Annotated[Principal, Depends(require_api(P.INVOICES_WRITE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token (problem+json)"},
    403: {"description": "the token's user lacks the permission (problem+json)"},
    404: {"description": "not found (problem+json)"},
    409: {"description": "conflict (problem+json)"},
    422: {"description": "invalid request (problem+json)"},
}
CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
COLOR = r"^#[0-9a-fA-F]{6}$"

Short = Annotated[Ident, Field(max_length=200)]
Long = Annotated[StrictStr, Field(max_length=1000), AfterValidator(no_control_characters)]


def _url(value: str) -> str:
    problems = url_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


Url = Annotated[StrictStr, Field(max_length=2000), AfterValidator(_url)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Brand(Strict):
    logo_url: Url | None = None
    primary_color: Annotated[StrictStr, Field(pattern=COLOR)] | None = None
    accent_color: Annotated[StrictStr, Field(pattern=COLOR)] | None = None


class Legal(Strict):
    legal_name: Short | None = None
    registration_number: Short | None = None
    vat_number: Short | None = None
    address: Long | None = None


class Support(Strict):
    email: Short | None = None
    phone: Short | None = None
    url: Url | None = None


class Account(Strict):
    holder: Short | None = None
    iban: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")] | None = None
    bic: Annotated[StrictStr, Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")] | None = None
    bank_name: Short | None = None
    account_number: Annotated[StrictStr, Field(pattern=r"^[0-9]{1,34}$")] | None = None
    inn: Annotated[StrictStr, Field(pattern=r"^[0-9]{10,12}$")] | None = None
    kpp: Annotated[StrictStr, Field(pattern=r"^[0-9]{9}$")] | None = None
    bik: Annotated[StrictStr, Field(pattern=r"^[0-9]{9}$")] | None = None
    correspondent_account: Annotated[StrictStr, Field(pattern=r"^[0-9]{20}$")] | None = None


class Fee(Strict):
    amount: Annotated[StrictStr, Field(max_length=30)] = "0"
    currency: Annotated[StrictStr, Field(min_length=3, max_length=3)] = "EUR"


ReminderDays = Annotated[list[Annotated[int, Field(ge=-365, le=365)]], Field(max_length=20)]


def _method(value: str) -> str:
    """A payment method a plug-in provides (the built-in ones or any ``paymux.paymethods`` entry point)."""
    if value not in method_names():
        raise ValueError(f"unknown payment method {value!r}; known: {', '.join(method_names())}")
    return value


Methods = Annotated[
    list[Annotated[StrictStr, Field(pattern="^[a-z][a-z0-9_]{0,31}$"), AfterValidator(_method)]],
    Field(max_length=10),
]


def _timezone(value: str) -> str:
    from paymux.notifications.templates import valid_timezone

    if valid_timezone(value) != value:
        raise ValueError("timezone must be an IANA time zone, such as Europe/Chisinau")
    return value


Timezone = Annotated[StrictStr, Field(max_length=64), AfterValidator(_timezone)]


class BillerPatch(Strict):
    name: Annotated[Ident, Field(min_length=1, max_length=200)] | None = None
    brand: Brand | None = None
    legal: Legal | None = None
    support: Support | None = None
    methods: Methods | None = None
    account: Account | None = None
    reminder_days: ReminderDays | None = None
    timezone: Timezone | None = None
    fee: Fee | None = None
    webhook_url: Url | None = None
    webhook_enabled: StrictBool | None = None
    enabled: StrictBool | None = None


class BillerIn(BillerPatch):
    code: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Annotated[Ident, Field(min_length=1, max_length=200)]


class KeyIn(Strict):
    name: Annotated[Ident, Field(max_length=100)] = ""


def biller_view(b: Biller, secret: str | None = None) -> dict[str, Any]:
    """The biller as reads show it: the webhook secret masked unless just made (``secret``)."""
    return {
        "code": b.code,
        "name": b.name,
        "brand": b.brand,
        "legal": b.legal,
        "support": b.support,
        "methods": b.methods,
        "account": b.account,
        "reminder_days": b.reminder_days,
        "timezone": b.timezone,
        "fee": {"amount": format_amount(b.fee_amount, b.fee_currency), "currency": b.fee_currency},
        "webhook_url": mask_url(b.webhook_url) if b.webhook_url else None,
        "webhook_secret": secret if secret is not None else (MASK if b.webhook_secret else None),
        "webhook_enabled": b.webhook_enabled,
        "method_config": method_config.view(b.method_config),
        "enabled": b.enabled,
        "created_at": b.created_at.isoformat(),
        "updated_at": b.updated_at.isoformat(),
    }


def _audit_view(b: Biller) -> dict[str, Any]:
    view = biller_view(b)
    view.pop("created_at")
    view.pop("updated_at")
    return view


async def _biller(session: AsyncSession, code: str, *, lock: bool = False) -> Biller:
    if not CODE.match(code):
        raise not_found(f"biller {code[:64]!r}")
    found: Biller | None = await session.scalar(select(Biller).where(Biller.code == code))
    if found is None:
        raise not_found(f"biller {code!r}")
    if lock:
        again = await locked(session, Biller, found.id)
        assert again is not None
        return again
    return found


def _apply(b: Biller, body: BillerPatch) -> str | None:
    """Set the given fields; returns a new webhook secret when one was made (the first webhook URL)."""
    fields = body.model_dump(exclude_unset=True)
    for name in ("name", "methods", "reminder_days", "timezone", "webhook_enabled", "enabled"):
        if name in fields and fields[name] is not None:
            setattr(b, name, fields[name])
    for name in ("brand", "legal", "support", "account"):
        if name in fields and fields[name] is not None:
            setattr(b, name, {k: v for k, v in fields[name].items() if v is not None})
    if body.methods is not None:
        b.methods = method_order(body.methods)
    if body.reminder_days is not None:
        b.reminder_days = sorted(set(body.reminder_days))
    if body.fee is not None:
        try:
            b.fee_currency = check_currency(body.fee.currency)
            b.fee_amount = parse_amount(body.fee.amount, b.fee_currency, allow_zero=True)
        except MoneyError as e:
            raise invalid("invalid-fee", str(e)) from None
    secret = None
    if "webhook_url" in fields:
        b.webhook_url = body.webhook_url
        if body.webhook_url and not b.webhook_secret:
            secret = generate_secret()
            b.webhook_secret = seal(secret, NotificationSettings())
    b.updated_at = utcnow()
    return secret


# the back office's biller form applies and audits changes the same way
apply_patch = _apply
audit_view = _audit_view


@router.get("", summary="Billers", responses=PROBLEMS)
async def list_billers(_: Reader, session: ReadSessionDep) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(Biller).order_by(Biller.code))).all()
    return [biller_view(b) for b in rows]


@router.post("", status_code=201, summary="Create a biller", responses=PROBLEMS)
async def create_biller(body: BillerIn, me: Writer, session: SessionDep) -> dict[str, Any]:
    """With a ``webhook_url`` the hub makes the webhook secret and shows it in this answer only."""
    if await session.scalar(select(Biller.id).where(Biller.code == body.code)) is not None:
        raise Problem(409, "biller-exists", "Biller exists", f"biller {body.code} exists")
    now = utcnow()
    b = Biller(
        code=body.code,
        name=body.name,
        brand={},
        legal={},
        support={},
        methods=["bank_transfer"],
        account={},
        reminder_days=[],
        timezone="UTC",
        fee_amount=0,
        fee_currency="EUR",
        webhook_enabled=True,
        method_config={},
        enabled=True,
        created_at=now,
    )
    secret = _apply(b, body)
    session.add(b)
    await session.flush()
    await audit.record(session, me, "biller.create", f"biller:{b.code}", None, _audit_view(b))
    await session.commit()
    return biller_view(b, secret)


@router.get("/{code}", summary="A biller", responses=PROBLEMS)
async def get_biller(code: str, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    return biller_view(await _biller(session, code))


@router.patch("/{code}", summary="Change a biller", responses=PROBLEMS)
async def patch_biller(code: str, body: BillerPatch, me: Writer, session: SessionDep) -> dict[str, Any]:
    b = await _biller(session, code, lock=True)
    before = _audit_view(b)
    secret = _apply(b, body)
    await audit.record(session, me, "biller.update", f"biller:{b.code}", before, _audit_view(b))
    await session.commit()
    return biller_view(b, secret)


@router.post("/{code}/webhook/secret", summary="Make a new webhook secret", responses=PROBLEMS)
async def rotate_secret(code: str, me: Writer, session: SessionDep) -> dict[str, Any]:
    """The new secret is shown in this answer only; the old one stops signing at once."""
    b = await _biller(session, code, lock=True)
    secret = generate_secret()
    b.webhook_secret, b.updated_at = seal(secret, NotificationSettings()), utcnow()
    await audit.record(
        session, me, "biller.webhook_secret", f"biller:{b.code}", None, {"webhook_secret": MASK}
    )
    await session.commit()
    return biller_view(b, secret)


MethodPath = Annotated[str, Path(pattern="^[a-z][a-z0-9_]{0,31}$"), AfterValidator(_method)]


@router.put(
    "/{code}/methods/{method}", summary="Set the biller's own settings of a method", responses=PROBLEMS
)
async def put_method_config(
    code: str,
    method: MethodPath,
    body: Annotated[dict[str, Any], Body()],
    me: Writer,
    session: SessionDep,
) -> dict[str, Any]:
    """Settings of the method for this biller's invoices, over the hub's ``PAYMUX_PAYMETHODS`` (say its
    own acquirer ``merchant`` and callback ``secret``): a flat JSON object of text values, replacing
    what was set before. Secrets are masked in every read; sent back masked (``***``) they are kept.
    Callbacks for the biller's attempts are checked with its own ``secret`` when it has one."""
    b = await _biller(session, code, lock=True)
    before = _audit_view(b)
    stored = dict(b.method_config or {})
    try:
        stored[method] = method_config.merged(stored.get(method), body)
    except method_config.ConfigError as e:
        raise invalid("invalid-method-config", str(e), field=method) from None
    b.method_config, b.updated_at = stored, utcnow()
    await audit.record(session, me, "biller.method_config", f"biller:{b.code}", before, _audit_view(b))
    await session.commit()
    return biller_view(b)


@router.delete(
    "/{code}/methods/{method}", summary="Drop the biller's own settings of a method", responses=PROBLEMS
)
async def delete_method_config(
    code: str, method: MethodPath, me: Writer, session: SessionDep
) -> dict[str, Any]:
    """The method uses the hub's settings again for this biller."""
    b = await _biller(session, code, lock=True)
    if method in (b.method_config or {}):
        before = _audit_view(b)
        b.method_config = {k: v for k, v in b.method_config.items() if k != method}
        b.updated_at = utcnow()
        await audit.record(session, me, "biller.method_config", f"biller:{b.code}", before, _audit_view(b))
        await session.commit()
    return biller_view(b)


def _key_view(k: BillerKey, key: str | None = None) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "key": key if key is not None else MASK,
        "created_at": k.created_at.isoformat(),
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


@router.post("/{code}/keys", status_code=201, summary="Issue an API key", responses=PROBLEMS)
async def issue_key(code: str, me: Writer, session: SessionDep, body: KeyIn | None = None) -> dict[str, Any]:
    """The key is shown in this answer only (stored as its hash)."""
    b = await _biller(session, code)
    row, key = await service.issue_biller_key(session, b, body.name if body else "")
    await audit.record(session, me, "biller.key_issue", f"biller:{b.code}", None, {"key_id": row.id})
    await session.commit()
    return _key_view(row, key)


@router.get("/{code}/keys", summary="The biller's API keys", responses=PROBLEMS)
async def list_keys(code: str, _: Reader, session: ReadSessionDep) -> list[dict[str, Any]]:
    b = await _biller(session, code)
    rows = (
        await session.scalars(select(BillerKey).where(BillerKey.biller_id == b.id).order_by(BillerKey.id))
    ).all()
    return [_key_view(k) for k in rows]


@router.post("/{code}/keys/{key_id}/revoke", summary="Revoke an API key", responses=PROBLEMS)
async def revoke_key(code: str, key_id: Id, me: Writer, session: SessionDep) -> dict[str, Any]:
    b = await _biller(session, code)
    k = await session.get(BillerKey, key_id)
    if k is None or k.biller_id != b.id:
        raise not_found(f"key {key_id}")
    if k.revoked_at is None:
        k.revoked_at = utcnow()
        await audit.record(session, me, "biller.key_revoke", f"biller:{b.code}", None, {"key_id": k.id})
        await session.commit()
    return _key_view(k)


def _delivery_view(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "event": n.event,
        "status": n.status,
        "attempts": n.attempts,
        "last_error": n.last_error,
        "data": (n.payload or {}).get("data"),
        "created_at": n.created_at.isoformat(),
        "delivered_at": n.delivered_at.isoformat() if n.delivered_at else None,
        "next_attempt_at": n.due_at.isoformat() if n.status == "pending" else None,
        "expires_at": n.expires_at.isoformat(),
    }


@router.get("/{code}/webhook/deliveries", summary="The biller's webhooks", responses=PROBLEMS)
async def deliveries(
    code: str,
    _: Reader,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int, Query(ge=1, le=2**63 - 1)] | None = None,
) -> dict[str, Any]:
    """Newest first; page with ``before_id``."""
    b = await _biller(session, code)
    q = (
        select(Notification)
        .where(Notification.biller_id == b.id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        q = q.where(Notification.id < before_id)
    return {"items": [_delivery_view(n) for n in (await session.scalars(q)).all()]}


@router.get(
    "/{code}/webhook/deliveries/{notification_id}", summary="A webhook and its attempts", responses=PROBLEMS
)
async def delivery(code: str, notification_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    b = await _biller(session, code)
    n = await session.get(Notification, notification_id)
    if n is None or n.biller_id != b.id:
        raise not_found(f"webhook {notification_id}")
    attempts = (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id == n.id)
            .order_by(DeliveryAttempt.id)
        )
    ).all()
    return {
        **_delivery_view(n),
        "log": [
            {
                "at": a.at.isoformat(),
                "ok": a.ok,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
                "target": a.target,
            }
            for a in attempts
        ],
    }


@router.post(
    "/{code}/webhook/deliveries/{notification_id}/redeliver",
    summary="Send a webhook again",
    responses=PROBLEMS,
)
async def redeliver(code: str, notification_id: Id, me: Writer, session: SessionDep) -> dict[str, Any]:
    """Now, and retried for another three days; 409 while it is being sent."""
    b = await _biller(session, code)
    n = await locked(session, Notification, notification_id, key_share=True)
    if n is None or n.biller_id != b.id:
        raise not_found(f"webhook {notification_id}")
    if n.status == "running":
        raise Problem(
            409, "notification-running", "Being sent", f"webhook {n.id} is being sent; wait for its result"
        )
    now = utcnow()
    n.status, n.due_at, n.lease_owner, n.updated_at = "pending", now, None, now
    n.expires_at = now + service.WEBHOOK_WINDOW
    await audit.record(
        session, me, "biller.webhook_redeliver", f"notification:{n.id}", None, {"status": "pending"}
    )
    await session.commit()
    return _delivery_view(n)


@router.post("/{code}/invoices/upload", summary="Take a biller's invoices from a file", responses=PROBLEMS)
async def upload_for_biller(
    code: str,
    me: Writer,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="CSV or Excel (xlsx), the first row naming the columns")],
    mapping: Annotated[str | None, Form(max_length=10_000)] = None,
    mapping_name: Annotated[str | None, Form(max_length=64)] = None,
) -> dict[str, Any]:
    """Like the biller's ``POST /api/v1/invoices/upload``, on the biller's behalf (audited)."""
    from paymux.invoices import upload as uploads
    from paymux.invoices import upload_mappings as mappings
    from paymux.invoices.endpoints import read_upload

    b = await _biller(session, code)
    cfg = await mappings.resolve(session, b, mapping, mapping_name)
    out = await uploads.upload(session, b, await read_upload(file), (file.filename or "")[:200], cfg)
    counts = {k: out[k] for k in ("rows", "created", "duplicate", "error")}
    await audit.record(session, me, "biller.invoices_upload", f"biller:{b.code}", None, counts)
    await session.commit()
    return out


@router.get("/{code}/upload-mappings", summary="The biller's stored upload mappings", responses=PROBLEMS)
async def list_upload_mappings(code: str, _: Reader, session: ReadSessionDep) -> list[dict[str, Any]]:
    from paymux.invoices import upload_mappings as mappings

    b = await _biller(session, code)
    return [mappings.view(m) for m in await mappings.list_mappings(session, b)]


@router.get("/{code}/upload-mappings/{mapping}", summary="A stored upload mapping", responses=PROBLEMS)
async def get_upload_mapping(code: str, mapping: str, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    from paymux.invoices import upload_mappings as mappings

    return mappings.view(await mappings.get(session, await _biller(session, code), mapping))


@router.put(
    "/{code}/upload-mappings/{mapping}", summary="Store an upload mapping by name", responses=PROBLEMS
)
async def put_upload_mapping(
    code: str,
    mapping: str,
    me: Writer,
    session: SessionDep,
    body: Annotated[dict[str, Any], Body(description="the mapping, as the upload's mapping field")],
) -> dict[str, Any]:
    """Store (or replace) one of the biller's mappings (audited); 422 names what is wrong."""
    from paymux.invoices import upload_mappings as mappings

    row = await mappings.save(session, await _biller(session, code), mapping, body, me)
    await session.commit()
    return mappings.view(row)


@router.delete(
    "/{code}/upload-mappings/{mapping}",
    status_code=204,
    summary="Delete a stored upload mapping",
    responses=PROBLEMS,
)
async def delete_upload_mapping(code: str, mapping: str, me: Writer, session: SessionDep) -> Response:
    from paymux.invoices import upload_mappings as mappings

    await mappings.delete(session, await _biller(session, code), mapping, me)
    await session.commit()
    return Response(status_code=204)


__all__ = ["router"]
