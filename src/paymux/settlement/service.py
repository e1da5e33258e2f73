"""Settlement use cases shared by the admin API and the back office (services never commit)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import offload
from paymux.catalog.snapshot import ProviderView, Snapshot
from paymux.db.base import utcnow
from paymux.errors import invalid, not_found
from paymux.ledger.topups import record_topup
from paymux.masking import MaskedSecretError, keep_secrets, mask_secrets
from paymux.money import MoneyError, check_currency, format_amount, parse_amount
from paymux.runtime import Hub
from paymux.settlement import orders as order_service
from paymux.settlement.models import (
    BalanceAlertRule,
    BankStatement,
    PaymentOrder,
    SettlementDetails,
    StatementLine,
)
from paymux.settlement.statements import Line, Parsed, StatementError, parse

DETAIL_FIELDS = ("beneficiary", "iban", "bic", "bank_name", "account", "bik", "corr_account", "inn", "kpp")
_DIGITS = {"account": 20, "bik": 9, "corr_account": 20, "kpp": 9}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def provider_or_404(snap: Snapshot, code: str, settlement: str | None = None) -> ProviderView:
    p = snap.providers_by_code.get(code)
    if p is None:
        raise not_found(f"provider {code!r}")
    if settlement is not None and p.settlement != settlement:
        raise invalid(f"not-{settlement}", f"provider {code} is {p.settlement}, not {settlement}")
    return p


def norm(value: str | None) -> str:
    return re.sub(r"\s+", "", value or "").upper()


# --- settlement details -------------------------------------------------------------------------------------


def details_out(d: SettlementDetails | None) -> dict[str, Any]:
    out: dict[str, Any] = {k: (getattr(d, k) if d else None) or "" for k in DETAIL_FIELDS}
    out["withhold_remuneration"] = True if d is None else d.withhold_remuneration
    out["purpose"] = d.purpose if d else ""
    return out


def check_details(values: dict[str, Any]) -> dict[str, Any]:
    """Bank details cleaned (spaces removed, upper case) and checked; a 422 problem names what is wrong."""
    clean: dict[str, Any] = {}
    for k in DETAIL_FIELDS:
        v = values.get(k)
        text = " ".join(str(v).split()) if v is not None else ""
        if k in ("iban", "bic", "account", "bik", "corr_account", "inn", "kpp"):
            text = norm(text)
        clean[k] = text
    if clean["iban"] and not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", clean["iban"]):
        raise invalid("invalid-iban", "IBAN: two letters, two check digits, then 11 to 30 letters or digits")
    if clean["iban"]:
        rearranged = clean["iban"][4:] + clean["iban"][:4]
        if int("".join(str(int(c, 36)) for c in rearranged)) % 97 != 1:
            raise invalid("invalid-iban", f"IBAN {clean['iban']}: the check digits are wrong")
    if clean["bic"] and not re.fullmatch(r"[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?", clean["bic"]):
        raise invalid("invalid-bic", "BIC: 8 or 11 letters and digits")
    for k, n in _DIGITS.items():
        if clean[k] and not re.fullmatch(rf"[0-9]{{{n}}}", clean[k]):
            raise invalid(f"invalid-{k.replace('_', '-')}", f"{k}: {n} digits")
    if clean["inn"] and not re.fullmatch(r"[0-9]{10}|[0-9]{12}", clean["inn"]):
        raise invalid("invalid-inn", "INN: 10 or 12 digits")
    for k, limit in (("beneficiary", 200), ("bank_name", 200)):
        if len(clean[k]) > limit:
            raise invalid("too-long", f"{k}: at most {limit} characters")
    purpose = " ".join(str(values.get("purpose") or "").split())
    if len(purpose) > 150:
        raise invalid("too-long", "purpose: at most 150 characters")
    clean["purpose"] = purpose
    clean["withhold_remuneration"] = bool(values.get("withhold_remuneration", True))
    return clean


async def set_details(
    session: AsyncSession, provider: ProviderView, values: dict[str, Any], actor: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replace a provider's settlement details; returns (before, after) for the audit log."""
    return await write_details(session, provider.id, values, actor)


