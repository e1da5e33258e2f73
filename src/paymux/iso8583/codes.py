"""Response codes (field 39) of ISO 8583:1987 that the listener answers, and ISO 4217 numeric codes."""

from __future__ import annotations

from paymux.money import CURRENCIES

APPROVED = "00"
INVALID_MERCHANT = "03"
DO_NOT_HONOUR = "05"
INVALID_TRANSACTION = "12"
INVALID_AMOUNT = "13"
INVALID_ACCOUNT = "14"
NO_ACTION_TAKEN = "21"
ORIGINAL_NOT_FOUND = "25"
FORMAT_ERROR = "30"
NOT_PERMITTED_TO_TERMINAL = "58"
ISSUER_UNAVAILABLE = "91"
DUPLICATE = "94"
SYSTEM_MALFUNCTION = "96"

MEANINGS: dict[str, str] = {
    APPROVED: "approved",
    INVALID_MERCHANT: "invalid merchant",
    DO_NOT_HONOUR: "do not honour",
    INVALID_TRANSACTION: "invalid transaction",
    INVALID_AMOUNT: "invalid amount",
    INVALID_ACCOUNT: "invalid account",
    NO_ACTION_TAKEN: "no action taken",
    ORIGINAL_NOT_FOUND: "unable to locate record (original)",
    FORMAT_ERROR: "format error",
    NOT_PERMITTED_TO_TERMINAL: "transaction not permitted to terminal",
    ISSUER_UNAVAILABLE: "issuer or switch inoperative",
    DUPLICATE: "duplicate transmission",
    SYSTEM_MALFUNCTION: "system malfunction",
}

# the hub's refusals (paymux.payments.service Problem slugs) as response codes
BY_SLUG: dict[str, str] = {
    "invalid-account": INVALID_ACCOUNT,
    "invalid-field": FORMAT_ERROR,
    "unknown-service": INVALID_TRANSACTION,
    "service-disabled": ISSUER_UNAVAILABLE,
    "channel-disabled": NOT_PERMITTED_TO_TERMINAL,
    "wrong-currency": INVALID_AMOUNT,
    "invalid-amount": INVALID_AMOUNT,
    "amount-out-of-limits": INVALID_AMOUNT,
    "idempotency-conflict": DUPLICATE,
    "no-provider-available": ISSUER_UNAVAILABLE,
}

# ISO 4217 numeric codes of the currencies paymux knows (paymux.money.CURRENCIES)
NUMERIC: dict[str, str] = {
    "784": "AED", "051": "AMD", "036": "AUD", "944": "AZN", "975": "BGN", "048": "BHD", "986": "BRL",
    "933": "BYN", "124": "CAD", "756": "CHF", "152": "CLP", "156": "CNY", "203": "CZK", "208": "DKK",
    "818": "EGP", "978": "EUR", "826": "GBP", "981": "GEL", "344": "HKD", "348": "HUF", "360": "IDR",
    "376": "ILS", "356": "INR", "368": "IQD", "352": "ISK", "400": "JOD", "392": "JPY", "417": "KGS",
    "410": "KRW", "414": "KWD", "398": "KZT", "434": "LYD", "498": "MDL", "484": "MXN", "578": "NOK",
    "554": "NZD", "512": "OMR", "985": "PLN", "946": "RON", "941": "RSD", "643": "RUB", "682": "SAR",
    "752": "SEK", "702": "SGD", "764": "THB", "972": "TJS", "934": "TMT", "788": "TND", "949": "TRY",
    "980": "UAH", "840": "USD", "860": "UZS", "704": "VND", "950": "XAF", "952": "XOF", "710": "ZAR",
}  # fmt: skip
ALPHA: dict[str, str] = {alpha: num for num, alpha in NUMERIC.items()}

assert set(ALPHA) == set(CURRENCIES), "every currency of paymux.money has its numeric code"


def meaning(code: str) -> str:
    return MEANINGS.get(code, "unknown")
