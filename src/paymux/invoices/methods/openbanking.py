"""``open_banking``: payment initiation (PSD2 style): the payer consents at their bank, the bank
confirms by a signed callback.

Settings (``PAYMUX_PAYMETHODS``): ``{"open_banking": {"url": "https://bank.example", "secret": "..."}}``.
``paymux emulator openbank`` emulates such a bank (:mod:`paymux.providers.emulators.openbank`).
"""

from __future__ import annotations

from typing import Any

from paymux.invoices.methods.base import ProcessorMethod
from paymux.invoices.models import Invoice, InvoiceAttempt


class OpenBankingMethod(ProcessorMethod):
    name = "open_banking"
    create_path = "/api/payments"
    redirect_key = "consent_url"

    def payload(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> dict[str, Any]:
        body = super().payload(attempt, invoice, return_url, callback_url)
        account = (self.biller.account if self.biller is not None else None) or {}
        body["creditor"] = {"name": str(account.get("holder") or ""), "iban": str(account.get("iban") or "")}
        body["remittance"] = invoice.reference
        return body
