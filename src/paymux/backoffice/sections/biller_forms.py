"""Collections: creating and changing billers in the back office (``invoices.write``, audited).

One form for both: the name, the brand (logo, colours: the primary colour must carry text at WCAG AA
contrast), legal details, support contacts, accepted methods, the collection account, the webhook
(URL and secret: the secret is never shown again; an empty field keeps it), the reminder policy, the
time zone and the fixed fee. The form is checked by the admin API's own models
(:mod:`paymux.invoices.admin`) and every problem is named in words. A webhook URL given to a biller
without a secret makes one, shown once on the page that follows.

Registered before the ``invoices`` section so that ``/billers/new`` is not taken for a biller's code.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.forms import timezones
from paymux.backoffice.framework import (
    DbDep,
    PageNotFound,
    ReadDbDep,
    Section,
    language_of,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.i18n import translator
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem
from paymux.invoices import admin as billers_api
from paymux.invoices.admin import CODE, BillerIn, BillerPatch
from paymux.invoices.elements.colour import AA_NORMAL_TEXT, contrast_ratio
from paymux.invoices.methods.base import method_names, method_order
from paymux.invoices.models import Biller
from paymux.invoices.schemas import EMAIL, PHONE
from paymux.masking import MASK
from paymux.money import MoneyError, check_currency, format_amount, parse_amount
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.webhooks import SECRET_PREFIX, seal

router = section_router()
register(Section("biller_forms", router, permissions=(P.INVOICES_WRITE,)))

Writer = Annotated[Principal, Depends(require(P.INVOICES_WRITE))]
ReadingWriter = Annotated[Principal, Depends(require_before_reading(P.INVOICES_WRITE))]
RESERVED = ("new",)

BRAND = (
    ("logo_url", "Logo URL (https)"),
    ("primary_color", "Primary colour"),
    ("accent_color", "Accent colour"),
)
LEGAL = (
    ("legal_name", "Legal name"),
    ("registration_number", "Registration number"),
    ("vat_number", "VAT number"),
    ("address", "Address"),
)
SUPPORT = (("email", "Support e-mail"), ("phone", "Support phone"), ("url", "Support page"))
ACCOUNT = (
    ("holder", "Account holder"),
    ("iban", "IBAN"),
    ("bic", "BIC"),
    ("bank_name", "Bank name"),
    ("account_number", "Account number"),
    ("inn", "INN"),
    ("kpp", "KPP"),
    ("bik", "BIK"),
    ("correspondent_account", "Correspondent account"),
)
GROUPS = {"brand": BRAND, "legal": LEGAL, "support": SUPPORT, "account": ACCOUNT}
# text fields of the account that are codes: spaces dropped, upper case
CODES = ("iban", "bic", "account_number", "inn", "kpp", "bik", "correspondent_account")

# what the form says about a field it cannot take (by the field's place in the admin API's body)
MESSAGES: dict[tuple[str, ...], str] = {
    ("code",): "The code is 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
    ("name",): "Give the name (up to 200 characters).",
    ("brand", "logo_url"): "The logo URL must be an https:// address.",
    ("brand", "primary_color"): "A colour is # and six hexadecimal digits, such as #0b5394.",
    ("brand", "accent_color"): "A colour is # and six hexadecimal digits, such as #0b5394.",
    ("support", "url"): "The support page must be an http:// or https:// address.",
    ("account", "iban"): "The IBAN is two letters, two check digits and 11 to 30 letters or digits.",
    ("account", "bic"): "The BIC is 8 or 11 letters and digits.",
    ("account", "account_number"): "The account number is up to 34 digits.",
    ("account", "inn"): "The INN is 10 or 12 digits.",
    ("account", "kpp"): "The KPP is 9 digits.",
    ("account", "bik"): "The BIK is 9 digits.",
    ("account", "correspondent_account"): "The correspondent account is 20 digits.",
    ("methods",): "Choose the methods among card, open banking, redirect and bank transfer.",
    ("reminder_days",): "Reminder days are at most 20 numbers of days from the due date, from -365 to 365.",
    ("timezone",): "Choose a time zone.",
    ("fee",): "The fee is an amount such as 0.50 and a currency code such as EUR.",
    ("webhook_url",): "The webhook URL must be an http:// or https:// address.",
}


DAYS_TEXT = (
    "Reminder days are whole numbers of days from the due date, separated by commas, such as -3, 0, 7, 14."
)
CONTRAST_TEXT = (
    "The primary colour carries text at a contrast of {ratio}:1 at best; WCAG AA asks for 4.5:1. "
    "Choose a darker or a lighter colour."
)
SECRET_TEXT = (
    "The webhook secret is whsec_ and 24 to 64 bytes in base64; "
    "leave the field empty to keep the current secret."
)


def _label_of(loc: tuple[Any, ...]) -> str:
    if len(loc) >= 2 and loc[0] in GROUPS:
        return dict(GROUPS[str(loc[0])]).get(str(loc[1]), str(loc[1]))
    return str(loc[0]) if loc else ""


def _messages(e: ValidationError) -> list[tuple[str, dict[str, Any]]]:
    """Readable messages (msgid, values) of the admin models' errors, each field once."""
    out: list[tuple[str, dict[str, Any]]] = []
    for err in e.errors():
        loc = tuple(str(x) for x in err["loc"])
        msg = MESSAGES.get(loc[:2]) or MESSAGES.get(loc[:1])
        item = (
            (msg, {})
            if msg
            else (
                "{field}: at most 200 characters (1000 for the address), no control characters.",
                {"field": _label_of(loc)},
            )
        )
        if item not in out:
            out.append(item)
    return out


