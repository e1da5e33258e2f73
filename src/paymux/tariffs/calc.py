"""Tariff arithmetic: the fee for one payment amount, exactly, in integer minor units.

A rule is ``fixed + amount * percent / 100`` (the percent part rounded once, with an explicit mode),
optionally chosen per amount tier, then clamped to ``[min, max]``. Three forms of a rule exist:

* :class:`TariffRule` - the typed value, validated on construction;
* the user-facing dict (:func:`parse_rule` / :func:`rule_to_dict`): money as decimal strings in major
  units of the currency, e.g. ``{"fixed": "1.00", "percent": "1.5"}``;
* the storage dict (:func:`rule_from_json` / :func:`rule_to_json`): money as minor-unit ints.

No floats are used anywhere.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from paymux.money import ROUNDING_MODES, MoneyError, check_currency, format_amount, parse_amount

__all__ = [
    "PERCENT_MAX_PLACES",
    "TariffError",
    "TariffRule",
    "Tier",
    "compute",
    "parse_rule",
    "rule_from_json",
    "rule_to_dict",
    "rule_to_json",
    "select_tier",
]

#: Most decimal places a percent may have ("1.2345678901" is too precise).
PERCENT_MAX_PLACES = 10

_PERCENT_RE = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,20})?\Z")
_RULE_KEYS = ("fixed", "percent", "min", "max", "rounding", "tiers")
_TIER_KEYS = ("from", "fixed", "percent", "min", "max")
_DEFAULT_ROUNDING = "half_up"


class TariffError(ValueError):
    """A tariff rule (or an input to it) that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Tier:
    """Pricing used for payment amounts from ``from_amount`` (inclusive, minor units) upwards."""

    from_amount: int
    fixed: int = 0
    percent: Decimal = Decimal(0)
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class TariffRule:
    """A fee rule for one currency; all money fields are minor units. Validated on construction."""

    fixed: int = 0
    percent: Decimal = Decimal(0)
    min: int | None = None
    max: int | None = None
    # When non-empty, the tier selected by amount replaces fixed/percent above; min/max still clamp.
    tiers: tuple[Tier, ...] = ()
    rounding: str = _DEFAULT_ROUNDING  # one of paymux.money.ROUNDING_MODES, for the percent part

    def __post_init__(self) -> None:
        _check_pricing(self, "")
        if not isinstance(self.rounding, str) or self.rounding not in ROUNDING_MODES:
            raise TariffError(f"rounding must be one of {sorted(ROUNDING_MODES)}, not {self.rounding!r}")
        if isinstance(self.tiers, list):
            object.__setattr__(self, "tiers", tuple(self.tiers))
        if not isinstance(self.tiers, tuple):
            raise TariffError("tiers must be a tuple of Tier")
        for i, tier in enumerate(self.tiers):
            prefix = f"tiers[{i}]."
            if not isinstance(tier, Tier):
                raise TariffError(f"tiers[{i}] must be a Tier")
            _check_money(tier.from_amount, prefix + "from")
            _check_pricing(tier, prefix)
            if i == 0 and tier.from_amount != 0:
                raise TariffError("tiers[0].from must be 0 (the first tier must cover every amount)")
            if i > 0 and tier.from_amount <= self.tiers[i - 1].from_amount:
                raise TariffError(f"tiers[{i}].from must be greater than tiers[{i - 1}].from")


def select_tier(rule: TariffRule, amount: int) -> Tier | None:
    """The tier with the greatest ``from_amount <= amount``, or None when the rule has no tiers."""
    index = bisect_right(rule.tiers, amount, key=lambda t: t.from_amount) - 1
    return rule.tiers[index] if index >= 0 else None


