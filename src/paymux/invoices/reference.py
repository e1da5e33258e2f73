"""ISO 11649 structured creditor references ("RF" references), checked per ISO 7064 mod 97-10.

``RF`` + two check digits + a base of 1 to 21 letters and digits. The check digits make
``base + "RF" + check`` (letters as numbers, A=10 ... Z=35) leave 1 when divided by 97.
"""

from __future__ import annotations

import re

_BASE = re.compile(r"^[0-9A-Z]{1,21}\Z")
_REF = re.compile(r"^RF[0-9]{2}[0-9A-Z]{1,21}\Z")


def _numeric(text: str) -> int:
    return int("".join(str(int(c, 36)) for c in text))


def _normal(text: str) -> str:
    return "".join(text.split()).upper()


def rf_from(base: str) -> str:
    """The RF reference of ``base`` (1 to 21 letters and digits; spaces ignored, letters upper-cased)."""
    b = _normal(base)
    if not _BASE.match(b):
        raise ValueError("an RF reference's base is 1 to 21 letters (A-Z) and digits")
    check = 98 - _numeric(b + "RF00") % 97
    return f"RF{check:02d}{b}"


def rf_valid(ref: object) -> bool:
    """Whether ``ref`` is a valid RF reference (spaces ignored, either case)."""
    if not isinstance(ref, str) or len(ref) > 60:
        return False
    r = _normal(ref)
    if not _REF.match(r):
        return False
    return _numeric(r[4:] + r[:4]) % 97 == 1


def rf_normal(ref: str) -> str:
    """``ref`` without spaces, upper case (the stored form)."""
    return _normal(ref)


def rf_print(ref: str) -> str:
    """``ref`` in groups of four, as printed on an invoice."""
    r = _normal(ref)
    return " ".join(r[i : i + 4] for i in range(0, len(r), 4))