def _text(form: FormData, name: str) -> str:
    return str(form.get(name) or "").strip()


def values_of(b: Biller | None) -> dict[str, Any]:
    """The form's fields for a biller (empty for a new one); never the webhook secret."""
    if b is None:
        return {
            "code": "",
            "name": "",
            "enabled": True,
            "methods": ["card", "bank_transfer"],
            "reminder_days": "-3, 0, 7, 14",
            "timezone": "UTC",
            "fee_amount": "0.00",
            "fee_currency": "EUR",
            "webhook_url": "",
            "webhook_enabled": True,
            "has_secret": False,
        }
    f: dict[str, Any] = {
        "code": b.code,
        "name": b.name,
        "enabled": b.enabled,
        "methods": list(b.methods or []),
        "reminder_days": ", ".join(str(d) for d in b.reminder_days or []),
        "timezone": b.timezone,
        "fee_amount": format_amount(b.fee_amount, b.fee_currency),
        "fee_currency": b.fee_currency,
        "webhook_url": b.webhook_url or "",
        "webhook_enabled": b.webhook_enabled,
        "has_secret": bool(b.webhook_secret),
    }
    for group, fields in GROUPS.items():
        data = getattr(b, group) or {}
        for key, _ in fields:
            f[f"{group}_{key}"] = str(data.get(key) or "")
    return f


def _submitted(form: FormData, *, new: bool) -> dict[str, Any]:
    f: dict[str, Any] = {
        "code": _text(form, "code") if new else "",
        "name": " ".join(_text(form, "name").split()),
        "enabled": form.get("enabled") == "1",
        "methods": [str(m) for m in form.getlist("methods")],
        "reminder_days": _text(form, "reminder_days"),
        "timezone": _text(form, "timezone"),
        "fee_amount": _text(form, "fee_amount"),
        "fee_currency": _text(form, "fee_currency").upper(),
        "webhook_url": _text(form, "webhook_url"),
        "webhook_enabled": form.get("webhook_enabled") == "1",
    }
    for group, fields in GROUPS.items():
        for key, _ in fields:
            value = str(form.get(f"{group}_{key}") or "")
            value = "".join(value.split()).upper() if key in CODES else " ".join(value.split())
            if group == "brand" and key.endswith("_color"):
                value = value.lower()
            f[f"{group}_{key}"] = value
    return f


def _iban_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _secret_ok(secret: str) -> bool:
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return False
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(raw) <= 64


def check(
    f: dict[str, Any], secret: str, *, new: bool
) -> tuple[BillerPatch | None, list[tuple[str, dict[str, Any]]]]:
    """The admin API's body of the form's fields, or what is wrong with them."""
    problems: list[tuple[str, dict[str, Any]]] = []
    body: dict[str, Any] = {
        "name": f["name"],
        "enabled": f["enabled"],
        "methods": f["methods"],
        "timezone": f["timezone"],
        "webhook_url": f["webhook_url"] or None,
        "webhook_enabled": f["webhook_enabled"],
        "fee": {"amount": f["fee_amount"] or "0", "currency": f["fee_currency"] or "EUR"},
    }
    if new:
        body["code"] = f["code"]
        if f["code"] in RESERVED:
            problems.append(("The code {code} is reserved; choose another.", {"code": f["code"]}))
    for group, fields in GROUPS.items():
        body[group] = {key: f[f"{group}_{key}"] or None for key, _ in fields}
    days: list[int] = []
    for part in f["reminder_days"].replace(";", ",").split(","):
        part = part.strip().replace("\u2212", "-")
        if not part:
            continue
        if not re.fullmatch(r"[+-]?[0-9]{1,3}", part):
            problems.append(
                (
                    DAYS_TEXT,
                    {},
                )
            )
            break
        days.append(int(part))
    body["reminder_days"] = days
    if not f["methods"]:
        problems.append(("Choose at least one method.", {}))
    if f["timezone"] not in timezones():
        problems.append((MESSAGES[("timezone",)], {}))
    try:
        currency = check_currency(body["fee"]["currency"])
        parse_amount(body["fee"]["amount"], currency, allow_zero=True)
    except MoneyError:
        problems.append((MESSAGES[("fee",)], {}))
    email, phone = f["support_email"], f["support_phone"]
    if email and not EMAIL.match(email):
        problems.append(("The support e-mail is not an e-mail address.", {}))
    if phone and not PHONE.match(phone):
        problems.append(("The support phone is in international form, such as +37322100200.", {}))
    logo = f["brand_logo_url"]
    if logo and not logo.startswith("https://"):
        problems.append((MESSAGES[("brand", "logo_url")], {}))
    iban = f["account_iban"]
    if iban and re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", iban) and not _iban_ok(iban):
        problems.append(("The IBAN's check digits are wrong: look for a mistyped character.", {}))
    primary = f["brand_primary_color"]
    if re.fullmatch(r"#[0-9a-f]{6}", primary):
        best = max(contrast_ratio(fg, primary) for fg in ("#ffffff", "#1a1a1a"))
        if best < AA_NORMAL_TEXT:
            problems.append(
                (
                    CONTRAST_TEXT,
                    {"ratio": f"{best:.2f}"},
                )
            )
    if secret and not _secret_ok(secret):
        problems.append(
            (
                SECRET_TEXT,
                {},
            )
        )
    if secret and not f["webhook_url"]:
        problems.append(("A webhook secret needs a webhook URL.", {}))
    try:
        model = (BillerIn if new else BillerPatch).model_validate(body)
    except ValidationError as e:
        for item in _messages(e):
            if item not in problems:
                problems.append(item)
        return None, problems
    return model, problems


