"""OSMP result codes and how the hub's refusals map onto them."""

from __future__ import annotations

from paymux.errors import Problem

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

_BY_SLUG = {
    "invalid-account": BAD_ACCOUNT_FORMAT,
    "invalid-field": BAD_EXTRA_FIELD,
    "unknown-service": FORBIDDEN,
    "service-disabled": FORBIDDEN_TECHNICAL,
    "channel-disabled": FORBIDDEN_TECHNICAL,
    "wrong-currency": OTHER,
    "invalid-amount": OTHER,
    "idempotency-conflict": OTHER,
}


class OsmpRefusal(Exception):
    """A request answered with a non-zero result (and HTTP 200)."""

    def __init__(self, result: int, comment: str | None = None) -> None:
        super().__init__(comment or COMMENTS[result])
        self.result = result
        self.comment = comment or COMMENTS[result]


def from_problem(p: Problem, command: str) -> OsmpRefusal:
    """The OSMP result for a refusal of the hub's payment service (``paymux.payments.service``)."""
    detail = p.detail or p.title
    if p.slug == "amount-out-of-limits":
        return OsmpRefusal(AMOUNT_TOO_LARGE if "above" in detail else AMOUNT_TOO_SMALL, detail)
    if p.slug == "no-provider-available":
        # nobody can take it now: a check cannot be answered, a pay is to be repeated later
        return OsmpRefusal(CANNOT_CHECK if command == "check" else TEMPORARY, detail)
    if p.status >= 500:
        return OsmpRefusal(TEMPORARY, detail)
    return OsmpRefusal(_BY_SLUG.get(p.slug, OTHER), detail)


def from_provider_code(code: str | None, default: int = FORBIDDEN) -> int:
    """A provider's refusal code: passed through when it is one of the OSMP refusals, else ``default``."""
    if code is not None and code.isdigit() and int(code) in PASSED_THROUGH:
        return int(code)
    return default
