"""What every route accepts as an id, a count or a piece of text, checked where the request comes in.

- **ids** (``Id``): database ids are 64-bit signed integers, so an id is a whole number from 1 to
  2^63-1 (``MAX_ID``); a larger one would not fit the database's integer and is refused (422) before
  any query runs. Every path, query, form and body id of the API and the back office uses ``Id``;
  offsets and other counts use ``Count`` (0 to ``MAX_ID``). ``tests/test_bad_input.py`` checks that
  no integer parameter of any route is left unbounded.
- **control characters** (C0, DEL and C1: ``\\x00``-``\\x1f``, ``\\x7f``-``\\x9f``) are refused in
  identifiers and filters: in every path and query string by the request edge (``api/edge.py``,
  ``control_characters``), in body fields by ``Ident``. PostgreSQL cannot store a NUL at all, and none
  of them belongs in an identifier.
- numbers typed as text (back-office forms and filters, ids named by number) are read by
  ``parse_id`` and ``ascii_digits``: ASCII digits only (``str.isdigit`` also takes ``"²"`` and
  ``"١٢"``), within the id range.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import unquote_to_bytes

from annotated_types import Ge, Le
from pydantic import AfterValidator, StrictStr

MAX_ID = 2**63 - 1

Id = Annotated[int, Ge(1), Le(MAX_ID)]
"""A database id: 1 to 2^63-1."""

Count = Annotated[int, Ge(0), Le(MAX_ID)]
"""An offset or another count: 0 to 2^63-1."""

Int64 = Annotated[int, Ge(-MAX_ID - 1), Le(MAX_ID)]
"""A whole number the route checks further itself (a 64-bit signed integer)."""

MAX_INT32 = 2**31 - 1
"""The largest value of a 32-bit integer column (``Integer`` on PostgreSQL)."""

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BYTES = re.compile(b"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]")


def no_control_characters(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


Ident = Annotated[StrictStr, AfterValidator(no_control_characters)]
"""Text without control characters: identifiers, codes, references and filters in request bodies."""


def control_characters(path: str, query: bytes) -> str | None:
    """Where a request's path (decoded) or query string (percent-encoded) has a control character:
    ``"path"``, ``"query"``, or None."""
    if CONTROL.search(path):
        return "path"
    if query and _CONTROL_BYTES.search(unquote_to_bytes(query) if b"%" in query else query):
        return "query"
    return None


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits (``str.isdigit`` also takes other scripts' digits)."""
    return text.isascii() and text.isdigit()


def parse_id(text: str | None) -> int | None:
    """``text`` as an id (ASCII digits, 1 to 2^63-1, surrounding blanks ignored), else None."""
    if text is None:
        return None
    text = text.strip()
    if not ascii_digits(text) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