def _form_page(
    request: Request, f: dict[str, Any], *, new: bool, errors: list[str], status: int = 200
) -> Response:
    return render(
        request,
        "invoices/biller_form.html",
        status_code=status,
        f=f,
        new=new,
        errors=errors,
        groups=GROUPS,
        methods=method_order(method_names()),
        timezones=timezones(),
        mask=MASK,
    )


def _words(request: Request, problems: list[tuple[str, dict[str, Any]]]) -> list[str]:
    t = translator(language_of(request))
    return [t(msg, **values) for msg, values in problems]


async def _save(request: Request, session: AsyncSession, me: Principal, b: Biller | None) -> Response:
    form = await request.form()
    new = b is None
    f = _submitted(form, new=new)
    f["has_secret"] = bool(b is not None and b.webhook_secret)
    secret = "".join(str(form.get("webhook_secret") or "").split())
    model, problems = check(f, secret, new=new)
    if b is None and model is not None and not problems:
        code = f["code"]
        if await session.scalar(select(Biller.id).where(Biller.code == code)) is not None:
            problems.append(("A biller with the code {code} exists.", {"code": code}))
    if model is None or problems:
        return _form_page(request, f, new=new, errors=_words(request, problems), status=422)
    before = billers_api.audit_view(b) if b is not None else None
    if b is None:
        now = utcnow()
        b = Biller(
            code=f["code"],
            name=f["name"],
            brand={},
            legal={},
            support={},
            methods=[],
            account={},
            reminder_days=[],
            timezone="UTC",
            fee_amount=0,
            fee_currency="EUR",
            webhook_enabled=True,
            enabled=True,
            created_at=now,
        )
    if secret:
        b.webhook_secret = seal(secret, NotificationSettings())
    try:
        made = billers_api.apply_patch(b, model)
    except Problem as e:  # pragma: no cover - the fee was checked above
        await session.rollback()
        return _form_page(request, f, new=new, errors=[e.detail or e.title], status=422)
    if new:
        session.add(b)
        await session.flush()
    action = "biller.create" if new else "biller.update"
    after = billers_api.audit_view(b)
    if secret:
        after["webhook_secret_changed"] = True
    await audit.record(session, me, action, f"biller:{b.code}", before, after)
    await session.commit()
    if made:  # the first webhook URL: its secret, shown this once
        return render(request, "invoices/biller_secret.html", b=b, secret=made)
    return redirect(f"/backoffice/billers/{b.code}", "The biller is saved.")


@router.get("/billers/new")
async def biller_new(request: Request, _: ReadingWriter) -> Response:
    return _form_page(request, values_of(None), new=True, errors=[])


@router.post("/billers/new")
async def biller_create(request: Request, session: DbDep, me: Writer) -> Response:
    return await _save(request, session, me, None)


async def _biller(session: AsyncSession, code: str) -> Biller:
    if not CODE.match(code):
        raise PageNotFound()
    b: Biller | None = await session.scalar(select(Biller).where(Biller.code == code))
    if b is None:
        raise PageNotFound()
    return b


@router.get("/billers/{code}/edit")
async def biller_edit(request: Request, code: str, session: ReadDbDep, _: ReadingWriter) -> Response:
    return _form_page(request, values_of(await _biller(session, code)), new=False, errors=[])


@router.post("/billers/{code}/edit")
async def biller_update(request: Request, code: str, session: DbDep, me: Writer) -> Response:
    b = await _biller(session, code)
    again = await locked(session, Biller, b.id)
    assert again is not None
    return await _save(request, session, me, again)
