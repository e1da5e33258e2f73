"""QR codes of an invoice: the payment link, EPC069-12 (SEPA credit transfer) and GOST R 56042-2014.

Each builder validates its input against the standard and raises
:class:`~paymux.invoices.elements.errors.ElementError` for anything outside it; nothing is
truncated or transliterated silently (a wrong name in a bank app is worse than a refused invoice).
Payloads are encoded in UTF-8 in byte mode without an ECI header (both standards name the
character set inside the payload, and bank apps read the bytes as such).
"""

import io
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import segno

from paymux.invoices.elements.errors import ElementError

__all__ = [
    "ElementError",
    "epc_payload",
    "epc_qr",
    "gost_payload",
    "gost_qr",
    "link_qr",
    "png",
    "svg",
]

# --------------------------------------------------------------------------------------------------
# shared checks


def _text(field: str, value: object, *, max_chars: int, required: bool = True) -> str:
    """A one-line text element: a str, no line breaks or control characters, at most ``max_chars``."""
    if value is None:
        if required:
            raise ElementError(field, "is required")
        return ""
    if not isinstance(value, str):
        raise ElementError(field, "must be text")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value):
        raise ElementError(field, "must be one line without control characters")
    if value != value.strip():
        raise ElementError(field, "must not start or end with white space")
    if required and not value:
        raise ElementError(field, "must not be empty")
    if len(value) > max_chars:
        raise ElementError(field, f"is {len(value)} characters, the standard allows at most {max_chars}")
    return value


def _mod97(alnum: str) -> int:
    """ISO 7064 MOD 97-10 over letters (A=10..Z=35) and digits, as IBAN and ISO 11649 use it."""
    return int("".join(str(int(c, 36)) for c in alnum)) % 97


_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_RF = re.compile(r"RF[0-9]{2}[A-Z0-9]{1,21}")
_PURPOSE = re.compile(r"[A-Z0-9]{4}")


def _iban(value: object) -> str:
    """An IBAN (ISO 13616) in electronic form: upper case, no spaces, check digits valid."""
    if not isinstance(value, str):
        raise ElementError("iban", "must be text")
    iban = value.replace(" ", "").upper()
    if not _IBAN.fullmatch(iban) or len(iban) > 34:
        raise ElementError("iban", "is not an IBAN (2 letters, 2 check digits, up to 30 letters/digits)")
    if _mod97(iban[4:] + iban[:4]) != 1:
        raise ElementError("iban", "check digits do not match (ISO 13616 MOD 97-10)")
    return iban


def _rf_reference(value: object) -> str:
    """An ISO 11649 RF creditor reference (spaces allowed in input, removed in the code)."""
    if not isinstance(value, str):
        raise ElementError("reference", "must be text")
    ref = value.replace(" ", "").upper()
    if not _RF.fullmatch(ref):
        raise ElementError(
            "reference", "is not an ISO 11649 RF creditor reference (RF, 2 digits, 1-21 chars)"
        )
    if _mod97(ref[4:] + ref[:4]) != 1:
        raise ElementError("reference", "check digits do not match (ISO 11649 MOD 97-10)")
    return ref


