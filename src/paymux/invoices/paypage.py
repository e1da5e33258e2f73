"""The hosted payment page (``/pay/{token}``), its elements, the payment methods' start and return
pages, and the processors' callbacks (``POST /api/v1/paymethods/{method}/callback``).

Public routes: the payment link's token is the credential (checked for its characters and length,
404 when unknown). Pages are server-rendered HTML that work without JavaScript; the result page
refreshes itself (``<meta http-equiv="refresh">``) while the payment is pending.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from types import ModuleType
from typing import Annotated, Any, Literal

import jinja2
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy import update

from paymux.api.deps import HubDep
from paymux.auth.proxy import client_ip, proxy_settings
from paymux.db.base import utcnow
from paymux.errors import Problem, invalid, not_found
from paymux.invoices import attempts
from paymux.invoices.elements import ElementError
from paymux.invoices.elements import badge as badge_el
from paymux.invoices.elements import button as button_el
from paymux.invoices.elements.colour import contrast_ratio, parse_hex
from paymux.invoices.method_config import effective
from paymux.invoices.methods.base import (
    CallbackRejected,
    MethodError,
    PayMethod,
    UnknownMethod,
    method_class,
    method_name,
    method_order,
)
from paymux.invoices.methods.transfer import ACCOUNT_FIELDS, instructions
from paymux.invoices.models import Biller, Invoice, InvoiceAttempt
from paymux.invoices.pagetext import LANGUAGE_NAMES, LANGUAGES, TEXT, language
from paymux.invoices.reminders import local_day, request_reminder
from paymux.money import format_amount
from paymux.runtime import Hub

log = logging.getLogger(__name__)


def _qr() -> ModuleType:
    """The QR code module, imported when a code is drawn: the server does not hold segno idle."""
    from paymux.invoices.elements import qr

    return qr


router = APIRouter(tags=["payment page"])

DEFAULT_PRIMARY = "#0b5cad"
REFRESH_SECONDS = 3
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' https: data:; style-src 'unsafe-inline'; "
    "form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("paymux.invoices", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

Lang = Annotated[str | None, Query(max_length=8, description="en, ru or ro (else the payer's language)")]
Kind = Annotated[Literal["link", "epc", "gost"], Query(description="link, epc (EUR) or gost (RUB)")]


# --- helpers -------------------------------------------------------------------------------------------
def public_base(hub: Hub, request: Request) -> str:
    return (hub.settings.public_url or str(request.base_url)).rstrip("/")


def money(minor: int, currency: str, lang: str) -> str:
    text = format_amount(minor, currency)
    return text.replace(".", ",") if lang in ("ru", "ro") else text


def date_text(d: dt.date, lang: str) -> str:
    return d.isoformat() if lang == "en" else d.strftime("%d.%m.%Y")


def brand_colours(biller: Biller) -> tuple[str, str]:
    """(primary, text on it): the biller's primary colour when a text colour meets WCAG AA on it."""
    try:
        primary = parse_hex(str((biller.brand or {}).get("primary_color") or DEFAULT_PRIMARY))
    except ElementError:
        primary = DEFAULT_PRIMARY
    for fg in ("#ffffff", "#1a1a1a"):
        if contrast_ratio(fg, primary) >= 4.5:
            return primary, fg
    return DEFAULT_PRIMARY, "#ffffff"


def _logo(biller: Biller) -> str | None:
    url = (biller.brand or {}).get("logo_url")
    if (
        isinstance(url, str)
        and url.startswith("https://")
        and len(url) <= 2000
        and not any(c.isspace() for c in url)
    ):
        return url
    return None


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _not_found_page(request: Request, lang: str = "en") -> Response:
    if "text/html" not in request.headers.get("accept", ""):
        raise not_found("payment link")
    t = TEXT[lang]
    page = _env.get_template("pay_missing.html").render(t=t, lang=lang)
    return _html(page, 404)


def plugin(hub: Hub, biller: Biller | None, name: str) -> PayMethod:
    """The method's plug-in for ``biller``'s invoices: the hub's settings of the method with the
    biller's own on top (:mod:`paymux.invoices.method_config`)."""
    cls = method_class(name)
    config = hub.settings.paymethods.get(cls.name) or hub.settings.paymethods.get(name) or {}
    own = (biller.method_config or {}).get(cls.name) if biller is not None else None
    return cls(effective(config, own), hub.http, biller)


async def _load(hub: Hub, token: str) -> tuple[Invoice, Biller] | None:
    async with hub.read_sessions() as session:
        found = await attempts.invoice_for_token(session, token)
        if found is not None:
            session.expunge_all()
    return found


