"""ISO 11649 RF creditor references: made references are valid and round-trip; changing one digit (or
letter) for another of its kind, or swapping two neighbouring digits (or letters), is caught (ISO 7064
mod 97-10)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.invoices.reference import rf_from, rf_normal, rf_print, rf_valid
from paymux.invoices.service import reference_for

ALNUM = string.digits + string.ascii_uppercase
bases = st.text(alphabet=ALNUM, min_size=1, max_size=21)


def test_published_examples() -> None:
    # ISO 11649's example and its printed form
    assert rf_from("539007547034") == "RF18539007547034"
    assert rf_valid("RF18 5390 0754 7034") and rf_valid("rf18539007547034")
    assert rf_print("RF18539007547034") == "RF18 5390 0754 7034"
    for bad in ("RF19539007547034", "RF18", "RF1853900754703", "XX18539007547034", "", None, 18, "RF18-5390"):
        assert not rf_valid(bad), bad


@given(bases)
def test_round_trip(base: str) -> None:
    ref = rf_from(base)
    assert rf_valid(ref) and ref[4:] == base and len(ref) <= 25
    assert rf_valid(rf_print(ref)) and rf_normal(rf_print(ref).lower()) == ref


@given(bases, st.data())
def test_one_changed_character_is_caught(base: str, data: st.DataObject) -> None:
    ref = rf_from(base)
    i = data.draw(st.integers(min_value=2, max_value=len(ref) - 1))
    # a digit for a digit, a letter for a letter (a letter is two digits: "F8" and "FG" may agree)
    alphabet = string.digits if ref[i].isdigit() else string.ascii_uppercase
    c = data.draw(st.sampled_from(alphabet).filter(lambda x: x != ref[i]))
    assert not rf_valid(ref[:i] + c + ref[i + 1 :])


@given(bases, st.data())
def test_swapped_neighbours_are_caught(base: str, data: st.DataObject) -> None:
    ref = rf_from(base)
    if len(ref) < 6:
        return
    i = data.draw(st.integers(min_value=4, max_value=len(ref) - 2))
    if ref[i] == ref[i + 1] or ref[i].isdigit() != ref[i + 1].isdigit():
        return  # a digit swapped with a letter can read the same ("2" "M" -> 2 22, "M" "2" -> 22 2)
    assert not rf_valid(ref[:i] + ref[i + 1] + ref[i] + ref[i + 2 :])


@pytest.mark.parametrize("base", ["", "A" * 22, "ÄBC", "A-B"])
def test_bad_bases_refused(base: str) -> None:
    with pytest.raises(ValueError):
        rf_from(base)


@given(
    st.integers(min_value=1, max_value=2**40),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True),
)
def test_made_for_any_invoice_number(biller: int, number: str) -> None:
    ref = reference_for(biller, number)
    assert rf_valid(ref)
