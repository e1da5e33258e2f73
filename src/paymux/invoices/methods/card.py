"""``card``: card payments through an acquirer's hosted checkout with 3-D Secure.

The payer goes from our page to the acquirer's checkout, then to the card issuer's ACS challenge
(3-D Secure), then back to our return URL; the acquirer confirms by a signed callback (approved or
declined), possibly later than the payer returns (then the return page waits and polls).

Refunds: ``POST /api/sessions/{id}/refunds`` (signed) gives part or all of an approved payment back
(the refund decision of :mod:`paymux.invoices.refunds`).

Settings (``PAYMUX_PAYMETHODS``): ``{"card": {"url": "https://acquirer.example", "secret": "...",
"merchant": "..."}}``. ``paymux emulator acquirer`` emulates such an acquirer
(:mod:`paymux.providers.emulators.acquirer`).
"""

from __future__ import annotations

from paymux.invoices.methods.base import ProcessorMethod


class CardMethod(ProcessorMethod):
    name = "card"
    create_path = "/api/sessions"
    redirect_key = "checkout_url"
    supports_refund = True