def _transfer_view(biller: Biller, inv: Invoice, token: str) -> dict[str, Any]:
    view = instructions(biller, inv)
    kind = view["qr"]
    if kind is not None:
        try:
            _bank_qr(biller, inv, kind)
        except ElementError:
            kind = None
    return {
        "account": [(k, view["account"][k]) for k in ACCOUNT_FIELDS if k in view["account"]],
        "reference": view["reference"],
        "qr_url": f"/pay/{token}/qr.svg?kind={kind}" if kind else None,
    }


def _offered(biller: Biller) -> list[str]:
    """The biller's methods a plug-in is installed for, built-in ones first."""
    offered: list[str] = []
    for name in method_order(list(biller.methods or [])):
        try:
            method_class(name)
        except UnknownMethod:
            continue
        offered.append(name)
    return offered


def _with_plugin_labels(texts: dict[str, str], methods: list[str], lang: str) -> dict[str, str]:
    """The page's texts plus the title and note of each plug-in method shown (its ``labels``)."""
    missing = [m for m in methods if f"method_{m}" not in texts]
    if not missing:
        return texts
    merged = dict(texts)
    for m in missing:
        labels = method_class(m).labels
        title, note = labels.get(lang) or labels.get("en") or (m.replace("_", " ").capitalize(), "")
        merged[f"method_{m}"], merged[f"method_{m}_note"] = title, note
    return merged


def _context(
    hub: Hub, request: Request, inv: Invoice, biller: Biller, lang: str, token: str
) -> dict[str, Any]:
    primary, on_primary = brand_colours(biller)
    due = inv.amount - inv.paid_amount
    offered = _offered(biller)
    methods = offered if attempts.payable(inv) else []
    t = _with_plugin_labels(TEXT[lang], offered, lang)
    lines = [
        {
            "description": str(x.get("description", "")),
            "quantity": int(x.get("quantity", 1)),
            "price": money(int(x["amount"]), inv.currency, lang),
            "total": money(int(x["amount"]) * int(x.get("quantity", 1)), inv.currency, lang),
        }
        for x in (inv.lines or [])
    ]
    support = {k: str(v) for k, v in (biller.support or {}).items() if k in ("email", "phone", "url") and v}
    if "url" in support and not support["url"].startswith(("https://", "http://")):
        del support["url"]
    return {
        "t": t,
        "lang": lang,
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "token": token,
        "biller": {"name": biller.name, "logo": _logo(biller), "support": support},
        "primary": primary,
        "on_primary": on_primary,
        "inv": {
            "number": inv.number,
            "amount": money(inv.amount, inv.currency, lang),
            "paid": money(inv.paid_amount, inv.currency, lang) if inv.paid_amount else None,
            "due": money(due, inv.currency, lang),
            "currency": inv.currency,
            "due_date": date_text(inv.due_date, lang),
            "due_iso": inv.due_date.isoformat(),
            "description": inv.description,
            "lines": lines,
            "reference": inv.reference,
            "status": inv.status,
            "status_name": badge_el.STATUS_NAMES[lang].get(inv.status, inv.status),
        },
        "payable": attempts.payable(inv),
        "methods": methods,
        "transfer": _transfer_view(biller, inv, token) if "bank_transfer" in methods else None,
        "error": None,
        "today": local_day(biller, utcnow()).isoformat(),
        "reminded": None,
    }


def _bank_qr(biller: Biller, inv: Invoice, kind: str) -> Any:
    acc = biller.account or {}
    due = inv.amount - inv.paid_amount
    if kind == "epc":
        if inv.currency != "EUR":
            raise ElementError("kind", "the EPC QR is for invoices in EUR")
        return _qr().epc_qr(
            name=str(acc.get("holder") or biller.name)[:70],
            iban=str(acc.get("iban") or ""),
            bic=str(acc.get("bic") or "") or None,
            amount_minor=due if due > 0 else None,
            reference=inv.reference,
        )
    if inv.currency != "RUB":
        raise ElementError("kind", "the GOST QR is for invoices in RUB")
    return _qr().gost_qr(
        name=str(acc.get("holder") or biller.name),
        personal_acc=str(acc.get("account_number") or ""),
        bank_name=str(acc.get("bank_name") or ""),
        bic=str(acc.get("bik") or acc.get("bic") or ""),
        corresp_acc=str(acc.get("correspondent_account") or ""),
        sum_minor=due if due > 0 else None,
        purpose=f"Оплата счёта {inv.number}, {inv.reference}"[:210],
        payee_inn=str(acc["inn"]) if acc.get("inn") else None,
        kpp=str(acc["kpp"]) if acc.get("kpp") else None,
    )


