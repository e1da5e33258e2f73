"""``redirect``: a generic redirect to another local processor.

Settings (``PAYMUX_PAYMETHODS``)::

    {"redirect": {"url_template": "https://proc.example/pay?ref={reference}&sum={amount}&cur={currency}&back={return_url}&cb={callback_url}",
                  "secret": "...",
                  "status_url_template": "https://proc.example/status/{reference}"}}

Placeholders: ``reference`` (ours), ``amount`` (minor units), ``amount_major`` (``"120.50"``),
``currency``, ``invoice`` (the number), ``return_url``, ``callback_url`` - all URL-encoded. The
processor confirms by a ``POST`` of ``{"reference", "status", "amount", "currency", "id"}`` to the
callback URL, signed with the secret (``Paymux-Signature``); the optional status URL answers the
same JSON to a signed GET.
"""

from __future__ import annotations

import string
from urllib.parse import quote

import orjson

from paymux.invoices.methods.base import CallbackEvent, MethodError, PayMethod, Started, read_event
from paymux.invoices.models import Invoice, InvoiceAttempt
from paymux.money import format_amount

FIELDS = {"reference", "amount", "amount_major", "currency", "invoice", "return_url", "callback_url"}


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        raise MethodError("redirect: the URL template is not valid") from None
    if not names <= FIELDS:
        raise MethodError(f"redirect: unknown placeholders {sorted(names - FIELDS)}")
    url = template.format(**{k: quote(v, safe="") for k, v in values.items()})
    if not url.startswith(("https://", "http://")):
        raise MethodError("redirect: the URL template must make an http(s) URL")
    return url


class RedirectMethod(PayMethod):
    name = "redirect"

    async def start(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> Started:
        template = str(self.config.get("url_template") or "")
        if not template:
            raise MethodError("redirect: no url_template configured")
        values = {
            "reference": attempt.reference,
            "amount": str(attempt.amount),
            "amount_major": format_amount(attempt.amount, attempt.currency),
            "currency": attempt.currency,
            "invoice": invoice.number,
            "return_url": return_url,
            "callback_url": callback_url,
        }
        return Started(redirect_url=_fill(template, values), status="pending")

    async def status(self, attempt: InvoiceAttempt) -> CallbackEvent | None:
        template = str(self.config.get("status_url_template") or "")
        if not template:
            return None
        url = _fill(template, {"reference": attempt.reference})
        event = read_event(orjson.dumps(await self.call("GET", url)))
        if event.reference != attempt.reference:
            raise MethodError("redirect: the processor answered about another attempt")
        return event
