"""``payonline``: card payments on PayOnline's hosted payment form, confirmed by its CallbackUrl.

Follows PayOnline's public merchant API (payonlinesystem.com, "API Methods", "CallbackURL" and
"SecurityKey parameter"). Settings (``PAYMUX_PAYMETHODS``)::

    {"payonline": {"merchant_id": "12345",
                   "private_security_key": "3844908d-...",
                   "url": "https://secure.payonlinesystem.com/ru/payment/",
                   "valid_minutes": "60"}}

- **Start**: the payer is sent (303) to the form ``url`` with ``MerchantId``, ``OrderId`` (our
  attempt's reference), ``Amount`` (major units, two decimals), ``Currency``, ``ValidUntil`` (UTC,
  ``yyyy-MM-dd HH:mm:ss``), ``OrderDescription``, ``ReturnUrl``, ``FailUrl`` and ``SecurityKey``:
  the lower-case MD5 of ``MerchantId=..&OrderId=..&Amount=..&Currency=..&ValidUntil=..&OrderDescription=..``
  followed by ``&PrivateSecurityKey=<the key>`` (order and case as PayOnline's rule says).
- **Callback**: set both callback URLs of the merchant account (successful and unsuccessful payments,
  method POST, UTF-8) to ``{PAYMUX_PUBLIC_URL}/api/v1/paymethods/payonline/callback``. A callback is
  trusted when its ``SecurityKey`` is the MD5 of ``DateTime=..&TransactionID=..&OrderId=..&Amount=..
  &Currency=..&PrivateSecurityKey=..``; it approves the attempt ``OrderId``, or declines it when it
  carries an ``ErrorCode`` (the unsuccessful-payment callback).
- **Status**: PayOnline is not polled; an attempt waits for its callback (the page says so).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode

from paymux.invoices.methods.base import CallbackEvent, CallbackRejected, MethodError, PayMethod, Started
from paymux.invoices.models import Invoice, InvoiceAttempt
from paymux.money import MoneyError, format_amount, parse_amount

DEFAULT_URL = "https://secure.payonlinesystem.com/ru/payment/"
CALLBACK_FIELDS = ("DateTime", "TransactionID", "OrderId", "Amount", "Currency")
MAX_CALLBACK_BYTES = 16 * 1024


def security_key(fields: list[tuple[str, str]], private_key: str) -> str:
    """PayOnline's ``SecurityKey``: MD5 (hex, lower case) of ``k=v&...&PrivateSecurityKey=<key>``."""
    line = "&".join(f"{k}={v}" for k, v in [*fields, ("PrivateSecurityKey", private_key)])
    return hashlib.md5(line.encode("utf-8")).hexdigest()  # the processor's rule, not our choice


class PayOnlineMethod(PayMethod):
    name = "payonline"
    labels: ClassVar[dict[str, tuple[str, str]]] = {
        "en": ("Card (PayOnline)", "You pay on PayOnline's secure card form and come back here."),
        "ru": ("Карта (PayOnline)", "Вы оплатите картой на защищённой странице PayOnline и вернётесь сюда."),
        "ro": ("Card (PayOnline)", "Plătiți cu cardul pe pagina securizată PayOnline și reveniți aici."),
    }

    @property
    def secret(self) -> str:
        return str(self.config.get("private_security_key") or "")

    def _merchant(self) -> str:
        merchant = str(self.config.get("merchant_id") or "")
        if not merchant.isdigit() or len(merchant) > 18:
            raise MethodError("payonline: merchant_id (PayOnline's integer MerchantId) is not configured")
        if not self.secret:
            raise MethodError("payonline: private_security_key is not configured")
        return merchant

    async def start(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> Started:
        merchant = self._merchant()
        url = str(self.config.get("url") or DEFAULT_URL)
        if not url.startswith(("https://", "http://")):
            raise MethodError("payonline: url must be an http(s) URL")
        try:
            minutes = int(str(self.config.get("valid_minutes") or "60"))
        except ValueError:
            raise MethodError("payonline: valid_minutes must be a whole number") from None
        until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=max(5, min(minutes, 7 * 24 * 60)))
        signed = [
            ("MerchantId", merchant),
            ("OrderId", attempt.reference),
            ("Amount", format_amount(attempt.amount, attempt.currency)),
            ("Currency", attempt.currency),
            ("ValidUntil", until.strftime("%Y-%m-%d %H:%M:%S")),
            ("OrderDescription", _description(invoice)),
        ]
        query = [*signed, ("ReturnUrl", return_url), ("FailUrl", return_url)]
        query.append(("SecurityKey", security_key(signed, self.secret)))
        separator = "&" if "?" in url else "?"
        return Started(redirect_url=url + separator + urlencode(query), status="pending")

    def callback_reference(self, body: bytes) -> str | None:
        """``OrderId`` of the callback form (our attempt's reference), before its key is checked."""
        fields = _form(body)
        ref = fields.get("OrderId") if fields is not None else None
        return ref if ref and len(ref) <= 64 else None

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        if not self.secret:
            raise CallbackRejected("the method has no private_security_key configured")
        fields = _form(body)
        if fields is None:
            raise CallbackRejected("the callback is not a UTF-8 form of at most 16 KiB")
        missing = [k for k in (*CALLBACK_FIELDS, "SecurityKey") if not fields.get(k)]
        if missing:
            raise CallbackRejected(f"the callback lacks {', '.join(missing)}")
        expected = security_key([(k, fields[k]) for k in CALLBACK_FIELDS], self.secret)
        if not hmac.compare_digest(expected, fields["SecurityKey"].lower()):
            raise CallbackRejected("bad SecurityKey")
        currency = fields["Currency"].upper()
        try:
            amount = parse_amount(fields["Amount"], currency)
        except MoneyError as e:
            raise CallbackRejected(f"Amount: {e}") from None
        reference = fields["OrderId"]
        if len(reference) > 64:
            raise CallbackRejected("OrderId too long")
        declined = bool(fields.get("ErrorCode"))
        return CallbackEvent(
            reference=reference,
            status="declined" if declined else "approved",
            amount=amount,
            currency=currency,
            processor_ref=fields["TransactionID"][:200],
            detail=(f"ErrorCode {fields['ErrorCode']}" if declined else "")[:500],
            extra={k: fields[k] for k in ("CardNumber", "BinCountry") if fields.get(k)},
        )


def _form(body: bytes) -> dict[str, str] | None:
    """The fields of a callback form; None when it is too large or not UTF-8."""
    if len(body) > MAX_CALLBACK_BYTES:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None


def _description(invoice: Invoice) -> str:
    """``OrderDescription``: up to 100 letters, digits and punctuation (PayOnline's limit)."""
    text = " ".join(f"{invoice.number} {invoice.description or ''}".split())
    return "".join(ch for ch in text if ch.isalnum() or ch in " .,-_/#№:()")[:100]
