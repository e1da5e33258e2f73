"""``bank_transfer``: the payer transfers from their bank: the page shows the biller's account, the
RF reference and a QR code for banking apps (EPC069-12 for EUR, GOST R 56042-2014 for RUB). No
processor and no callback: the transfer is confirmed when the bank statement is matched (by the RF
reference)."""

from __future__ import annotations

from typing import Any

from paymux.invoices.methods.base import PayMethod, Started
from paymux.invoices.models import Biller, Invoice, InvoiceAttempt

ACCOUNT_FIELDS = (
    "holder",
    "iban",
    "bic",
    "bank_name",
    "account_number",
    "inn",
    "kpp",
    "bik",
    "correspondent_account",
)


def qr_kind(currency: str) -> str | None:
    """The bank-transfer QR of a currency: ``epc`` (EUR), ``gost`` (RUB), else none."""
    return {"EUR": "epc", "RUB": "gost"}.get(currency)


def instructions(biller: Biller | None, invoice: Invoice) -> dict[str, Any]:
    account = (biller.account if biller is not None else None) or {}
    return {
        "account": {k: str(account[k]) for k in ACCOUNT_FIELDS if account.get(k)},
        "reference": invoice.reference,
        "qr": qr_kind(invoice.currency),
    }


class TransferMethod(PayMethod):
    name = "bank_transfer"
    has_processor = False

    async def start(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> Started:
        return Started(page=instructions(self.biller, invoice), status="pending")
