"""What a payment order file needs before it is written: our own bank details (``PAYMUX_SETTLEMENT_DEBTOR_*``)
and the payees' accounts. A file with a placeholder where an account belongs is refused, not written.
"""

from __future__ import annotations

from typing import Any

from paymux.errors import Problem
from paymux.settlement.models import PaymentOrder
from paymux.settlement.settings import SettlementSettings

PREFIX = "PAYMUX_SETTLEMENT_DEBTOR_"
FORMAT_NAMES = {"pain001": "pain.001", "1c": "1C"}


def _env(name: str) -> str:
    return PREFIX + name.upper()


def missing_debtor_settings(settings: SettlementSettings, fmt: str) -> list[str]:
    """The settings (as environment variable names; ``A or B`` when either will do) a file of ``fmt``
    needs and does not have."""
    have = {k: bool(str(getattr(settings, f"debtor_{k}") or "").strip()) for k in _FIELDS}
    missing: list[str] = []
    if fmt == "pain001":
        if not have["name"]:
            missing.append(_env("name"))
        if not (have["iban"] or have["account"]):
            missing.append(f"{_env('iban')} or {_env('account')}")
        elif not have["iban"] and not (have["bic"] or have["bik"]):
            missing.append(f"{_env('bic')} or {_env('bik')}")  # a plain account needs its bank
    else:
        missing += [_env(k) for k in ("name", "account", "inn", "bik") if not have[k]]
    return missing


_FIELDS = ("name", "iban", "bic", "account", "bik", "corr_account", "bank_name", "inn", "kpp")


def invalid_debtor_settings(settings: SettlementSettings) -> list[str]:
    """``NAME: what is wrong`` for each debtor setting that is set but malformed (an IBAN's check digits,
    a BIC, the digits of an account, BIK, correspondent account, INN, KPP)."""
    from paymux.settlement.service import check_details

    problems: list[str] = []
    for k in ("iban", "bic", "account", "bik", "corr_account", "inn", "kpp"):
        value = str(getattr(settings, f"debtor_{k}") or "")
        if not value.strip():
            continue
        try:
            check_details({k: value})
        except Problem as e:
            problems.append(f"{_env(k)}: {e.detail or e.title}")
    return problems


def missing_payee_details(orders: list[PaymentOrder], fmt: str) -> list[str]:
    """``PO-000123 (provider p2): no ...`` for each order whose payee lacks what ``fmt`` needs: an IBAN or
    an account (pain.001); the account, BIK and INN (1C)."""
    out: list[str] = []
    for o in orders:
        p: dict[str, Any] = o.payee or {}
        if fmt == "pain001":
            lacking = [] if (p.get("iban") or p.get("account")) else ["IBAN or account"]
        else:
            lacking = [
                k.upper() if k != "account" else "account" for k in ("account", "bik", "inn") if not p.get(k)
            ]
        if lacking:
            out.append(f"{o.number} (provider {p.get('provider', o.provider_id)}): no {', '.join(lacking)}")
    return out


def check_export(settings: SettlementSettings, fmt: str, orders: list[PaymentOrder]) -> None:
    """Raise a 409 problem naming every setting and payee detail the file would lack."""
    name = FORMAT_NAMES.get(fmt, fmt)
    missing = missing_debtor_settings(settings, fmt)
    bad = invalid_debtor_settings(settings)
    if missing or bad:
        parts = []
        if missing:
            parts.append(f"set {', '.join(missing)}")
        if bad:
            parts.append(f"correct {'; '.join(bad)}")
        raise Problem(
            409,
            "debtor-not-configured",
            "Our bank details are not configured",
            f"a {name} file needs our own bank details: {' and '.join(parts)} (environment of the "
            "paymux processes), then restart them. Nothing was exported.",
            missing_settings=missing,
            invalid_settings=bad,
        )
    payees = missing_payee_details(orders, fmt)
    if payees:
        raise Problem(
            409,
            "payee-details-missing",
            "The payee's bank details are missing",
            f"a {name} file needs each payee's account; {'; '.join(payees)}. The order keeps the bank "
            "details of its provider as they were when it was created: cancel it, save the provider's "
            "bank details and create it again. Nothing was exported.",
            orders=[o.number for o in orders if any(x.startswith(o.number + " ") for x in payees)],
        )