def _element(request: Request, body: bytes, media_type: str, max_age: int) -> Response:
    tag = badge_el.etag(body)
    headers = {
        "ETag": tag,
        "Cache-Control": f"public, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
    }
    if tag in [x.strip() for x in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def _element_invoice(hub: Hub, token: str) -> tuple[Invoice, Biller]:
    found = await _load(hub, token)
    if found is None:
        raise not_found("payment link")
    return found


def _refused(e: ElementError) -> Problem:
    return invalid("invalid-element", e.message, field=e.field)


# --- the page ------------------------------------------------------------------------------------------
@router.get("/pay/{token}", response_class=HTMLResponse, summary="The hosted payment page")
async def pay_page(token: str, request: Request, hub: HubDep, lang: Lang = None) -> Response:
    """The invoice with the biller's brand and the methods the biller accepts (none once the invoice
    is paid or cancelled: its status is shown)."""
    found = await _load(hub, token)
    if found is None:
        return _not_found_page(request, language(lang, "en"))
    inv, biller = found
    if inv.first_viewed_at is None:
        await _first_view(hub, inv.id)
    chosen = language(lang, inv.payer_language)
    ctx = _context(hub, request, inv, biller, chosen, token)
    asked = request.query_params.get("reminded", "")
    if len(asked) == 10:
        with contextlib.suppress(ValueError):
            ctx["reminded"] = date_text(dt.date.fromisoformat(asked), chosen)
    page = _env.get_template("pay.html").render(**ctx)
    return _html(page)


async def _first_view(hub: Hub, invoice_id: int) -> None:
    """Note when the payer first opened the page (the invoice's timeline); later views write nothing."""
    async with hub.sessions() as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id, Invoice.first_viewed_at.is_(None))
            .values(first_viewed_at=utcnow())
        )
        await session.commit()


@router.post("/pay/{token}/remind", summary="The payer asks to be reminded on a date (303 back to the page)")
async def remind_me(token: str, request: Request, hub: HubDep, lang: Lang = None) -> Response:
    """A form of the page: ``day`` (YYYY-MM-DD, today or later in the biller's calendar, at most a year
    ahead). The reminder goes by e-mail and SMS to the invoice's payer on that day; asking again for the
    same day changes nothing."""
    found = await _load(hub, token)
    if found is None:
        return _not_found_page(request, language(lang, "en"))
    inv, biller = found
    chosen = language(lang, inv.payer_language)
    form = await request.form()
    raw = form.get("day")
    try:
        day = dt.date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        day = None
    try:
        if day is None:
            raise invalid("invalid-reminder-date", "day must be a date like 2030-01-31")
        async with hub.sessions() as session:
            row = await session.get(Invoice, inv.id)
            assert row is not None
            await request_reminder(session, row, day)
            await session.commit()
    except Problem as e:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        ctx = _context(hub, request, inv, biller, chosen, token)
        ctx["error"] = e.detail if isinstance(e.detail, str) else str(e)
        return _html(_env.get_template("pay.html").render(**ctx), e.status)
    return RedirectResponse(f"/pay/{token}?lang={chosen}&reminded={day.isoformat()}", status_code=303)


@router.get("/pay/{token}/qr.png", summary="QR code of the invoice (PNG)")
async def qr_png(token: str, request: Request, hub: HubDep, kind: Kind = "link") -> Response:
    """``link``: the payment link; ``epc``: EPC069-12 SEPA transfer (EUR); ``gost``: GOST R 56042 (RUB)."""
    inv, biller = await _element_invoice(hub, token)
    try:
        code = (
            _qr().link_qr(f"{public_base(hub, request)}/pay/{token}")
            if kind == "link"
            else _bank_qr(biller, inv, kind)
        )
        return _element(request, _qr().png(code, scale=6), "image/png", 300)
    except ElementError as e:
        raise _refused(e) from None


@router.get("/pay/{token}/qr.svg", summary="QR code of the invoice (SVG)")
async def qr_svg(
    token: str, request: Request, hub: HubDep, kind: Kind = "link", lang: Lang = None
) -> Response:
    inv, biller = await _element_invoice(hub, token)
    t = TEXT[language(lang, inv.payer_language)]
    try:
        if kind == "link":
            code = _qr().link_qr(f"{public_base(hub, request)}/pay/{token}")
            title = t["invoice_no"].format(number=inv.number)
        else:
            code = _bank_qr(biller, inv, kind)
            title = t["qr_transfer_alt"]
        return _element(request, _qr().svg(code, title=title[:200], scale=5), "image/svg+xml", 300)
    except ElementError as e:
        raise _refused(e) from None


