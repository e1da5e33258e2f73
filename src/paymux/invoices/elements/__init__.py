"""Payment elements of an invoice: QR codes, the status badge and the pay button.

Pure functions over plain values (no database, no I/O), so that the invoice routes, the hosted page,
the reminder templates and the tests call the same code:

- :mod:`.qr` - the payment-link QR, the EPC069-12 "SEPA credit transfer" QR (GiroCode) and the
  GOST R 56042-2014 ``ST00012`` QR, rendered as PNG or SVG;
- :mod:`.badge` - the embeddable SVG status badge and its ETag;
- :mod:`.button` - the pay button as an HTML snippet and as an e-mail-safe table.

Every function refuses a value outside its standard with :class:`ElementError` (never a silent
truncation), so a route can answer it as a 422 problem.
"""

from paymux.invoices.elements.errors import ElementError

__all__ = ["ElementError"]
