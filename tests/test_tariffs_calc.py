"""Example and property tests of paymux.tariffs.calc."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymux.money import CURRENCIES, ROUNDING_MODES
from paymux.tariffs.calc import (
    TariffError,
    TariffRule,
    Tier,
    compute,
    parse_rule,
    rule_from_json,
    rule_to_dict,
    rule_to_json,
    select_tier,
)

D = Decimal

# --- compute: examples ---------------------------------------------------------------------------------


def test_empty_rule_charges_nothing() -> None:
    assert compute(TariffRule(), 0) == 0
    assert compute(TariffRule(), 12345) == 0


def test_fixed_only() -> None:
    rule = TariffRule(fixed=100)
    assert compute(rule, 0) == 100
    assert compute(rule, 1) == 100
    assert compute(rule, 10**12) == 100


def test_percent_only() -> None:
    rule = TariffRule(percent=D("1.5"))
    assert compute(rule, 10000) == 150
    assert compute(rule, 0) == 0
    assert compute(rule, 1) == 0  # 0.015 rounds half_up to 0


def test_fixed_plus_percent() -> None:
    rule = TariffRule(fixed=30, percent=D("2.9"))
    assert compute(rule, 10000) == 320
    assert compute(rule, 0) == 30


def test_percent_100_is_whole_amount() -> None:
    assert compute(TariffRule(percent=D(100)), 98765) == 98765


def test_min_clamps_up() -> None:
    rule = TariffRule(percent=D(1), min=50)
    assert compute(rule, 100) == 50
    assert compute(rule, 0) == 50
    assert compute(rule, 10000) == 100


def test_max_clamps_down() -> None:
    rule = TariffRule(percent=D(1), max=500)
    assert compute(rule, 10000) == 100
    assert compute(rule, 1_000_000) == 500


def test_min_equals_max_is_flat() -> None:
    rule = TariffRule(percent=D(3), min=70, max=70)
    assert {compute(rule, a) for a in (0, 1, 10**6)} == {70}


@pytest.mark.parametrize(
    ("mode", "on_1_5", "on_2_5"),
    [
        ("half_up", 2, 3),
        ("half_even", 2, 2),
        ("down", 1, 2),
        ("up", 2, 3),
        ("floor", 1, 2),
        ("ceiling", 2, 3),
    ],
)
def test_rounding_modes_on_half(mode: str, on_1_5: int, on_2_5: int) -> None:
    # 1.5 % of 100 = 1.5 minor units; 0.5 % of 500 = 2.5 minor units
    assert compute(TariffRule(percent=D("1.5"), rounding=mode), 100) == on_1_5
    assert compute(TariffRule(percent=D("0.5"), rounding=mode), 500) == on_2_5


def test_rounding_is_applied_once_to_percent_part_only() -> None:
    # 0.4 + fixed 10: rounding the percent part gives 10 for half_up; the fixed part is never rounded
    assert compute(TariffRule(fixed=10, percent=D("0.4"), rounding="half_up"), 100) == 10
    assert compute(TariffRule(fixed=10, percent=D("0.4"), rounding="up"), 100) == 11


def test_rounding_default_is_half_up() -> None:
    assert TariffRule().rounding == "half_up"


def _tiered() -> TariffRule:
    return TariffRule(
        tiers=(
            Tier(from_amount=0, percent=D(2)),
            Tier(from_amount=100_000, fixed=500, percent=D("1.5")),
            Tier(from_amount=1_000_000, percent=D(1), min=12_000, max=20_000),
        ),
        min=50,
        max=18_000,
    )


def test_select_tier() -> None:
    rule = _tiered()
    assert select_tier(TariffRule(), 100) is None
    assert select_tier(rule, 0) is rule.tiers[0]
    assert select_tier(rule, 99_999) is rule.tiers[0]
    assert select_tier(rule, 100_000) is rule.tiers[1]
    assert select_tier(rule, 999_999) is rule.tiers[1]
    assert select_tier(rule, 1_000_000) is rule.tiers[2]
    assert select_tier(rule, 10**15) is rule.tiers[2]


def test_tiers() -> None:
    rule = _tiered()
    assert compute(rule, 0) == 50  # 0 -> rule min
    assert compute(rule, 10_000) == 200  # 2 %
    assert compute(rule, 99_999) == 2000  # 1999.98 -> 2000
    assert compute(rule, 100_000) == 2000  # 500 + 1.5 %
    assert compute(rule, 200_000) == 3500
    assert compute(rule, 1_000_000) == 12_000  # 1 % = 10000 -> tier min 12000
    assert compute(rule, 1_500_000) == 15_000
    assert compute(rule, 1_900_000) == 18_000  # 19000, tier max 20000, then rule max 18000
    assert compute(rule, 5_000_000) == 18_000  # tier max 20000, then rule max 18000


def test_tiers_replace_top_level_fixed_and_percent() -> None:
    rule = TariffRule(fixed=999, percent=D(50), tiers=(Tier(from_amount=0, fixed=1),))
    assert compute(rule, 10_000) == 1


def test_huge_amount_is_exact() -> None:
    amount = 10**30 + 7
    rule = TariffRule(percent=D("1.2345678901"), rounding="down")
    exact = Fraction(amount) * Fraction(D("1.2345678901")) / 100
    assert compute(rule, amount) == int(exact)  # floor for positive values


def test_compute_rejects_bad_amounts() -> None:
    with pytest.raises(ValueError, match="negative"):
        compute(TariffRule(), -1)
    with pytest.raises(TypeError):
        compute(TariffRule(), True)
    with pytest.raises(TypeError):
        compute(TariffRule(), 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compute(TariffRule(), D(1))  # type: ignore[arg-type]


# --- the dataclasses validate themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed": -1}, "fixed must not be negative"),
        ({"fixed": True}, "fixed must be an int"),
        ({"percent": D(-1)}, "percent must be between 0 and 100"),
        ({"percent": D("100.01")}, "percent must be between 0 and 100"),
        ({"percent": D("NaN")}, "percent must be between 0 and 100"),
        ({"percent": D("Infinity")}, "percent must be between 0 and 100"),
        ({"percent": D("0.00000000001")}, "at most 10 decimal places"),
        ({"percent": 1.5}, "percent must be a Decimal"),
        ({"min": 10, "max": 5}, "min must not be greater than max"),
        ({"min": -1}, "min must not be negative"),
        ({"rounding": "bankers"}, "rounding must be one of"),
        ({"tiers": (Tier(from_amount=5),)}, r"tiers\[0\]\.from must be 0"),
        ({"tiers": (Tier(0), Tier(10), Tier(10))}, r"tiers\[2\]\.from must be greater than tiers\[1\]\.from"),
        ({"tiers": (Tier(0, min=3, max=2),)}, r"tiers\[0\]\.min must not be greater than tiers\[0\]\.max"),
        ({"tiers": (Tier(0, fixed=-5),)}, r"tiers\[0\]\.fixed must not be negative"),
        ({"tiers": ("x",)}, r"tiers\[0\] must be a Tier"),
    ],
)
def test_rule_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError, match=message):
        TariffRule(**kwargs)


def test_rule_normalizes_int_percent_and_list_tiers() -> None:
    rule = TariffRule(percent=2, tiers=[Tier(0, percent=3)])  # type: ignore[arg-type]
    assert isinstance(rule.percent, Decimal)
    assert isinstance(rule.tiers, tuple)
    assert isinstance(rule.tiers[0].percent, Decimal)
    assert rule == TariffRule(percent=D(2), tiers=(Tier(0, percent=D(3)),))
    hash(rule)


# --- parse_rule / rule_to_dict -------------------------------------------------------------------------

SPEC_EXAMPLE: dict[str, Any] = {
    "fixed": "1.00",
    "percent": "1.5",
    "min": "0.50",
    "max": "100.00",
    "rounding": "half_up",
    "tiers": [{"from": "0", "percent": "2"}, {"from": "1000.00", "percent": "1.5", "fixed": "5.00"}],
}


def test_parse_rule_example() -> None:
    rule = parse_rule(SPEC_EXAMPLE, "USD")
    assert rule == TariffRule(
        fixed=100,
        percent=D("1.5"),
        min=50,
        max=10000,
        rounding="half_up",
        tiers=(Tier(from_amount=0, percent=D(2)), Tier(from_amount=100000, fixed=500, percent=D("1.5"))),
    )
    assert compute(rule, 10_000) == 200  # tier 0: 2 % of 100.00
    assert compute(rule, 100_000) == 2000  # tier 1: 5.00 + 1.5 % of 1000.00
    assert compute(rule, 1_000) == 50  # 0.20 -> min 0.50


def test_parse_rule_currency_exponent() -> None:
    assert parse_rule({"fixed": "100"}, "JPY").fixed == 100
    assert parse_rule({"fixed": "1.234"}, "KWD").fixed == 1234
    assert parse_rule({"fixed": 2}, "USD").fixed == 200  # int means major units
    assert parse_rule({"min": "0"}, "USD").min == 0
    assert parse_rule({}, "USD") == TariffRule()
    assert parse_rule({"tiers": []}, "USD") == TariffRule()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.5", D("1.5")), ("0", D(0)), ("100", D(100)), ("100.000", D(100)), (7, D(7)), (D("2.25"), D("2.25"))],
)
def test_parse_rule_percent_forms(value: object, expected: Decimal) -> None:
    assert parse_rule({"percent": value}, "USD").percent == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bogus": "1"}, "bogus is not a known field"),
        ({"tiers": [{"from": "0", "percentage": "1"}]}, r"tiers\[0\]\.percentage is not a known field"),
        ({"tiers": [{"percent": "1"}]}, r"tiers\[0\]\.from is required"),
        ({"tiers": [{"from": "1.00"}]}, r"tiers\[0\]\.from must be 0"),
        (
            {"tiers": [{"from": "0"}, {"from": "10.00"}, {"from": "10.00"}]},
            r"^tiers\[2\]\.from must be greater than tiers\[1\]\.from$",
        ),
        ({"tiers": [{"from": "0"}, {"from": "10.00"}, {"from": "5"}]}, r"tiers\[2\]\.from must be greater"),
        ({"tiers": "0"}, "tiers must be a list"),
        ({"tiers": {"from": "0"}}, "tiers must be a list"),
        ({"tiers": ["0"]}, r"tiers\[0\] must be a mapping"),
        ({"min": "2.00", "max": "1.00"}, "min must not be greater than max"),
        ({"tiers": [{"from": "0", "min": "2.00", "max": "1.00"}]}, r"tiers\[0\]\.min must not be greater"),
        ({"percent": "100.5"}, "percent must be between 0 and 100"),
        ({"percent": 101}, "percent must be between 0 and 100"),
        ({"percent": 1.5}, "percent must be a decimal string .* not a float"),
        ({"percent": "1e2"}, "percent '1e2' is not a plain decimal"),
        ({"percent": "1E-1"}, "not a plain decimal"),
        ({"percent": "NaN"}, "not a plain decimal"),
        ({"percent": "Infinity"}, "not a plain decimal"),
        ({"percent": "-1"}, "not a plain decimal"),
        ({"percent": " 1.5"}, "not a plain decimal"),
        ({"percent": "1,5"}, "not a plain decimal"),
        ({"percent": ""}, "not a plain decimal"),
        ({"percent": "0.00000000001"}, "at most 10 decimal places"),
        ({"percent": D("NaN")}, "percent must be between 0 and 100"),
        ({"percent": True}, "percent must be a decimal string"),
        ({"percent": None}, "percent must be a decimal string"),
        ({"fixed": 1.0}, "fixed must be a decimal string .* not a float"),
        ({"fixed": "1.001"}, "fixed: .*more than 2 decimal places"),
        ({"fixed": "-1.00"}, "fixed: .*not a decimal number"),
        ({"fixed": "1e3"}, "fixed: .*not a decimal number"),
        ({"fixed": None}, "fixed must be a decimal string"),
        ({"max": "1,00"}, "max: .*not a decimal number"),
        ({"tiers": [{"from": 0.0}]}, r"tiers\[0\]\.from must be a decimal string .* not a float"),
        ({"tiers": [{"from": "0", "fixed": "0.001"}]}, r"tiers\[0\]\.fixed: .*decimal places"),
        ({"rounding": "bankers"}, "rounding must be one of"),
        ({"rounding": 1}, "rounding must be one of"),
    ],
)
def test_parse_rule_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError, match=message):
        parse_rule(data, "USD")


def test_parse_rule_rejects_non_mapping_and_unknown_currency() -> None:
    with pytest.raises(TariffError, match="must be a mapping"):
        parse_rule([("fixed", "1")], "USD")  # type: ignore[arg-type]
    with pytest.raises(TariffError, match="unknown currency"):
        parse_rule({"fixed": "1"}, "XXX")


def test_tariff_error_is_value_error() -> None:
    assert issubclass(TariffError, ValueError)


def test_rule_to_dict_example() -> None:
    rule = parse_rule(SPEC_EXAMPLE, "USD")
    assert rule_to_dict(rule, "USD") == {
        "fixed": "1.00",
        "percent": "1.5",
        "min": "0.50",
        "max": "100.00",
        "tiers": [{"from": "0.00", "percent": "2"}, {"from": "1000.00", "fixed": "5.00", "percent": "1.5"}],
    }
    assert rule_to_dict(TariffRule(), "USD") == {}
    assert rule_to_dict(TariffRule(fixed=5, rounding="down"), "JPY") == {"fixed": "5", "rounding": "down"}
    assert rule_to_dict(TariffRule(percent=D("1.500")), "USD") == {"percent": "1.5"}
    assert rule_to_dict(TariffRule(percent=D("1E+2")), "USD") == {"percent": "100"}
    assert rule_to_dict(TariffRule(percent=D("0.0000000001")), "USD") == {"percent": "0.0000000001"}
    assert rule_to_dict(TariffRule(min=0), "KWD") == {"min": "0.000"}


# --- rule_to_json / rule_from_json ---------------------------------------------------------------------


def test_rule_to_json_example() -> None:
    rule = parse_rule(SPEC_EXAMPLE, "USD")
    assert rule_to_json(rule) == {
        "fixed": 100,
        "percent": "1.5",
        "min": 50,
        "max": 10000,
        "rounding": "half_up",
        "tiers": [
            {"from": 0, "fixed": 0, "percent": "2", "min": None, "max": None},
            {"from": 100000, "fixed": 500, "percent": "1.5", "min": None, "max": None},
        ],
    }
    assert rule_from_json(rule_to_json(rule)) == rule


def test_rule_from_json_defaults() -> None:
    assert rule_from_json({}) == TariffRule()
    assert rule_from_json({"percent": "2", "tiers": None}) == TariffRule(percent=D(2))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"extra": 1}, "extra is not a known field"),
        ({"fixed": "100"}, "fixed must be an int"),
        ({"fixed": True}, "fixed must be an int"),
        ({"fixed": -1}, "fixed must not be negative"),
        ({"percent": 1.5}, "not a float"),
        ({"percent": "1e2"}, "not a plain decimal"),
        ({"min": 5, "max": 4}, "min must not be greater than max"),
        ({"tiers": [{"from": 1}]}, r"tiers\[0\]\.from must be 0"),
        ({"tiers": [{"fixed": 1}]}, r"tiers\[0\]\.from is required"),
        ({"tiers": [{"from": 0, "x": 1}]}, r"tiers\[0\]\.x is not a known field"),
        ({"tiers": [{"from": 0, "max": 1.5}]}, r"tiers\[0\]\.max must be an int"),
        ({"tiers": "x"}, "tiers must be a list"),
        ({"rounding": "nearest"}, "rounding must be one of"),
    ],
)
def test_rule_from_json_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError, match=message):
        rule_from_json(data)


# --- properties ----------------------------------------------------------------------------------------

MONEY_MAX = 10**12  # minor units; fits parse_amount's 15 integer digits for every currency
amounts = st.integers(min_value=0, max_value=10**15)
moneys = st.integers(min_value=0, max_value=MONEY_MAX)
roundings = st.sampled_from(sorted(ROUNDING_MODES))


@st.composite
def percents(draw: st.DrawFn) -> Decimal:
    places = draw(st.integers(min_value=0, max_value=10))
    units = draw(st.integers(min_value=0, max_value=100 * 10**places))
    return Decimal(units) / Decimal(10**places)  # exact: at most 13 significant digits


@st.composite
def clamps(draw: st.DrawFn) -> tuple[int | None, int | None]:
    low = draw(st.none() | moneys)
    high = draw(st.none() | moneys)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return low, high


@st.composite
def tier_lists(draw: st.DrawFn, *, with_clamps: bool = True, max_size: int = 4) -> tuple[Tier, ...]:
    starts = draw(st.lists(st.integers(min_value=1, max_value=MONEY_MAX), unique=True, max_size=max_size - 1))
    tiers = []
    for start in [0, *sorted(starts)]:
        low, high = draw(clamps()) if with_clamps else (None, None)
        tiers.append(Tier(from_amount=start, fixed=draw(moneys), percent=draw(percents()), min=low, max=high))
    return tuple(tiers)


@st.composite
def rules(draw: st.DrawFn) -> TariffRule:
    low, high = draw(clamps())
    tiers = draw(st.just(()) | tier_lists())
    return TariffRule(
        fixed=draw(moneys),
        percent=draw(percents()),
        min=low,
        max=high,
        tiers=tiers,
        rounding=draw(roundings),
    )


def _exact(fixed: int, percent: Decimal, amount: int) -> Fraction:
    return Fraction(fixed) + Fraction(amount) * Fraction(percent) / 100


@settings(max_examples=200)
@given(rules(), amounts)
def test_result_is_non_negative_int_within_bounds(rule: TariffRule, amount: int) -> None:
    fee = compute(rule, amount)
    assert type(fee) is int
    assert fee >= 0
    if rule.min is not None:
        assert fee >= rule.min
    if rule.max is not None:
        assert fee <= rule.max


@settings(max_examples=200)
@given(moneys, percents(), amounts)
def test_rounding_neither_creates_nor_loses_money(fixed: int, percent: Decimal, amount: int) -> None:
    def fee(mode: str) -> int:
        return compute(TariffRule(fixed=fixed, percent=percent, rounding=mode), amount)

    exact = _exact(fixed, percent, amount)
    down, up = fee("down"), fee("up")
    assert down <= exact <= up
    assert up - down <= 1
    assert (up == down) == (exact.denominator == 1)
    assert fee("floor") == down and fee("ceiling") == up  # amounts are never negative
    assert abs(fee("half_up") - exact) <= Fraction(1, 2)
    assert abs(fee("half_even") - exact) <= Fraction(1, 2)


@settings(max_examples=200)
@given(percents(), roundings, clamps(), amounts, amounts)
def test_percent_only_is_monotone(
    percent: Decimal, rounding: str, bounds: tuple[int | None, int | None], a1: int, a2: int
) -> None:
    a1, a2 = sorted((a1, a2))
    rule = TariffRule(percent=percent, rounding=rounding, min=bounds[0], max=bounds[1])
    assert compute(rule, a1) <= compute(rule, a2)


@settings(max_examples=200)
@given(tier_lists(), amounts, amounts)
def test_tier_selection_is_monotone(tiers: tuple[Tier, ...], a1: int, a2: int) -> None:
    a1, a2 = sorted((a1, a2))
    rule = TariffRule(tiers=tiers)
    t1, t2 = select_tier(rule, a1), select_tier(rule, a2)
    assert t1 is not None and t2 is not None
    assert t1.from_amount <= a1 and t2.from_amount <= a2
    assert rule.tiers.index(t1) <= rule.tiers.index(t2)
    # it is the last tier that starts at or below the amount
    assert all(t.from_amount > a2 for t in rule.tiers[rule.tiers.index(t2) + 1 :])


@st.composite
def non_decreasing_tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    shape = draw(tier_lists(with_clamps=False))
    fixeds = sorted(t.fixed for t in shape)
    pcts = sorted(t.percent for t in shape)
    return tuple(
        Tier(from_amount=t.from_amount, fixed=f, percent=p)
        for t, f, p in zip(shape, fixeds, pcts, strict=True)
    )


@settings(max_examples=200)
@given(non_decreasing_tiers(), roundings, clamps(), amounts, amounts)
def test_tiered_fee_is_monotone_when_tiers_do_not_get_cheaper(
    tiers: tuple[Tier, ...], rounding: str, bounds: tuple[int | None, int | None], a1: int, a2: int
) -> None:
    a1, a2 = sorted((a1, a2))
    rule = TariffRule(tiers=tiers, rounding=rounding, min=bounds[0], max=bounds[1])
    assert compute(rule, a1) <= compute(rule, a2)


@settings(max_examples=200)
@given(rules(), amounts)
def test_tiered_fee_equals_the_selected_tier_alone(rule: TariffRule, amount: int) -> None:
    tier = select_tier(rule, amount)
    if tier is None:
        return
    alone = TariffRule(
        fixed=tier.fixed, percent=tier.percent, min=tier.min, max=tier.max, rounding=rule.rounding
    )
    expected = compute(alone, amount)
    if rule.min is not None:
        expected = max(expected, rule.min)
    if rule.max is not None:
        expected = min(expected, rule.max)
    assert compute(rule, amount) == expected


@settings(max_examples=200)
@given(rules(), st.sampled_from(sorted(CURRENCIES)))
def test_user_form_round_trip(rule: TariffRule, currency: str) -> None:
    data = rule_to_dict(rule, currency)
    assert parse_rule(data, currency) == rule
    # the user-facing form never holds ints or floats, only strings (and the tier list)
    assert all(isinstance(v, str | list) for v in data.values())


@settings(max_examples=200)
@given(rules())
def test_storage_form_round_trip(rule: TariffRule) -> None:
    stored = rule_to_json(rule)
    restored = rule_from_json(stored)
    assert restored == rule
    assert rule_to_json(restored) == stored
    assert isinstance(stored["percent"], str)
