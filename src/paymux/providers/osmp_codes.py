"""The OSMP (QIWI provider protocol) result codes: one table, used by the client and its emulator.

``0`` is success; ``1`` and ``90`` are temporary (ask again later with the same ``txn_id``);
every other non-zero code, including one this table does not know, is fatal for that provider.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResultCode:
    code: int
    meaning: str
    fatal: bool

    @property
    def label(self) -> str:
        """``"temporary"``, ``"fatal"`` or ``"ok"``: how the hub treats the code."""
        if self.code == OK:
            return "ok"
        return "fatal" if self.fatal else "temporary"


OK = 0
TEMPORARY = 1
WRONG_ACCOUNT_FORMAT = 4
ACCOUNT_NOT_FOUND = 5
NOT_COMPLETED = 90
OTHER_ERROR = 300

RESULT_CODES: dict[int, ResultCode] = {
    rc.code: rc
    for rc in (
        ResultCode(0, "OK", fatal=False),
        ResultCode(1, "temporary error, retry later", fatal=False),
        ResultCode(4, "wrong account format", fatal=True),
        ResultCode(5, "account not found", fatal=True),
        ResultCode(7, "payment forbidden by the provider", fatal=True),
        ResultCode(8, "payment forbidden for technical reasons", fatal=True),
        ResultCode(31, "bad value of an extra field", fatal=True),
        ResultCode(32, "exchange rate changed", fatal=True),
        ResultCode(79, "account not active", fatal=True),
        ResultCode(90, "payment not yet completed, ask again later", fatal=False),
        ResultCode(241, "amount too small", fatal=True),
        ResultCode(242, "amount too large", fatal=True),
        ResultCode(243, "cannot check the account's state", fatal=True),
        ResultCode(300, "other provider error", fatal=True),
    )
}


def result_code(code: int) -> ResultCode:
    """The table entry for ``code``; a code outside the table is fatal (the protocol says so)."""
    known = RESULT_CODES.get(code)
    if known is not None:
        return known
    return ResultCode(code, "unknown result code", fatal=code != OK)
