"""The ISO 8583 listener's configuration: the terminals and the field map (a YAML file).

::

    fields:                 # the field map: which data element carries what
      account: 103          # the payer's account at the biller (Account identification 2)
      service: 48           # the service (Additional data, private); omit to use a default
      extra: {}             # the service's extra fields: name -> data element number
    service_codes: {}       # a code found in the service field -> the catalog's service code
    default_service: null   # the service when the message names none (a terminal's own first)
    processing_codes: ["50"]  # field 3 must start with one of these (50: payment services)
    terminals:
      - terminal: "ATM00001"       # field 41 (card acceptor terminal id)
        merchant: "MERCHANT000001"  # field 42 (card acceptor id code); omitted: any
        channel: term               # the catalog channel the terminal pays through
        service: topup              # optional: its default service

A terminal is known by field 41; when its entry names a merchant, field 42 must carry it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# data elements the listener reads itself: the field map may not point elsewhere at them
RESERVED_FIELDS = frozenset({1, 2, 3, 4, 7, 11, 12, 13, 35, 37, 38, 39, 41, 42, 49, 52, 55, 70, 90})


class ConfigError(ValueError):
    """An ISO 8583 configuration that cannot be used."""


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: int = Field(default=103, ge=2, le=128)
    service: int | None = Field(default=48, ge=2, le=128)
    extra: dict[str, Annotated[int, Field(ge=2, le=128)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _distinct(self) -> FieldMap:
        used = [self.account, *([self.service] if self.service is not None else []), *self.extra.values()]
        for number in used:
            if number in RESERVED_FIELDS:
                raise ValueError(f"field {number} is read by the listener itself and cannot be mapped")
            if not 2 <= number <= 128:
                raise ValueError(f"field {number} is not a data element (2..128)")
        if len(set(used)) != len(used):
            raise ValueError("the field map names one data element twice")
        return self


class Terminal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terminal: str = Field(min_length=1, max_length=8)
    merchant: str | None = Field(default=None, min_length=1, max_length=15)
    channel: str = Field(min_length=1, max_length=64)
    service: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("terminal", "merchant")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and (not v.isprintable() or not v.isascii()):
            raise ValueError("terminal and merchant ids are printable ASCII")
        return v.rstrip() if v is not None else None


class Iso8583Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: FieldMap = Field(default_factory=FieldMap)
    service_codes: dict[str, str] = Field(default_factory=dict)
    default_service: str | None = None
    processing_codes: list[str] = Field(default_factory=lambda: ["50"])
    terminals: list[Terminal] = Field(default_factory=list)

    @field_validator("processing_codes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        for code in v:
            if not (code.isdigit() and code.isascii() and 1 <= len(code) <= 6):
                raise ValueError(f"processing code prefix {code!r} is not 1 to 6 digits")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Iso8583Config:
        seen: set[str] = set()
        for t in self.terminals:
            if t.terminal in seen:
                raise ValueError(f"terminal {t.terminal!r} is listed twice")
            seen.add(t.terminal)
        return self

    def terminal(self, terminal_id: str) -> Terminal | None:
        tid = terminal_id.rstrip()
        return next((t for t in self.terminals if t.terminal == tid), None)


def parse_config(data: Any) -> Iso8583Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the ISO 8583 configuration must be a mapping")
    try:
        return Iso8583Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid ISO 8583 configuration: {e}") from None


def load_config(path: str | Path | None) -> Iso8583Config:
    """The configuration in ``path`` (YAML), or the defaults (no terminal) without one."""
    if path is None:
        return Iso8583Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the ISO 8583 configuration {path}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not YAML: {e}") from None
    return parse_config(data)
