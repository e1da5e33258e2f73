"""The embeddable invoice status badge: a small SVG, deterministic bytes, with an ETag.

Served at a stable URL and embedded by billers with ``<img src=...>``: the same status, label and
language always give the same bytes, so ``etag(badge)`` lets caches revalidate with a 304.
"""

import hashlib
from html import escape

from paymux.invoices.elements.colour import AA_NORMAL_TEXT, contrast_ratio
from paymux.invoices.elements.errors import ElementError

__all__ = ["BADGE_COLOURS", "STATUSES", "STATUS_NAMES", "etag", "status_badge_svg"]

STATUSES = ("open", "partially_paid", "paid", "overdue", "cancelled", "refunded")

#: (background, text) per status; every pair meets WCAG AA for normal text (>= 4.5:1)
BADGE_COLOURS: dict[str, tuple[str, str]] = {
    "open": ("#595959", "#ffffff"),
    "partially_paid": ("#f2a900", "#1a1a1a"),
    "paid": ("#1e7b34", "#ffffff"),
    "overdue": ("#b3261e", "#ffffff"),
    "cancelled": ("#6b6b6b", "#ffffff"),
    "refunded": ("#6b6b6b", "#ffffff"),
}
#: the left (label) segment
LABEL_COLOURS = ("#333333", "#ffffff")

STATUS_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "open": "open",
        "partially_paid": "partially paid",
        "paid": "paid",
        "overdue": "overdue",
        "cancelled": "cancelled",
        "refunded": "refunded",
    },
    "ru": {
        "open": "к оплате",
        "partially_paid": "оплачен частично",
        "paid": "оплачен",
        "overdue": "просрочен",
        "cancelled": "отменён",
        "refunded": "возвращён",
    },
    "ro": {
        "open": "de plată",
        "partially_paid": "plătită parțial",
        "paid": "plătită",
        "overdue": "restantă",
        "cancelled": "anulată",
        "refunded": "rambursată",
    },
}

_HEIGHT = 20
_PAD = 6
_FONT_SIZE = 11


def _text_width(text: str) -> int:
    """An estimate of the text's width in px at 11px sans-serif (deterministic, no font metrics)."""
    narrow = set("ijlt.,:;!|'() ")
    wide = set("mwMWШЩЖМЮжшщмю")
    width = 0.0
    for c in text:
        width += 3.5 if c in narrow else 9.5 if c in wide else 6.6
    return int(width + 0.999)


def status_badge_svg(status: str, label: str, *, language: str = "en") -> bytes:
    """A two-segment SVG badge: ``label`` on dark grey, the status (in ``language``) in its colour.

    grey = open, amber = partially paid, green = paid, red = overdue, grey = cancelled or refunded.
    The root has ``role="img"``, ``aria-label`` and a ``<title>`` ("label: status"); all text is
    escaped. Unknown statuses or languages are refused (an :class:`ElementError`).
    """
    if status not in BADGE_COLOURS:
        raise ElementError("status", f"must be one of {', '.join(STATUSES)}")
    if language not in STATUS_NAMES:
        raise ElementError("language", f"must be one of {', '.join(STATUS_NAMES)}")
    if not isinstance(label, str) or not label.strip() or len(label) > 40:
        raise ElementError("label", "must be 1 to 40 characters")
    if any(ord(c) < 0x20 for c in label):
        raise ElementError("label", "must be one line")
    status_text = STATUS_NAMES[language][status]
    background, foreground = BADGE_COLOURS[status]
    label_bg, label_fg = LABEL_COLOURS
    left = _text_width(label) + 2 * _PAD
    right = _text_width(status_text) + 2 * _PAD
    width = left + right
    title = escape(f"{label}: {status_text}", quote=True)
    label_e = escape(label, quote=True)
    status_e = escape(status_text, quote=True)
    baseline = 14
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_HEIGHT}" '
        f'viewBox="0 0 {width} {_HEIGHT}" role="img" aria-label="{title}" xml:lang="{language}">'
        f"<title>{title}</title>"
        f'<rect width="{left}" height="{_HEIGHT}" rx="3" fill="{label_bg}"/>'
        f'<rect x="{left}" width="{right}" height="{_HEIGHT}" rx="3" fill="{background}"/>'
        f'<rect x="{left}" width="4" height="{_HEIGHT}" fill="{background}"/>'
        f'<g font-family="Verdana,DejaVu Sans,Arial,sans-serif" font-size="{_FONT_SIZE}" '
        f'text-anchor="middle">'
        f'<text x="{left / 2:g}" y="{baseline}" fill="{label_fg}">{label_e}</text>'
        f'<text x="{left + right / 2:g}" y="{baseline}" fill="{foreground}">{status_e}</text>'
        f"</g></svg>"
    )
    return svg.encode("utf-8")


def etag(body: bytes) -> str:
    """A strong ETag of the bytes (quoted, as the ``ETag`` header wants it)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _check_palette() -> None:
    """Import-time guard: a palette edit that breaks WCAG AA fails at once, not in production."""
    for name, (bg, fg) in {**BADGE_COLOURS, "label": LABEL_COLOURS}.items():
        if contrast_ratio(fg, bg) < AA_NORMAL_TEXT:  # pragma: no cover - a programming error
            raise AssertionError(f"badge colours of {name} fail WCAG AA contrast")


_check_palette()
