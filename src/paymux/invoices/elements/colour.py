"""Colours: parsing ``#rgb``/``#rrggbb`` and the WCAG 2.x contrast ratio."""

import re

from paymux.invoices.elements.errors import ElementError

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")

#: WCAG 2.x success criterion 1.4.3 (AA): normal text needs 4.5:1
AA_NORMAL_TEXT = 4.5


def parse_hex(colour: str, *, field: str = "colour") -> str:
    """``colour`` normalised to ``#rrggbb`` lower case; anything else (names, ``url(...)``, CSS) refused."""
    if not isinstance(colour, str) or not _HEX.fullmatch(colour):
        raise ElementError(field, "must be a hex colour like #0b5cad")
    digits = colour[1:].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""
    digits = parse_hex(colour)[1:]

    def channel(pair: str) -> float:
        c = int(pair, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(digits[i : i + 2]) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2.x contrast ratio (1..21) of two colours."""
    a, b = relative_luminance(foreground), relative_luminance(background)
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)
