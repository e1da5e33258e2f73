"""Cyberplat ERROR codes: what each one means and what it tells the hub.

Kinds (how :mod:`paymux.providers.cyberplat` classifies a refusal):

``temporary``  a refusal for now; the same payment (same SESSION) may be sent again later.
``fatal``      a definitive refusal by this provider; the hub may try the next provider.
``pending``    the provider has the payment and is completing it: ask ``status`` later.
``doubt``      the provider may have done the payment (the session is taken or being processed):
               for ``pay`` only ``status`` may settle it; for ``check`` it is treated as temporary.
``not_found``  (for ``status``) the provider does not know the session / transaction.

The meanings are paymux's own short English wording of the codes' published meanings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CodeKind = Literal["ok", "temporary", "fatal", "pending", "doubt", "not_found"]


@dataclass(frozen=True, slots=True)
class Code:
    meaning: str
    kind: CodeKind


OK = "0"

CODES: dict[str, Code] = {
    "0": Code("success", "ok"),
    "1": Code("a session with this number already exists", "doubt"),
    "2": Code("wrong dealer code (SD)", "fatal"),
    "3": Code("wrong point of sale code (AP)", "fatal"),
    "4": Code("wrong operator code (OP)", "fatal"),
    "5": Code("wrong session number format", "fatal"),
    "6": Code("wrong signature", "fatal"),
    "7": Code("wrong amount format or amount out of the allowed range", "fatal"),
    "8": Code("wrong phone number format", "fatal"),
    "9": Code("wrong account number format", "fatal"),
    "10": Code("wrong request format", "fatal"),
    "11": Code("no session with this number", "not_found"),
    "12": Code("request from an unregistered IP address", "fatal"),
    "13": Code("the point of sale is not registered with the recipient", "fatal"),
    "15": Code("payments to this recipient are not supported", "fatal"),
    "17": Code("the phone number differs from the one given before in this session", "fatal"),
    "18": Code("the amount differs from the one given before in this session", "fatal"),
    "19": Code("the account number differs from the one given before in this session", "fatal"),
    "20": Code("the payment is being completed", "pending"),
    "21": Code("not enough funds on the dealer's balance", "fatal"),
    "22": Code("payment not accepted: funds transfer error", "fatal"),
    "23": Code("wrong phone or account number", "fatal"),
    "24": Code("no connection with the recipient's server", "temporary"),
    "25": Code("the gateway is suspended", "temporary"),
    "26": Code("the dealer's payments are blocked for now", "temporary"),
    "27": Code("operations on the account are suspended", "fatal"),
    "30": Code("general system error", "temporary"),
    "31": Code("too many requests processed at once", "temporary"),
    "32": Code("a payment with the same details was accepted within the last hour", "fatal"),
    "33": Code("no cards of this denomination available now", "fatal"),
    "34": Code("no transaction with this number", "not_found"),
    "35": Code("error changing the payment's state", "temporary"),
    "36": Code("the transaction is already completed or being processed", "doubt"),
    "37": Code("the request went to a different gateway than the previous step", "fatal"),
    "38": Code("more than an hour passed between the check and the payment", "fatal"),
    "39": Code("wrong accounting account", "fatal"),
    "40": Code("no card of this denomination is registered", "fatal"),
    "41": Code("error storing the payment", "temporary"),
    "42": Code("error storing the receipt", "doubt"),
    "43": Code("the working session is no longer valid", "temporary"),
    "44": Code("the client may not work on this server", "fatal"),
    "45": Code("no permission to accept payments for this recipient", "fatal"),
    "46": Code("could not complete a failed payment", "temporary"),
    "47": Code("outside the point's working schedule", "temporary"),
    "48": Code("error storing the session data", "temporary"),
    "49": Code("error storing the refusal data", "temporary"),
    "50": Code("payments are temporarily impossible", "temporary"),
    "51": Code("data not found", "fatal"),
    "52": Code("the dealer may be blocked", "fatal"),
    "53": Code("the point of sale may be blocked", "fatal"),
    "54": Code("the operator may be blocked", "fatal"),
    "55": Code("a dealer of another type was expected", "fatal"),
    "56": Code("a point of another type was expected", "fatal"),
    "57": Code("an operator of another type was expected", "fatal"),
    "81": Code("maximum payment amount for the dealer exceeded", "fatal"),
    "82": Code("daily amount for the dealer exceeded", "fatal"),
    "83": Code("maximum payment amount for the point exceeded", "fatal"),
    "84": Code("daily amount for the point exceeded", "fatal"),
    "85": Code("wrong format of the full amount (AMOUNT_ALL) or out of range", "fatal"),
    "86": Code("system error (wrong rate)", "temporary"),
    "87": Code("the recipient's details are blacklisted", "fatal"),
    "134": Code("the point's public key is not found", "fatal"),
    "135": Code("too many payments for the same details today", "fatal"),
    "136": Code("maximum payment amount for the point and recipient group exceeded", "fatal"),
    "137": Code("daily amount for the point and recipient group exceeded", "fatal"),
    "164": Code("gateway product not found", "fatal"),
    "165": Code("gateway product blocked", "fatal"),
    "223": Code("the client's contract does not allow topping up the account", "fatal"),
    "270": Code("refused under financial monitoring rules", "fatal"),
}

# TRNXSTATUS (and RESULT in a status answer): the state of a payment.
TRNX_CHECKED = "1"  # only the check was done; no pay request came
TRNX_IN_PROGRESS = "3"  # the payment went to the recipient and is being processed
TRNX_FINAL = "7"  # the payment is final: success when ERROR=0, failed otherwise

TRNX_STATES: dict[str, str] = {
    TRNX_CHECKED: "only the check was done, no payment request arrived",
    TRNX_IN_PROGRESS: "the payment is being processed",
    TRNX_FINAL: "the payment is final",
}


def lookup(code: str) -> Code | None:
    """The entry for an ERROR code (leading zeros ignored), if known."""
    normalized = code.strip().lstrip("0") or "0"
    return CODES.get(normalized) if normalized.isdigit() else None


def describe(code: str) -> str:
    entry = lookup(code)
    return entry.meaning if entry else "unknown error code"