def _amount_minor(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ElementError(field, "must be an integer amount in minor units")
    return value


def _make(payload: str, *, max_version: int, field: str) -> segno.QRCode:
    """A QR code (never Micro QR) at error correction level M exactly, at most ``max_version``."""
    try:
        qr = segno.make_qr(payload, error="m", boost_error=False, encoding="utf-8", eci=False)
    except segno.DataOverflowError as exc:
        raise ElementError(field, "too much data for a QR code") from exc
    if qr.version > max_version:  # type: ignore[operator]
        raise ElementError(field, f"needs QR version {qr.version}, the standard allows at most {max_version}")
    return qr


# --------------------------------------------------------------------------------------------------
# the payment link


def link_qr(url: str) -> segno.QRCode:
    """A QR code of the payment link (``https://.../pay/{token}``), error correction level M.

    Only absolute http(s) URLs without white space are encoded: a QR code is followed blindly by
    a phone's camera app, so ``javascript:`` or ``data:`` must never get into one.
    """
    if not isinstance(url, str) or not url or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ElementError("url", "must be an absolute http(s) URL without white space")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ElementError("url", "must be an absolute http(s) URL")
    return _make(url, max_version=40, field="url")


# --------------------------------------------------------------------------------------------------
# EPC069-12: Quick Response Code, guidelines to enable data capture for the initiation of a SEPA
# credit transfer (European Payments Council, EPC069-12 version 2.1 and later; "GiroCode")

#: EPC069-12 v2.1 section 2 ("2D Code Guidelines", "Definition"): error level M, QR version <= 13,
#: payload <= 331 bytes, character sets 1 (UTF-8) to 8
EPC_MAX_VERSION = 13
EPC_MAX_BYTES = 331
EPC_MIN_AMOUNT_MINOR = 1  # EUR 0.01
EPC_MAX_AMOUNT_MINOR = 99_999_999_999  # EUR 999999999.99


def epc_payload(
    *,
    name: str,
    iban: str,
    bic: str | None = None,
    amount_minor: int | None,
    currency: str = "EUR",
    reference: str | None = None,
    text: str | None = None,
    purpose: str | None = None,
    information: str | None = None,
) -> str:
    """The EPC069-12 version 002 payload, one data element per line (LF), UTF-8 (character set 1).

    The data elements, in this order (the data elements table of EPC069-12 v2.1, after the code
    definition of section 2; AT-nn are the SCT rulebook attributes; lengths in characters):

    1. Service tag ``BCD``;
    2. version ``002`` (the BIC is optional within the EEA);
    3. character set ``1`` = UTF-8 (section 2 lists 1-8; only UTF-8 is written here);
    4. identification ``SCT`` (SEPA credit transfer);
    5. BIC of the beneficiary bank (AT-23), 8 or 11 characters, or empty;
    6. name of the beneficiary (AT-21), 1-70;
    7. account of the beneficiary (AT-20), IBAN only, at most 34;
    8. amount (AT-04): ``EUR`` then the amount with a decimal point and two decimals,
       0.01..999999999.99, or empty when the payer types it in;
    9. purpose (AT-44), 4 letters/digits (an ISO 20022 ExternalPurpose1Code) or empty;
    10. remittance information, structured (AT-05): a creditor reference, 1-35 (here an ISO 11649
        RF reference, checked), or empty;
    11. remittance information, unstructured (AT-05), 1-140, or empty - 10 and 11 are exclusive;
    12. beneficiary to originator information, 1-70, or empty.

    Trailing empty elements are left out (the last line is the last populated element, with no
    line feed after it), and the whole payload is at most 331 bytes (section 2).
    """
    if currency != "EUR":
        raise ElementError("currency", "a SEPA credit transfer QR code is in EUR only")
    name = _text("name", name, max_chars=70)
    iban = _iban(iban)
    bic_value = ""
    if bic is not None and bic != "":
        if not isinstance(bic, str) or not _BIC.fullmatch(bic.replace(" ", "").upper()):
            raise ElementError("bic", "is not a BIC (ISO 9362: 8 or 11 letters/digits)")
        bic_value = bic.replace(" ", "").upper()
    amount = ""
    if amount_minor is not None:
        minor = _amount_minor("amount_minor", amount_minor)
        if not EPC_MIN_AMOUNT_MINOR <= minor <= EPC_MAX_AMOUNT_MINOR:
            raise ElementError("amount_minor", "must be from 0.01 to 999999999.99 EUR")
        amount = f"EUR{minor // 100}.{minor % 100:02d}"
    purpose_value = ""
    if purpose is not None and purpose != "":
        if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
            raise ElementError("purpose", "must be a 4-character purpose code like GDDS")
        purpose_value = purpose
    has_reference = reference is not None and reference != ""
    has_text = text is not None and text != ""
    if has_reference and has_text:
        raise ElementError("reference", "a structured reference and a text are exclusive (EPC069-12)")
    reference_value = _rf_reference(reference) if has_reference else ""
    text_value = _text("text", text, max_chars=140) if has_text else ""
    info_value = _text("information", information, max_chars=70, required=False)
    lines = [
        "BCD",
        "002",
        "1",
        "SCT",
        bic_value,
        name,
        iban,
        amount,
        purpose_value,
        reference_value,
        text_value,
        info_value,
    ]
    while lines[-1] == "":
        lines.pop()
    payload = "\n".join(lines)
    size = len(payload.encode("utf-8"))
    if size > EPC_MAX_BYTES:
        raise ElementError("payload", f"is {size} bytes, EPC069-12 allows at most {EPC_MAX_BYTES}")
    return payload


def epc_qr(
    *,
    name: str,
    iban: str,
    bic: str | None = None,
    amount_minor: int | None,
    currency: str = "EUR",
    reference: str | None = None,
    text: str | None = None,
    purpose: str | None = None,
    information: str | None = None,
) -> segno.QRCode:
    """The EPC069-12 QR code of :func:`epc_payload`: error correction level M, version <= 13."""
    payload = epc_payload(
        name=name,
        iban=iban,
        bic=bic,
        amount_minor=amount_minor,
        currency=currency,
        reference=reference,
        text=text,
        purpose=purpose,
        information=information,
    )
    return _make(payload, max_version=EPC_MAX_VERSION, field="payload")


# --------------------------------------------------------------------------------------------------
# GOST R 56042-2014: financial operations standards, two-dimensional bar code symbols for payments
# of individuals (format "ST", version 0001)

#: the service block: format id ``ST``, version ``0001``, encoding ``2`` (1 = windows-1251,
#: 2 = UTF-8, 3 = KOI8-R); then the separator (the standard's service data block)
GOST_HEADER = "ST00012"
GOST_SEPARATOR = "|"
#: the block of mandatory requisites is at most 300 bytes (the standard's mandatory requisites block)
GOST_MANDATORY_MAX_BYTES = 300

_DIGITS_20 = re.compile(r"[0-9]{20}")
_DIGITS_9 = re.compile(r"[0-9]{9}")
_INN = re.compile(r"[0-9]{10}|[0-9]{12}")
_KPP = re.compile(r"[0-9]{4}[0-9A-Z]{2}[0-9]{3}")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")

#: the additional requisites (the standard's tables of additional and other additional requisites)
#: with the maximum lengths the standard gives; ``None`` = no fixed length in the standard
GOST_ADDITIONAL: dict[str, int | None] = {
    "Sum": 18,
    "Purpose": 210,
    "PayeeINN": 12,
    "PayerINN": 12,
    "DrawerStatus": 2,
    "KPP": 9,
    "CBC": 20,
    "OKTMO": 11,
    "PaytReason": 2,
    "TaxPeriod": 10,
    "DocNo": 15,
    "DocDate": 10,
    "TaxPaytKind": 2,
    "LastName": None,
    "FirstName": None,
    "MiddleName": None,
    "PayerAddress": None,
    "PersonalAccount": None,
    "DocIdx": None,
    "PensAcc": None,
    "Contract": None,
    "PersAcc": None,
    "Flat": None,
    "Phone": None,
    "PayerIdType": None,
    "PayerIdNum": None,
    "ChildFio": None,
    "BirthDate": None,
    "PaymTerm": None,
    "PaymPeriod": None,
    "Category": None,
    "ServiceName": None,
    "CounterId": None,
    "CounterVal": None,
    "QuittId": None,
    "QuittDate": None,
    "InstNum": None,
    "ClassNum": None,
    "SpecFio": None,
    "AddAmount": None,
    "RuleId": None,
    "ExecId": None,
    "RegType": None,
    "UIN": 25,
    "TechCode": 2,
}
#: a field without a fixed length still has to fit a QR code with the rest; 300 is generous
_DEFAULT_MAX = 300


def _gost_value(field: str, value: object, *, max_chars: int) -> str:
    text = _text(field, value, max_chars=max_chars)
    if GOST_SEPARATOR in text:
        raise ElementError(field, f"must not contain the separator {GOST_SEPARATOR!r}")
    return text


def _gost_exact(field: str, value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ElementError(field, f"must be {what}")
    return value


def gost_payload(
    *,
    name: str,
    personal_acc: str,
    bank_name: str,
    bic: str,
    corresp_acc: str,
    sum_minor: int | None = None,
    purpose: str | None = None,
    payee_inn: str | None = None,
    kpp: str | None = None,
    pers_acc: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The GOST R 56042-2014 payload: ``ST00012|Name=...|PersonalAcc=...|BankName=...|BIC=...|...``.

    Per the standard's data content requirements (the service block, then the table of mandatory
    requisites, then the tables of additional requisites):

    - the service block ``ST`` + version ``0001`` + encoding ``2`` (UTF-8), then ``Key=Value``
      requisites, each preceded by the separator ``|``;
    - the mandatory requisites first, in this order: ``Name`` (payee, up to 160 characters),
      ``PersonalAcc`` (payee's account, 20 digits), ``BankName`` (up to 45), ``BIC`` (9 digits),
      ``CorrespAcc`` (the bank's correspondent account, 20 digits); their block is at most 300 bytes;
    - then the additional requisites written here: ``Sum`` (kopecks, up to 18 digits),
      ``Purpose`` (up to 210), ``PayeeINN`` (10 or 12 digits), ``KPP`` (9 characters),
      ``PersAcc`` (the payer's account with the payee), then ``extra`` in its order, each key a
      requisite name of the standard (:data:`GOST_ADDITIONAL`).

    No value may contain the separator, a line break or a control character.
    """
    mandatory = [
        ("Name", _gost_value("name", name, max_chars=160)),
        ("PersonalAcc", _gost_exact("personal_acc", personal_acc, _DIGITS_20, "20 digits")),
        ("BankName", _gost_value("bank_name", bank_name, max_chars=45)),
        ("BIC", _gost_exact("bic", bic, _DIGITS_9, "9 digits")),
        ("CorrespAcc", _gost_exact("corresp_acc", corresp_acc, _DIGITS_20, "20 digits")),
    ]
    mandatory_block = "".join(f"{GOST_SEPARATOR}{key}={value}" for key, value in mandatory)
    size = len(mandatory_block.encode("utf-8"))
    if size > GOST_MANDATORY_MAX_BYTES:
        raise ElementError(
            "name",
            f"the mandatory requisites are {size} bytes, the standard allows {GOST_MANDATORY_MAX_BYTES}",
        )
    optional: list[tuple[str, str]] = []
    if sum_minor is not None:
        minor = _amount_minor("sum_minor", sum_minor)
        if minor < 1 or len(str(minor)) > 18:
            raise ElementError("sum_minor", "must be a positive amount in kopecks of at most 18 digits")
        optional.append(("Sum", str(minor)))
    if purpose is not None:
        optional.append(("Purpose", _gost_value("purpose", purpose, max_chars=210)))
    if payee_inn is not None:
        optional.append(("PayeeINN", _gost_exact("payee_inn", payee_inn, _INN, "an INN of 10 or 12 digits")))
    if kpp is not None:
        optional.append(("KPP", _gost_exact("kpp", kpp, _KPP, "a KPP of 9 characters")))
    if pers_acc is not None:
        optional.append(("PersAcc", _gost_value("pers_acc", pers_acc, max_chars=_DEFAULT_MAX)))
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key not in GOST_ADDITIONAL:
            raise ElementError(f"extra.{key}", "is not a requisite of GOST R 56042-2014")
        if any(key == seen for seen, _ in optional):
            raise ElementError(f"extra.{key}", "is given twice")
        limit = GOST_ADDITIONAL[key] or _DEFAULT_MAX
        optional.append((key, _gost_value(f"extra.{key}", value, max_chars=limit)))
    return GOST_HEADER + mandatory_block + "".join(f"{GOST_SEPARATOR}{k}={v}" for k, v in optional)


def gost_qr(
    *,
    name: str,
    personal_acc: str,
    bank_name: str,
    bic: str,
    corresp_acc: str,
    sum_minor: int | None = None,
    purpose: str | None = None,
    payee_inn: str | None = None,
    kpp: str | None = None,
    pers_acc: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> segno.QRCode:
    """The GOST R 56042-2014 QR code of :func:`gost_payload`, error correction level M."""
    payload = gost_payload(
        name=name,
        personal_acc=personal_acc,
        bank_name=bank_name,
        bic=bic,
        corresp_acc=corresp_acc,
        sum_minor=sum_minor,
        purpose=purpose,
        payee_inn=payee_inn,
        kpp=kpp,
        pers_acc=pers_acc,
        extra=extra,
    )
    return _make(payload, max_version=40, field="payload")


# --------------------------------------------------------------------------------------------------
# rendering


def png(qr: segno.QRCode, *, scale: int = 4, border: int = 4) -> bytes:
    """The code as a PNG (black on white, a 4-module quiet zone by default); same code -> same bytes."""
    if not 1 <= scale <= 40:
        raise ElementError("scale", "must be from 1 to 40")
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


_ELEMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def svg(
    qr: segno.QRCode, *, title: str, scale: int = 4, border: int = 4, element_id: str = "paymux-qr"
) -> bytes:
    """The code as a standalone SVG without an XML declaration (embeddable inline in HTML).

    The root element carries ``role="img"`` and ``aria-labelledby`` pointing at a ``<title>``
    (``title`` is escaped by segno), so a screen reader announces what the code is for. Give each
    code inlined in the same page its own ``element_id`` (the title's id is ``{element_id}-title``).
    """
    if not isinstance(element_id, str) or not _ELEMENT_ID.fullmatch(element_id):
        raise ElementError("element_id", "must be a letter then up to 63 letters, digits, - or _")
    if not 1 <= scale <= 40:
        raise ElementError("scale", "must be from 1 to 40")
    title = _text("title", title, max_chars=200)
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=scale,
        border=border,
        xmldecl=False,
        svgns=True,
        title=title,
        svgid=element_id,
        svgclass="paymux-qr",
        lineclass=None,
        nl=False,
    )
    data = out.getvalue()
    # segno writes "<svg xmlns=... ><title>..."; give the title an id and the root its role
    ident = element_id.encode("ascii")
    data = data.replace(b"<svg ", b'<svg role="img" aria-labelledby="' + ident + b'-title" ', 1)
    data = data.replace(b"<title>", b'<title id="' + ident + b'-title">', 1)
    return data