async def write_details(
    session: AsyncSession, provider_id: int, values: dict[str, Any], actor: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    clean = check_details(values)
    row = await session.get(SettlementDetails, provider_id)
    before = details_out(row)
    if row is None:
        row = SettlementDetails(provider_id=provider_id)
        session.add(row)
    for k in DETAIL_FIELDS:
        setattr(row, k, clean[k] or (None if k != "beneficiary" else ""))
    row.purpose = clean["purpose"]
    row.withhold_remuneration = clean["withhold_remuneration"]
    row.updated_by = actor
    row.updated_at = utcnow()
    await session.flush()
    return before, details_out(row)


# --- low-balance alert rules -------------------------------------------------------------------------------


def rule_out(r: BalanceAlertRule | None, currency: str) -> dict[str, Any]:
    """An alert rule as every read shows it: the webhook's secret (and a password in its URL) masked."""
    if r is None:
        return {"currency": currency, "configured": False}
    out: dict[str, Any] = {
        "currency": r.currency,
        "configured": True,
        "threshold": format_amount(r.threshold, r.currency),
        "threshold_minor": r.threshold,
        "emails": list(r.emails or []),
        "webhook_url": r.webhook_url or "",
        "webhook_secret": r.webhook_secret or "",
        "enabled": r.enabled,
        "armed": r.armed,
    }
    masked: dict[str, Any] = mask_secrets(out)
    return masked


async def set_rule(
    session: AsyncSession,
    provider: ProviderView,
    *,
    currency: str,
    threshold: str,
    emails: list[str],
    webhook_url: str,
    webhook_secret: str | None,
    enabled: bool,
    actor: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create or replace a deposit's alert rule. ``webhook_secret`` None or ``***`` keeps the stored one."""
    if provider.settlement != "prepaid":
        raise invalid("not-prepaid", f"provider {provider.code} is postpaid: it has no deposit to watch")
    try:
        check_currency(currency)
        minor = parse_amount(threshold, currency, allow_zero=True)
    except MoneyError as e:
        raise invalid("invalid-amount", f"threshold: {e}") from None
    emails = [e.strip() for e in emails if e.strip()]
    bad = [e for e in emails if not _EMAIL.match(e)]
    if bad:
        raise invalid("invalid-email", f"not e-mail addresses: {', '.join(bad)}")
    webhook_url = webhook_url.strip()
    if webhook_url and not re.match(r"^https?://[^\s/]+", webhook_url):
        raise invalid("invalid-url", "the webhook must be an http:// or https:// URL")
    if enabled and not emails and not webhook_url:
        raise invalid("no-destination", "give at least one e-mail address or a webhook URL")
    row = await session.scalar(
        select(BalanceAlertRule).where(
            BalanceAlertRule.provider_id == provider.id, BalanceAlertRule.currency == currency
        )
    )
    before = rule_out(row, currency)
    stored = {
        "webhook_url": row.webhook_url if row else None,
        "webhook_secret": row.webhook_secret if row else None,
    }
    try:  # a URL or secret sent back as a read showed it (***) keeps the stored one
        webhook_url = keep_secrets({"webhook_url": webhook_url}, stored)["webhook_url"]
        if webhook_secret is not None:
            webhook_secret = keep_secrets({"webhook_secret": webhook_secret}, stored)["webhook_secret"]
    except MaskedSecretError as e:
        raise invalid("masked-secret", str(e)) from None
    if row is None:
        row = BalanceAlertRule(provider_id=provider.id, currency=currency, armed=True)
        session.add(row)
    elif row.threshold != minor or (enabled and not row.enabled):
        row.armed = True  # a new line to cross: the next check compares afresh
    row.threshold = minor
    row.emails = emails
    row.webhook_url = webhook_url or None
    if webhook_secret is not None:
        row.webhook_secret = webhook_secret or None
    row.enabled = enabled
    row.updated_by = actor
    row.updated_at = utcnow()
    await session.flush()
    return before, rule_out(row, currency)


# --- bank statements ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class ImportResult:
    statement: BankStatement
    new: list[StatementLine] = field(default_factory=list)
    repeated: int = 0
    orders_paid: list[str] = field(default_factory=list)
    topups: list[str] = field(default_factory=list)


async def _payee_index(session: AsyncSession, snap: Snapshot) -> dict[str, list[tuple[ProviderView, str]]]:
    """Account numbers, IBANs and INNs of prepaid providers -> the providers."""
    index: dict[str, list[tuple[ProviderView, str]]] = {}
    for d in (await session.scalars(select(SettlementDetails))).all():
        p = snap.providers.get(d.provider_id)
        if p is None or p.settlement != "prepaid":
            continue
        for key in (norm(d.iban), norm(d.account)):
            if key:
                index.setdefault(f"acct:{key}", []).append((p, key))
        if d.inn:
            index.setdefault(f"inn:{d.inn}", []).append((p, d.inn))
    return index


def _same_counterparty(line: Line | StatementLine, payee: dict[str, Any]) -> bool:
    accounts = {norm(payee.get("iban")), norm(payee.get("account"))} - {""}
    if norm(line.counterparty_account) in accounts:
        return True
    inn = norm(payee.get("inn"))
    return bool(inn) and norm(line.counterparty_inn) == inn


def _names_order(line: StatementLine, order: PaymentOrder) -> bool:
    text = f"{line.reference} {line.purpose}".upper()
    return order.number.upper() in text or line.reference.strip() == str(order.id)


async def _match(
    hub: Hub,
    session: AsyncSession,
    snap: Snapshot,
    line: StatementLine,
    payees: dict[str, Any],
    actor: str,
    result: ImportResult,
) -> None:
    if line.direction != "debit":
        return
    # locked as read (paymux.db.concurrent): an order marked paid by hand at this moment is not a
    # candidate once that commits, instead of failing the whole import when it is marked here
    candidates = (
        await session.scalars(
            select(PaymentOrder)
            .where(
                PaymentOrder.status == "approved",
                PaymentOrder.amount == line.amount,
                PaymentOrder.currency == line.currency,
            )
            .order_by(PaymentOrder.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    for order in candidates:
        if _names_order(line, order) and _same_counterparty(line, order.payee or {}):
            paid = await order_service.mark_paid(
                session,
                hub.accounts,
                order.id,
                "statement",
                statement_line_id=line.id,
                at=utcnow(),
            )
            line.status, line.order_id, line.provider_id, line.entry_id = (
                "order",
                paid.id,
                paid.provider_id,
                paid.entry_id,
            )
            result.orders_paid.append(paid.number)
            return
    found = payees.get(f"acct:{norm(line.counterparty_account)}") or (
        payees.get(f"inn:{norm(line.counterparty_inn)}") if line.counterparty_inn else None
    )
    if found and len({p.id for p, _ in found}) == 1:
        provider = found[0][0]
        topup, _ = await record_topup(
            hub, session, provider.code, line.currency, line.amount, reference=line.uid[:100], actor=actor
        )
        line.status, line.provider_id, line.entry_id = "topup", provider.id, topup.entry_id
        result.topups.append(provider.code)


def _parsed_and_digest(data: bytes) -> tuple[Parsed, str]:
    return parse(data), hashlib.sha256(data).hexdigest()


async def import_statement(
    hub: Hub, session: AsyncSession, data: bytes, *, file_name: str, actor: str
) -> ImportResult:
    """Parse a statement, store its new lines (a line seen before is skipped), match and post them.

    The file is parsed and hashed in a thread: a large one would hold up the event loop."""
    try:
        parsed, sha256 = await offload.in_thread(_parsed_and_digest, data)
    except StatementError as e:
        raise invalid("invalid-statement", str(e)) from None
    snap = await hub.catalog.get()
    statement = BankStatement(
        format=parsed.format,
        file_name=file_name[:255],
        sha256=sha256,
        account=parsed.account[:34],
        lines=len(parsed.lines),
        new_lines=0,
        matched=0,
        imported_by=actor,
        created_at=utcnow(),
    )
    session.add(statement)
    await session.flush()
    result = ImportResult(statement)
    uids = [ln.uid for ln in parsed.lines]
    known = (
        set((await session.scalars(select(StatementLine.uid).where(StatementLine.uid.in_(uids)))).all())
        if uids
        else set()
    )
    payees = await _payee_index(session, snap)
    seen: set[str] = set()
    for ln in parsed.lines:
        if ln.uid in known or ln.uid in seen:
            result.repeated += 1
            continue
        seen.add(ln.uid)
        row = StatementLine(
            statement_id=statement.id,
            uid=ln.uid,
            direction=ln.direction,
            amount=ln.amount,
            currency=ln.currency,
            booked_on=ln.booked_on,
            counterparty=ln.counterparty,
            counterparty_account=ln.counterparty_account,
            counterparty_bank=ln.counterparty_bank,
            counterparty_inn=ln.counterparty_inn,
            reference=ln.reference,
            purpose=ln.purpose,
            status="unmatched",
            created_at=utcnow(),
        )
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
                await _match(hub, session, snap, row, payees, actor, result)
                await session.flush()
        except IntegrityError:  # the same line imported at this very moment by another import
            result.repeated += 1
            continue
        result.new.append(row)
    statement.new_lines = len(result.new)
    statement.matched = len(result.orders_paid) + len(result.topups)
    await session.flush()
    return result


async def statement_lines(
    session: AsyncSession, statement_id: int
) -> tuple[BankStatement, list[StatementLine]]:
    st = await session.get(BankStatement, statement_id)
    if st is None:
        raise not_found(f"bank statement {statement_id}")
    lines = (
        await session.scalars(
            select(StatementLine).where(StatementLine.statement_id == statement_id).order_by(StatementLine.id)
        )
    ).all()
    return st, list(lines)


def parse_day(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid("invalid-date", f"{name}: a date YYYY-MM-DD") from None


# --- payment order files ----------------------------------------------------------------------------------

EXPORT_FORMATS = ("pain001", "1c")


async def export_orders(
    session: AsyncSession,
    ids: list[int],
    fmt: str,
    *,
    tz: ZoneInfo,
    execution_date: dt.date | None = None,
) -> tuple[bytes, str, str, list[PaymentOrder]]:
    """The file (bytes, name, content type) with the approved orders ``ids``; marks them exported.

    Its dates and times are of the business timezone ``tz`` (``PAYMUX_BUSINESS_TIMEZONE``). Without
    our own bank details (``PAYMUX_SETTLEMENT_DEBTOR_*``) or a payee's account it is a 409 naming them,
    and nothing is exported."""
    from paymux.settlement.exports import onec, pain001
    from paymux.settlement.exports.checks import check_export
    from paymux.settlement.settings import SettlementSettings

    if fmt not in EXPORT_FORMATS:
        raise invalid("invalid-format", f"format must be one of {', '.join(EXPORT_FORMATS)}")
    orders = await order_service.orders_for_export(session, ids)
    settings = SettlementSettings()
    check_export(settings, fmt, orders)
    now = utcnow().astimezone(tz)
    stamp = now.strftime("%Y%m%d%H%M%S")
    if fmt == "pain001":
        msg_id = f"PMX{stamp}-{orders[0].id}"
        data = pain001.build(
            orders, settings, message_id=msg_id, execution_date=execution_date or now.date(), created_at=now
        )
        name, ctype = f"pain001-{stamp}.xml", "application/xml"
    else:
        data = onec.build(orders, settings, created_at=now)
        name, ctype = f"1c-{stamp}.txt", "text/plain; charset=windows-1251"
    await order_service.mark_exported(session, orders)
    return data, name, ctype, orders