@router.get("/pay/{token}/badge.svg", summary="Status badge of the invoice (SVG, with an ETag)")
async def badge_svg(token: str, request: Request, hub: HubDep, lang: Lang = None) -> Response:
    inv, _biller = await _element_invoice(hub, token)
    chosen = language(lang, inv.payer_language)
    try:
        body = badge_el.status_badge_svg(inv.status, TEXT[chosen]["badge_label"], language=chosen)
    except ElementError as e:
        raise _refused(e) from None
    return _element(request, body, "image/svg+xml", 60)


@router.get("/pay/{token}/button.html", summary="Pay button (HTML snippet; variant=email for e-mails)")
async def button_html(
    token: str,
    request: Request,
    hub: HubDep,
    lang: Lang = None,
    variant: Annotated[Literal["web", "email"], Query()] = "web",
) -> Response:
    inv, biller = await _element_invoice(hub, token)
    chosen = language(lang, inv.payer_language)
    primary, on_primary = brand_colours(biller)
    label = TEXT[chosen]["pay_by"].format(
        amount=money(max(inv.amount - inv.paid_amount, 0), inv.currency, chosen), currency=inv.currency
    )[:80]
    url = f"{public_base(hub, request)}/pay/{token}"
    make = button_el.pay_button_email_html if variant == "email" else button_el.pay_button_html
    try:
        body = make(url, label=label, colour=primary, text_colour=on_primary)
    except ElementError as e:
        raise _refused(e) from None
    return _element(request, body.encode(), "text/html; charset=utf-8", 60)


