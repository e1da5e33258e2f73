"""The pay button: an HTML snippet for web pages and a table-based variant for e-mails.

Both are a plain link (``<a href>``) styled as a button - it works without JavaScript, is reached
with the keyboard and read as a link - and both escape every value. Only absolute http(s) URLs are
accepted, colours only as hex (so nothing can break out of the ``style`` attribute), and the text
colour must meet WCAG AA contrast (4.5:1) on the button colour.
"""

from html import escape
from urllib.parse import urlsplit

from paymux.invoices.elements.colour import AA_NORMAL_TEXT, contrast_ratio, parse_hex
from paymux.invoices.elements.errors import ElementError

__all__ = ["pay_button_email_html", "pay_button_html"]

_FONT = "Arial,Helvetica,sans-serif"


def _url(url: object) -> str:
    if (
        not isinstance(url, str)
        or not url
        or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url)
    ):
        raise ElementError("url", "must be an absolute http(s) URL without white space")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ElementError("url", "must be an absolute http(s) URL")
    return url


def _label(label: object) -> str:
    if not isinstance(label, str) or not label.strip() or len(label) > 80:
        raise ElementError("label", "must be 1 to 80 characters")
    return label.strip()


def _colours(colour: str, text_colour: str) -> tuple[str, str]:
    bg = parse_hex(colour, field="colour")
    fg = parse_hex(text_colour, field="text_colour")
    ratio = contrast_ratio(fg, bg)
    if ratio < AA_NORMAL_TEXT:
        raise ElementError(
            "text_colour", f"contrast {ratio:.2f}:1 on the button colour is below WCAG AA (4.5:1)"
        )
    return bg, fg


def pay_button_html(url: str, *, label: str, colour: str = "#0b5cad", text_colour: str = "#ffffff") -> str:
    """A link styled as a button, for a web page (inline styles, so no stylesheet is needed)."""
    href = escape(_url(url), quote=True)
    text = escape(_label(label), quote=True)
    bg, fg = _colours(colour, text_colour)
    style = (
        f"display:inline-block;padding:12px 24px;border-radius:6px;background:{bg};color:{fg};"
        f"font:600 16px/1.25 {_FONT};text-decoration:none;border:2px solid {bg};"
        "min-height:24px;min-width:44px;text-align:center"
    )
    return f'<a class="paymux-pay-button" href="{href}" style="{style}">{text}</a>'


def pay_button_email_html(
    url: str, *, label: str, colour: str = "#0b5cad", text_colour: str = "#ffffff"
) -> str:
    """The button for e-mails: a one-cell presentation table with inline styles and ``bgcolor``.

    E-mail clients drop ``<style>`` blocks, padding on links and ``display:inline-block`` (Outlook
    for Windows), so the colour sits on the table cell as both ``bgcolor`` and style and the link
    fills it; the URL is also the visible link target, so clients that strip styles still show a
    usable link.
    """
    href = escape(_url(url), quote=True)
    text = escape(_label(label), quote=True)
    bg, fg = _colours(colour, text_colour)
    return (
        '<table role="presentation" border="0" cellpadding="0" cellspacing="0" '
        'style="border-collapse:separate;margin:0">'
        "<tr>"
        f'<td align="center" bgcolor="{bg}" style="background:{bg};border-radius:6px">'
        f'<a href="{href}" target="_blank" rel="noopener" '
        f'style="display:block;padding:12px 24px;color:{fg};font-family:{_FONT};font-size:16px;'
        f'font-weight:bold;line-height:20px;text-decoration:none;border-radius:6px">{text}</a>'
        "</td>"
        "</tr>"
        "</table>"
    )
