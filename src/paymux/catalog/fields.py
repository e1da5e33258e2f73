"""Field types shared by the catalog file's models (``catalog.schemas``) and the inbound gateways'
(``gateways.schemas``): codes, amounts as decimal strings, currencies, and a base model that refuses
unknown keys naming the allowed ones. Imports nothing of either, so both can use it."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

from paymux.money import MoneyError, check_currency

_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")


@lru_cache(maxsize=1024)
def catalog_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern of the catalog (a service's ``account_pattern``, a field's ``pattern``), compiled with
    ASCII semantics: ``\\d`` is 0-9 only, ``\\w`` and ``\\s`` ASCII only (by default Python's are
    Unicode, and ``\\d`` would take Arabic-Indic or full-width digits). Raises re.error."""
    return re.compile(pattern, re.ASCII)


def _code(value: object) -> object:
    """A code: letters, digits and ``_ . : -``; a YAML integer (``code: 42``) is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not _CODE_RE.match(value):
        raise ValueError(
            f"code {value!r} must be 1-64 letters, digits or '_', '.', ':', '-', "
            "starting with a letter or digit"
        )
    return value


def _amount(value: object) -> object:
    """A decimal string in major units; an int is accepted, a float never (it is inexact)."""
    if isinstance(value, float):
        raise ValueError(f'write amounts as quoted decimal strings such as "{value}" (a float is inexact)')
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _currency(value: object) -> object:
    if isinstance(value, str):
        try:
            check_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
    return value


Code = Annotated[str, BeforeValidator(_code)]
Amount = Annotated[str, BeforeValidator(_amount)]
Currency = Annotated[str, BeforeValidator(_currency)]


class StrictIn(BaseModel):
    """Unknown keys are an error that names the allowed ones, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                names = ", ".join(repr(k) for k in unknown)
                allowed = ", ".join(cls.model_fields)
                raise ValueError(f"unknown field {names} (allowed: {allowed})")
        return data
