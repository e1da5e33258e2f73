"""OSMP result codes and how the hub's refusals map onto them."""

from __future__ import annotations

from paymux.gateways.base import InboundRefusal

OK = 0
TEMPORARY = 1  # the payment system repeats the request later
BAD_ACCOUNT_FORMAT = 4
ACCOUNT_NOT_FOUND = 5
FORBIDDEN = 7
FORBIDDEN_TECHNICAL = 8
BAD_EXTRA_FIELD = 31
ACCOUNT_NOT_ACTIVE = 79
NOT_COMPLETED = 90
AMOUNT_TOO_SMALL = 241
AMOUNT_TOO_LARGE = 242
CANNOT_CHECK = 243
OTHER = 300

COMMENTS = {
    OK: "OK",
    TEMPORARY: "temporary error, repeat the request later",
    BAD_ACCOUNT_FORMAT: "wrong account format",
    ACCOUNT_NOT_FOUND: "account not found",
    FORBIDDEN: "payment forbidden",
    FORBIDDEN_TECHNICAL: "payment forbidden for technical reasons",
    BAD_EXTRA_FIELD: "bad extra field",
    ACCOUNT_NOT_ACTIVE: "account not active",
    NOT_COMPLETED: "payment not completed yet",
    AMOUNT_TOO_SMALL: "amount too small",
    AMOUNT_TOO_LARGE: "amount too large",
    CANNOT_CHECK: "cannot check the account",
    OTHER: "other error",
}

# refusal codes a provider may give in its own answer that mean the same in OSMP
PASSED_THROUGH = frozenset(
    {
        BAD_ACCOUNT_FORMAT,
        ACCOUNT_NOT_FOUND,
        FORBIDDEN,
        FORBIDDEN_TECHNICAL,
        BAD_EXTRA_FIELD,
        ACCOUNT_NOT_ACTIVE,
        AMOUNT_TOO_SMALL,
        AMOUNT_TOO_LARGE,
    }
)

# the hub's outcomes (paymux.gateways.base.Reason) in OSMP codes; "refused" passes a provider's
# code through when it is one of the OSMP refusals (from_provider_code)
BY_REASON = {
    "ok": OK,
    "not_completed": NOT_COMPLETED,
    "bad_request": OTHER,
    "bad_account": BAD_ACCOUNT_FORMAT,
    "bad_field": BAD_EXTRA_FIELD,
    "forbidden": FORBIDDEN,
    "unavailable": FORBIDDEN_TECHNICAL,
    "too_small": AMOUNT_TOO_SMALL,
    "too_large": AMOUNT_TOO_LARGE,
    "cannot_check": CANNOT_CHECK,
    "temporary": TEMPORARY,
    "conflict": OTHER,
    "duplicate": OTHER,
    "not_found": OTHER,
    "cannot_cancel": OTHER,
}


class OsmpRefusal(InboundRefusal):
    """A request answered with a non-zero result (and HTTP 200)."""

    def __init__(self, result: int, comment: str | None = None) -> None:
        super().__init__(result, comment or COMMENTS[result])
        self.result = result


def from_provider_code(code: str | None, default: int = FORBIDDEN) -> int:
    """A provider's refusal code: passed through when it is one of the OSMP refusals, else ``default``."""
    if code is not None and code.isascii() and code.isdigit() and int(code) in PASSED_THROUGH:
        return int(code)
    return default
