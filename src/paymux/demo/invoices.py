"""The demo's invoice collection: a biller (City Power) with its brand, legal details, support
contacts, methods (card, open banking, bank transfer), collection account, reminder policy and fixed
fee, and invoices in every state (open, partially paid, paid, overdue, cancelled); and the card
acquirer and open-banking emulators its hosted payment page uses.

Seeding is idempotent: the biller is made once (a person may have changed it since: it is left as it
is), each invoice is taken once by its number (an invoice already there is left in whatever state it
reached), payments are recorded once by their method reference.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.invoices import service
from paymux.invoices.models import Biller, Invoice
from paymux.money import parse_amount

BILLER_CODE = "citypower"
ACQUIRER_PORT = 8108
OPENBANK_PORT = 8109
CARD_SECRET = "demo-acquirer-secret-change-me"
OPENBANK_SECRET = "demo-openbank-secret-change-me"
TEST_CARD = "4242 4242 4242 4242"  # the acquirer emulator approves it (docs/invoices.md has the others)

BILLER: dict[str, Any] = {
    "code": BILLER_CODE,
    "name": "City Power",
    "brand": {
        "logo_url": "https://citypower.example/logo.png",
        "primary_color": "#0b5394",
        "accent_color": "#e69138",
    },
    "legal": {
        "legal_name": "City Power S.A.",
        "registration_number": "1003600012345",
        "vat_number": "MD0601234",
        "address": "Str. Energiei 1, MD-2001 Chisinau, Moldova",
    },
    "support": {
        "email": "help@citypower.example",
        "phone": "+37322100200",
        "url": "https://citypower.example/help",
    },
    "methods": ["card", "open_banking", "bank_transfer"],
    "account": {
        "holder": "City Power S.A.",
        "iban": "MD24AG000225100013104168",
        "bic": "AGRNMD2X",
        "bank_name": "Demo Bank",
    },
    "reminder_days": [-3, 0, 7, 14],
    "timezone": "Europe/Chisinau",
    "fee_amount": 50,  # 0.50 EUR per payment
    "fee_currency": "EUR",
}


@dataclass(frozen=True)
class DemoInvoice:
    number: str
    payer: dict[str, str]
    amount: str
    due_in_days: int  # from the day of the first seeding; negative: already due
    description: str
    state: str  # what the seeding leaves it in
    paid: str | None = None  # what was paid by bank transfer
    partial_allowed: bool = False


INVOICES = (
    DemoInvoice(
        "CP-2026-0001",
        {"name": "Ana Rusu", "email": "ana@example.org", "phone": "+37369100001", "language": "ro"},
        "120.50",
        20,
        "Electricity, November",
        "open",
    ),
    DemoInvoice(
        "CP-2026-0002",
        {"name": "John Smith", "email": "john@example.org", "language": "en"},
        "45.00",
        10,
        "Electricity, November",
        "open",
    ),
    DemoInvoice(
        "CP-2026-0003",
        {"name": "Boris Petrov", "email": "boris@example.org", "language": "ru"},
        "300.00",
        15,
        "Connection works, in instalments",
        "partially_paid",
        paid="100.00",
        partial_allowed=True,
    ),
    DemoInvoice(
        "CP-2026-0004",
        {"name": "Chen Wei", "email": "chen@example.org", "language": "en"},
        "80.00",
        5,
        "Electricity, October",
        "paid",
        paid="80.00",
    ),
    DemoInvoice(
        "CP-2026-0005",
        {"name": "Dara Ciobanu", "phone": "+37369100005", "language": "ro"},
        "64.20",
        -10,
        "Electricity, September",
        "overdue",
    ),
    DemoInvoice(
        "CP-2026-0006",
        {"name": "Elena Popa", "email": "elena@example.org", "language": "ro"},
        "99.99",
        30,
        "Meter replacement (booked twice)",
        "cancelled",
    ),
)


@dataclass
class InvoiceDemo:
    """What the seeding made: the biller's new API key (empty without keys) and the invoices
    (number, status, payment path ``/pay/{token}``)."""

    biller_key: str = ""
    invoices: list[tuple[str, str, str]] = field(default_factory=list)
    created: int = 0


def paymethods(acquirer_url: str, openbank_url: str) -> dict[str, dict[str, str]]:
    """``PAYMUX_PAYMETHODS`` for the demo's emulators."""
    return {
        "card": {"url": acquirer_url, "secret": CARD_SECRET, "merchant": BILLER_CODE},
        "open_banking": {"url": openbank_url, "secret": OPENBANK_SECRET},
    }


