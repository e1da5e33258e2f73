"""Unit and property tests of paymux.money: exact parsing, formatting and rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymux.money import (
    CURRENCIES,
    ROUNDING_MODES,
    MoneyError,
    check_currency,
    exponent,
    format_amount,
    parse_amount,
    round_minor,
    to_decimal,
)

# --- parse_amount ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("150.00", "RUB", 15000),
        ("150", "RUB", 15000),
        ("150.0", "RUB", 15000),
        ("0.5", "RUB", 50),
        ("0.01", "USD", 1),
        ("999999999999999.99", "USD", 99999999999999999),
        ("100", "JPY", 100),
        ("1.234", "KWD", 1234),
        ("1.2", "KWD", 1200),
        ("0.001", "BHD", 1),
        ("007.50", "EUR", 750),
        (150, "RUB", 15000),
        (100, "JPY", 100),
    ],
)
def test_parse_amount_exact(text: str | int, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("100.5", "JPY"),
        ("100.", "JPY"),
        ("1.001", "USD"),
        ("1.000", "USD"),  # more decimal places than the currency has, even if they are zeros
        ("1.2345", "KWD"),
    ],
)
def test_parse_amount_rejects_too_many_decimals(text: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, currency)


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "-1.00",
        "+1",
        "1e3",
        "1E3",
        " 1",
        "1 ",
        "1\n",
        "1,5",
        "1 000",
        "1_000",
        "",
        ".5",
        "1.",
        "NaN",
        "Infinity",
        "0x10",
        "١٥٠",  # Arabic-Indic digits
        "1234567890123456",  # more than 15 integer digits
        -1,
    ],
)
def test_parse_amount_rejects_malformed(text: str | int) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, "USD")


@pytest.mark.parametrize("value", [1.5, 150.0, Decimal("1.50"), True, None, b"1.00", ["1"]])
def test_parse_amount_rejects_non_string_types(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0", "0.00", "0.0", 0])
def test_parse_amount_zero_needs_allow_zero(text: str | int) -> None:
    with pytest.raises(MoneyError, match="greater than zero"):
        parse_amount(text, "USD")
    assert parse_amount(text, "USD", allow_zero=True) == 0


@pytest.mark.parametrize("currency", ["XXX", "usd", "", "US", "USDX"])
def test_unknown_currency_rejected(currency: str) -> None:
    with pytest.raises(MoneyError, match="unknown currency"):
        parse_amount("1.00", currency)
    with pytest.raises(MoneyError):
        format_amount(100, currency)
    with pytest.raises(MoneyError):
        check_currency(currency)


def test_money_error_is_value_error() -> None:
    assert issubclass(MoneyError, ValueError)


def test_exponent_and_check_currency() -> None:
    assert exponent("USD") == 2
    assert exponent("JPY") == 0
    assert exponent("KWD") == 3
    assert check_currency("EUR") == "EUR"


# --- format_amount / to_decimal ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (15000, "RUB", "150.00"),
        (1, "USD", "0.01"),
        (0, "USD", "0.00"),
        (5, "USD", "0.05"),
        (-1, "USD", "-0.01"),
        (-15000, "RUB", "-150.00"),
        (100, "JPY", "100"),
        (0, "JPY", "0"),
        (-7, "JPY", "-7"),
        (1234, "KWD", "1.234"),
        (1, "KWD", "0.001"),
        (-1001, "KWD", "-1.001"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


def test_to_decimal() -> None:
    assert to_decimal(15000, "RUB") == Decimal("150.00")
    assert to_decimal(100, "JPY") == Decimal(100)
    assert to_decimal(1, "KWD") == Decimal("0.001")


# --- round_minor ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # values:        2.5, 3.5, 2.4, 2.6, -2.5, 2.0
        ("half_up", [3, 4, 2, 3, -3, 2]),
        ("half_even", [2, 4, 2, 3, -2, 2]),
        ("down", [2, 3, 2, 2, -2, 2]),
        ("up", [3, 4, 3, 3, -3, 2]),
        ("floor", [2, 3, 2, 2, -3, 2]),
        ("ceiling", [3, 4, 3, 3, -2, 2]),
    ],
)
def test_round_minor_modes(mode: str, expected: list[int]) -> None:
    values = [Decimal(v) for v in ("2.5", "3.5", "2.4", "2.6", "-2.5", "2.0")]
    assert [round_minor(v, mode) for v in values] == expected


def test_round_minor_default_is_half_up() -> None:
    assert round_minor(Decimal("0.5")) == 1
    assert round_minor(Decimal("0.4999999999")) == 0


def test_round_minor_returns_int() -> None:
    result = round_minor(Decimal("12.75"), "down")
    assert type(result) is int
    assert result == 12


def test_round_minor_unknown_mode() -> None:
    with pytest.raises(MoneyError, match="unknown rounding mode"):
        round_minor(Decimal("1.5"), "bankers")


def test_rounding_modes_listed() -> None:
    assert set(ROUNDING_MODES) == {"half_up", "half_even", "down", "up", "floor", "ceiling"}


# --- properties ----------------------------------------------------------------------------------------

_currencies = st.sampled_from(sorted(CURRENCIES))


@st.composite
def _currency_and_minor(draw: st.DrawFn) -> tuple[str, int]:
    currency = draw(_currencies)
    # parse_amount accepts at most 15 integer digits of major units
    minor = draw(st.integers(min_value=0, max_value=10 ** (15 + CURRENCIES[currency]) - 1))
    return currency, minor


@settings(max_examples=300)
@given(_currency_and_minor())
def test_format_parse_round_trip(case: tuple[str, int]) -> None:
    currency, minor = case
    text = format_amount(minor, currency)
    assert parse_amount(text, currency, allow_zero=True) == minor
    assert to_decimal(minor, currency) == Decimal(text)


@settings(max_examples=200)
@given(_currency_and_minor())
def test_format_negative_mirrors_positive(case: tuple[str, int]) -> None:
    currency, minor = case
    if minor:
        assert format_amount(-minor, currency) == "-" + format_amount(minor, currency)


@settings(max_examples=200)
@given(
    _currencies,
    st.integers(min_value=0, max_value=10**15 - 1),
    st.text(alphabet="0123456789", min_size=0, max_size=3),
)
def test_parse_format_round_trip_canonical(currency: str, major: int, frac: str) -> None:
    digits = CURRENCIES[currency]
    frac = frac[:digits]
    text = f"{major}.{frac}" if frac else str(major)
    minor = parse_amount(text, currency, allow_zero=True)
    assert to_decimal(minor, currency) == Decimal(text)
    # the canonical form has exactly `digits` decimals
    canonical = format_amount(minor, currency)
    assert Decimal(canonical) == Decimal(text)
    assert (canonical.partition(".")[2] if digits else "") == frac.ljust(digits, "0")[:digits]


@settings(max_examples=200)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=4),
)
def test_round_minor_brackets_value(value: Decimal) -> None:
    down, up = round_minor(value, "floor"), round_minor(value, "ceiling")
    assert down <= value <= up
    assert up - down <= 1
    for mode in ("half_up", "half_even"):
        assert abs(round_minor(value, mode) - value) <= Decimal("0.5")


def test_excel_format_shows_the_currencys_decimals() -> None:
    from paymux.money import excel_format

    assert (excel_format("RUB"), excel_format("JPY"), excel_format("KWD")) == (
        "#,##0.00",
        "#,##0",
        "#,##0.000",
    )