# --- methods -------------------------------------------------------------------------------------------
@router.post("/pay/{token}/methods/{method}", summary="Start paying by a method (303 to the processor)")
async def start_method(token: str, method: str, request: Request, hub: HubDep, lang: Lang = None) -> Response:
    found = await _load(hub, token)
    if found is None:
        return _not_found_page(request, language(lang, "en"))
    inv, biller = found
    chosen = language(lang, inv.payer_language)
    name = method_name(method) if len(method) <= 32 else ""
    if name not in (biller.methods or []):
        raise not_found(f"payment method {method[:32]}")
    if not attempts.payable(inv):
        return RedirectResponse(f"/pay/{token}?lang={chosen}", status_code=303)
    wait = hub.pay_starts.take(token, client_ip(request, proxy_settings(request.app)))
    if wait:
        log.info("payment link %s...: method start refused for %s s (rate limit)", token[:6], wait)
        ctx = _context(hub, request, inv, biller, chosen, token)
        ctx["error"] = TEXT[chosen]["too_many_starts"].format(minutes=max(1, -(-wait // 60)))
        page = _html(_env.get_template("pay.html").render(**ctx), 429)
        page.headers["Retry-After"] = str(wait)
        return page
    try:
        pm = plugin(hub, biller, name)
    except UnknownMethod:
        raise not_found(f"payment method {name}") from None
    async with hub.sessions() as session:
        attempt = await attempts.create(session, inv, name)
        await session.commit()
        session.expunge(attempt)
    base = public_base(hub, request)
    return_url = f"{base}/pay/{token}/return/{attempt.reference}?lang={chosen}"
    callback_url = f"{base}/api/v1/paymethods/{name}/callback"
    try:
        started = await pm.start(attempt, inv, return_url, callback_url)
    except MethodError as e:
        log.warning("payment attempt %s by %s not started: %s", attempt.reference, name, e)
        async with hub.sessions() as session:
            row = await attempts.by_reference(session, attempt.reference, lock=True)
            assert row is not None
            row.status, row.detail = "declined", f"not started: {e}"[:500]
            await session.commit()
        ctx = _context(hub, request, inv, biller, chosen, token)
        ctx["error"] = TEXT[chosen]["start_failed"]
        return _html(_env.get_template("pay.html").render(**ctx), 502)
    async with hub.sessions() as session:
        row = await attempts.by_reference(session, attempt.reference, lock=True)
        assert row is not None
        if row.status == "started":
            row.status = started.status
        if started.processor_ref and not row.processor_ref:
            row.processor_ref = started.processor_ref[:200]
        await session.commit()
    if started.redirect_url:
        return RedirectResponse(started.redirect_url, status_code=303)
    return RedirectResponse(return_url, status_code=303)


async def _poll(hub: Hub, attempt: InvoiceAttempt, biller: Biller) -> None:
    """Ask the processor about an attempt still open (its callback may be late) and apply it."""
    try:
        pm = plugin(hub, biller, attempt.method)
    except UnknownMethod:
        return
    event = None
    if pm.has_processor:
        try:
            event = await pm.status(attempt)
        except (MethodError, CallbackRejected) as e:
            log.info("status of attempt %s not read: %s", attempt.reference, e)
    async with hub.sessions() as session:
        row = await attempts.by_reference(session, attempt.reference, lock=True)
        if row is None:
            return
        if event is not None:
            await attempts.apply_event(session, row, event)
        attempts.expire_if_old(row, hub.settings.paymethod_attempt_minutes)
        await session.commit()


@router.get("/pay/{token}/return/{attempt}", response_class=HTMLResponse, summary="Result of an attempt")
async def return_page(token: str, attempt: str, request: Request, hub: HubDep, lang: Lang = None) -> Response:
    """Where the processor sends the payer back: the attempt's status at once; while it is pending
    the page refreshes itself and asks the processor (the callback may be late)."""
    found = await _load(hub, token)
    row = None
    if found is not None:
        async with hub.read_sessions() as session:
            row = await attempts.by_reference(session, attempt)
            if row is not None:
                session.expunge(row)
    if found is None or row is None or row.invoice_id != found[0].id:
        return _not_found_page(request, language(lang, "en"))
    inv, biller = found
    if row.status in ("started", "pending"):
        await _poll(hub, row, biller)
        again = await _load(hub, token)
        async with hub.read_sessions() as session:
            fresh = await attempts.by_reference(session, attempt)
            assert fresh is not None
            session.expunge(fresh)
        row = fresh
        if again is not None:
            inv, biller = again
    chosen = language(lang, inv.payer_language)
    ctx = _context(hub, request, inv, biller, chosen, token)
    is_transfer = row.method == "bank_transfer"
    ctx.update(
        attempt={
            "status": row.status,
            "method": row.method,
            "amount": money(row.amount, row.currency, chosen),
            "currency": row.currency,
        },
        transfer=_transfer_view(biller, inv, token) if is_transfer else None,
        refresh=REFRESH_SECONDS if row.status in ("started", "pending") and not is_transfer else None,
        self_url=f"/pay/{token}/return/{attempt}?lang={chosen}",
    )
    return _html(_env.get_template("pay_result.html").render(**ctx))


# --- callbacks -----------------------------------------------------------------------------------------
async def _callback_biller(hub: Hub, pm: PayMethod, body: bytes) -> Biller | None:
    """The biller of the attempt a callback names (read before its signature is checked, to check it
    with the biller's own secret); None when the body names no known attempt of this method."""
    reference = pm.callback_reference(body)
    if reference is None:
        return None
    async with hub.read_sessions() as session:
        row = await attempts.by_reference(session, reference)
        if row is None or row.method != pm.name:
            return None
        inv = await session.get(Invoice, row.invoice_id)
        biller = await session.get(Biller, inv.biller_id) if inv is not None else None
        if biller is not None:
            session.expunge(biller)
    return biller


@router.post(
    "/api/v1/paymethods/{method}/callback",
    summary="A payment method processor's signed callback",
    tags=["payment methods"],
    responses={
        200: {"description": "applied (or applied before: the same answer)"},
        401: {"description": "the signature does not hold (problem+json); nothing is applied"},
        404: {"description": "unknown method or attempt (problem+json)"},
    },
)
async def callback(method: str, request: Request, hub: HubDep) -> JSONResponse:
    """The processor confirms (``approved``), declines or reports ``pending`` for one of our attempts
    (``reference``), signed with the method's secret (``Paymux-Signature``). Idempotent by the
    reference: a repeated or late confirmation never pays twice."""
    name = method_name(method) if len(method) <= 32 else ""
    try:
        pm = plugin(hub, None, name)
    except UnknownMethod:
        raise not_found(f"payment method {method[:32]}") from None
    body = await request.body()
    biller = await _callback_biller(hub, pm, body)
    if biller is not None:  # its own settings (its own secret) when it has them
        pm = plugin(hub, biller, name)
    try:
        event = pm.verify_callback(request.headers, body)
    except CallbackRejected as e:
        raise Problem(401, "invalid-signature", "Callback refused", str(e)) from None
    async with hub.sessions() as session:
        row = await attempts.by_reference(session, event.reference, lock=True)
        if row is None or row.method != pm.name:
            raise not_found(f"attempt {event.reference[:64]}")
        if event.currency is not None and event.currency != row.currency:
            log.warning(
                "attempt %s confirmed in %s, started in %s", row.reference, event.currency, row.currency
            )
        await attempts.apply_event(session, row, event)
        await session.commit()
        return JSONResponse({"reference": row.reference, "status": row.status})