def compute(rule: TariffRule, amount: int) -> int:
    """The fee in minor units (>= 0) that ``rule`` charges on a payment of ``amount`` minor units."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int of minor units, not {type(amount).__name__}")
    if amount < 0:
        raise TariffError(f"amount must not be negative, got {amount}")
    tier = select_tier(rule, amount)
    pricing: Tier | TariffRule = rule if tier is None else tier
    fee = pricing.fixed + _percent_part(amount, pricing.percent, rule.rounding)
    if tier is not None:
        fee = _clamp(fee, tier.min, tier.max)
    fee = _clamp(fee, rule.min, rule.max)
    return max(fee, 0)


def parse_rule(data: Mapping[str, Any], currency: str) -> TariffRule:
    """Build a rule from its user-facing form (money as decimal strings in major units of ``currency``)."""
    try:
        check_currency(currency)
    except MoneyError as exc:
        raise TariffError(f"currency: {exc}") from None
    if not isinstance(data, Mapping):
        raise TariffError('tariff rule must be a mapping such as {"percent": "1.5"}')
    _reject_unknown(data, _RULE_KEYS, "")
    tiers_data = data.get("tiers", ())
    if tiers_data is None:
        tiers_data = ()
    if isinstance(tiers_data, str | bytes | Mapping) or not isinstance(tiers_data, list | tuple):
        raise TariffError("tiers must be a list of mappings")
    tiers = []
    for i, item in enumerate(tiers_data):
        prefix = f"tiers[{i}]."
        if not isinstance(item, Mapping):
            raise TariffError(f'tiers[{i}] must be a mapping such as {{"from": "0", "percent": "2"}}')
        _reject_unknown(item, _TIER_KEYS, prefix)
        if "from" not in item:
            raise TariffError(f"{prefix}from is required")
        tiers.append(
            Tier(
                from_amount=_parse_money(item["from"], currency, prefix + "from"),
                fixed=_parse_money(item.get("fixed", 0), currency, prefix + "fixed"),
                percent=_parse_percent(item.get("percent", 0), prefix + "percent"),
                min=_parse_optional_money(item.get("min"), currency, prefix + "min"),
                max=_parse_optional_money(item.get("max"), currency, prefix + "max"),
            )
        )
    rounding = data.get("rounding", _DEFAULT_ROUNDING)
    if not isinstance(rounding, str):
        raise TariffError(f"rounding must be one of {sorted(ROUNDING_MODES)}")
    return TariffRule(
        fixed=_parse_money(data.get("fixed", 0), currency, "fixed"),
        percent=_parse_percent(data.get("percent", 0), "percent"),
        min=_parse_optional_money(data.get("min"), currency, "min"),
        max=_parse_optional_money(data.get("max"), currency, "max"),
        tiers=tuple(tiers),
        rounding=rounding,
    )


def rule_to_dict(rule: TariffRule, currency: str) -> dict[str, Any]:
    """The user-facing form of ``rule`` (inverse of :func:`parse_rule`); defaults are omitted."""
    check_currency(currency)

    def money(minor: int) -> str:
        return format_amount(minor, currency)

    out = _pricing_to_dict(rule, money)
    if rule.rounding != _DEFAULT_ROUNDING:
        out["rounding"] = rule.rounding
    if rule.tiers:
        out["tiers"] = [{"from": money(t.from_amount), **_pricing_to_dict(t, money)} for t in rule.tiers]
    return out


def rule_to_json(rule: TariffRule) -> dict[str, Any]:
    """The storage form of ``rule``: minor-unit ints and percent strings, every key present."""
    return {
        "fixed": rule.fixed,
        "percent": _plain_percent(rule.percent),
        "min": rule.min,
        "max": rule.max,
        "rounding": rule.rounding,
        "tiers": [
            {
                "from": t.from_amount,
                "fixed": t.fixed,
                "percent": _plain_percent(t.percent),
                "min": t.min,
                "max": t.max,
            }
            for t in rule.tiers
        ],
    }


def rule_from_json(data: Mapping[str, Any]) -> TariffRule:
    """Inverse of :func:`rule_to_json`; missing keys take their defaults, unknown keys are rejected."""
    if not isinstance(data, Mapping):
        raise TariffError("stored tariff rule must be a mapping")
    _reject_unknown(data, _RULE_KEYS, "")
    tiers_data = data.get("tiers") or []
    if not isinstance(tiers_data, list | tuple):
        raise TariffError("tiers must be a list")
    tiers = []
    for i, item in enumerate(tiers_data):
        prefix = f"tiers[{i}]."
        if not isinstance(item, Mapping):
            raise TariffError(f"tiers[{i}] must be a mapping")
        _reject_unknown(item, _TIER_KEYS, prefix)
        if "from" not in item:
            raise TariffError(f"{prefix}from is required")
        tiers.append(
            Tier(
                from_amount=item["from"],
                fixed=item.get("fixed", 0),
                percent=_parse_percent(item.get("percent", "0"), prefix + "percent"),
                min=item.get("min"),
                max=item.get("max"),
            )
        )
    return TariffRule(
        fixed=data.get("fixed", 0),
        percent=_parse_percent(data.get("percent", "0"), "percent"),
        min=data.get("min"),
        max=data.get("max"),
        tiers=tuple(tiers),
        rounding=data.get("rounding", _DEFAULT_ROUNDING),
    )


# --- internals -----------------------------------------------------------------------------------------


def _percent_part(amount: int, percent: Decimal, rounding: str) -> int:
    """``amount * percent / 100`` computed exactly as a fraction of integers, then rounded once."""
    if amount == 0 or percent == 0:
        return 0
    num, den = _ratio(percent)
    return _round_fraction(amount * num, den * 100, rounding)


@lru_cache(maxsize=4096)
def _ratio(percent: Decimal) -> tuple[int, int]:
    return percent.as_integer_ratio()


def _round_fraction(n: int, d: int, rounding: str) -> int:
    """Round the non-negative fraction n/d to an integer with a paymux.money rounding mode."""
    q, r = divmod(n, d)
    if r == 0:
        return q
    if rounding in ("down", "floor"):
        return q
    if rounding in ("up", "ceiling"):
        return q + 1
    twice = 2 * r
    if rounding == "half_up":
        return q + 1 if twice >= d else q
    if rounding == "half_even":
        return q + 1 if twice > d or (twice == d and q % 2 == 1) else q
    raise TariffError(f"unknown rounding mode {rounding!r}")


def _clamp(value: int, low: int | None, high: int | None) -> int:
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return value


def _check_money(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TariffError(f"{field} must be an int of minor units, not {type(value).__name__}")
    if value < 0:
        raise TariffError(f"{field} must not be negative")


def _check_pricing(obj: Tier | TariffRule, prefix: str) -> None:
    """Validate (and normalize an int percent of) the fields a Tier and a TariffRule share."""
    _check_money(obj.fixed, prefix + "fixed")
    percent = obj.percent
    if isinstance(percent, bool) or not isinstance(percent, Decimal | int):
        raise TariffError(f"{prefix}percent must be a Decimal, not {type(percent).__name__}")
    if isinstance(percent, int):
        percent = Decimal(percent)
        object.__setattr__(obj, "percent", percent)
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise TariffError(f"{prefix}percent must be between 0 and 100, got {percent}")
    plain = _plain_percent(percent)
    if "." in plain and len(plain.split(".")[1]) > PERCENT_MAX_PLACES:
        raise TariffError(f"{prefix}percent may have at most {PERCENT_MAX_PLACES} decimal places")
    for name in ("min", "max"):
        value = getattr(obj, name)
        if value is not None:
            _check_money(value, prefix + name)
    if obj.min is not None and obj.max is not None and obj.min > obj.max:
        raise TariffError(f"{prefix}min must not be greater than {prefix}max")


def _plain_percent(percent: Decimal) -> str:
    """A percent as a plain decimal string without trailing zeros: ``Decimal("1.50")`` gives ``"1.5"``."""
    if percent == 0:
        return "0"
    text = format(percent, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _pricing_to_dict(obj: Tier | TariffRule, money: Callable[[int], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if obj.fixed:
        out["fixed"] = money(obj.fixed)
    if obj.percent:
        out["percent"] = _plain_percent(obj.percent)
    if obj.min is not None:
        out["min"] = money(obj.min)
    if obj.max is not None:
        out["max"] = money(obj.max)
    return out


def _reject_unknown(data: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise TariffError(f"{prefix}{key} is not a known field (allowed: {', '.join(allowed)})")


def _parse_money(value: object, currency: str, field: str) -> int:
    if isinstance(value, float):
        raise TariffError(f'{field} must be a decimal string such as "1.50", not a float (inexact)')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TariffError(f'{field} must be a decimal string such as "1.50"')
    try:
        return parse_amount(value, currency, allow_zero=True)
    except MoneyError as exc:
        raise TariffError(f"{field}: {exc}") from None


def _parse_optional_money(value: object, currency: str, field: str) -> int | None:
    return None if value is None else _parse_money(value, currency, field)


def _parse_percent(value: object, field: str) -> Decimal:
    """A percent from a plain decimal string (``"1.5"``), an int or a Decimal; never from a float."""
    if isinstance(value, float):
        raise TariffError(f'{field} must be a decimal string such as "1.5", not a float (inexact)')
    if isinstance(value, bool):
        raise TariffError(f'{field} must be a decimal string such as "1.5"')
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        if not _PERCENT_RE.match(value):
            raise TariffError(f'{field} {value!r} is not a plain decimal number such as "1.5"')
        result = Decimal(value)
    else:
        raise TariffError(f'{field} must be a decimal string such as "1.5"')
    if not result.is_finite() or not 0 <= result <= 100:
        raise TariffError(f"{field} must be between 0 and 100, got {value!r}")
    if "." in (plain := _plain_percent(result)) and len(plain.split(".")[1]) > PERCENT_MAX_PLACES:
        raise TariffError(f"{field} may have at most {PERCENT_MAX_PLACES} decimal places")
    return result