async def _biller(session: AsyncSession) -> Biller:
    found: Biller | None = await session.scalar(select(Biller).where(Biller.code == BILLER_CODE))
    if found is not None:
        return found
    now = utcnow()
    b = Biller(**BILLER, webhook_enabled=True, enabled=True, created_at=now, updated_at=now)
    session.add(b)
    await session.flush()
    return b


def _body(d: DemoInvoice, today: dt.date) -> dict[str, Any]:
    return {
        "number": d.number,
        "amount": d.amount,
        "currency": "EUR",
        "due_date": (today + dt.timedelta(days=d.due_in_days)).isoformat(),
        "payer": d.payer,
        "description": d.description,
        "partial_allowed": d.partial_allowed,
    }


async def _settle(session: AsyncSession, biller: Biller, inv: Invoice, d: DemoInvoice) -> None:
    """Bring a new invoice to its demo state."""
    if d.paid is not None:
        amount = parse_amount(d.paid, inv.currency)
        await service.record_payment(session, inv, amount, "bank_transfer", f"demo-{d.number}")
    if d.state == "overdue":
        await service.set_status(session, biller, inv, "overdue", f"not paid by {inv.due_date.isoformat()}")
    elif d.state == "cancelled":
        await service.cancel(session, biller, d.number, "issued twice by mistake (demo)")


async def seed_invoices(
    session: AsyncSession, *, keys: bool = True, today: dt.date | None = None
) -> InvoiceDemo:
    """The demo biller and its invoices (idempotent, see the module's doc); a new API key with
    ``keys``. Does not commit."""
    out = InvoiceDemo()
    biller = await _biller(session)
    today = today or utcnow().date()
    numbers = [d.number for d in INVOICES]
    have = set(
        (
            await session.scalars(
                select(Invoice.number).where(Invoice.biller_id == biller.id, Invoice.number.in_(numbers))
            )
        ).all()
    )
    fresh = [d for d in INVOICES if d.number not in have]
    if fresh:
        results = await service.intake(session, biller, [_body(d, today) for d in fresh])
        bad = [r for r in results if r.status != 201]
        if bad:  # pragma: no cover - the demo's own invoices are valid
            raise RuntimeError(f"demo invoices not taken: {[r.problem for r in bad]}")
        out.created = len(results)
        for d in fresh:
            inv = await service.invoice_of(session, biller, d.number)
            await _settle(session, biller, inv, d)
    if keys:
        _row, out.biller_key = await service.issue_biller_key(session, biller, "demo")
    rows = (
        await session.execute(
            select(Invoice.number, Invoice.status, Invoice.link_token)
            .where(Invoice.biller_id == biller.id, Invoice.number.in_(numbers))
            .order_by(Invoice.number)
        )
    ).all()
    out.invoices = [(n, s, f"/pay/{t}") for n, s, t in rows]
    return out


async def start_method_emulators(
    stack: contextlib.AsyncExitStack, port_free: Callable[[str, int], bool]
) -> dict[str, str]:
    """The card acquirer and open-banking emulators on loopback (their usual ports when free), for as
    long as ``stack``; the ``PAYMUX_PAYMETHODS`` value that points the hub's methods at them."""
    from paymux.providers.emulators.acquirer import create_app as acquirer_app
    from paymux.providers.emulators.openbank import create_app as openbank_app
    from paymux.providers.emulators.server import run_emulator

    urls = []
    for app, wanted in (
        (acquirer_app(CARD_SECRET), ACQUIRER_PORT),
        (openbank_app(OPENBANK_SECRET), OPENBANK_PORT),
    ):
        port = wanted if port_free("127.0.0.1", wanted) else 0
        urls.append(await stack.enter_async_context(run_emulator(app, port=port)))
    return {"acquirer": urls[0], "openbank": urls[1]}


__all__ = [
    "ACQUIRER_PORT",
    "BILLER",
    "BILLER_CODE",
    "CARD_SECRET",
    "INVOICES",
    "OPENBANK_PORT",
    "OPENBANK_SECRET",
    "TEST_CARD",
    "InvoiceDemo",
    "paymethods",
    "seed_invoices",
    "start_method_emulators",
]
