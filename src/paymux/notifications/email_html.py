"""The HTML part of a notification e-mail, made from its text: e-mail-safe markup (tables and inline
styles, no scripts), the text escaped, paragraphs kept, links made clickable and the images the text
links to (``.png``: an invoice's QR code) shown.

The text part stays the message itself (what templates render); the HTML is the same words laid out
for mail clients, so the two never say different things."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)]")

_PAGE = (
    '<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title></head>'
    '<body style="margin:0;padding:0;background:#f4f5f7">'
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7">'
    '<tr><td align="center" style="padding:16px">'
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
    'style="max-width:560px;background:#ffffff;border-radius:6px">'
    '<tr><td style="padding:24px;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;'
    'color:#1f2328">{title_html}{body}</td></tr></table></td></tr></table></body></html>'
)


def _linked(escaped: str) -> str:
    """Anchors around the URLs of an already escaped line (an URL's ``&amp;`` stays as it is)."""

    def anchor(m: re.Match[str]) -> str:
        url = m.group(0)
        link = f'<a href="{url}" style="color:#0b57d0">{url}</a>'
        if url.split("?", 1)[0].endswith(".png"):  # a QR code or logo: shown, and linked
            img = f'<img src="{url}" alt="" style="display:block;width:180px;max-width:100%;margin:8px 0">'
            return f"<br>{img}{link}"
        return link

    return _URL.sub(anchor, escaped)


def email_html(subject: str, text: str, language: str = "en") -> str:
    """The HTML alternative of an e-mail whose plain text is ``text``."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if p.strip()]
    body = "".join(
        '<p style="margin:0 0 12px">'
        + "<br>".join(_linked(html.escape(line)) for line in p.split("\n"))
        + "</p>"
        for p in paragraphs
    )
    title = html.escape(subject)
    heading = f'<h1 style="margin:0 0 16px;font-size:20px">{title}</h1>' if subject else ""
    lang = language if re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", language or "") else "en"
    return _PAGE.format(lang=lang, title=title, title_html=heading, body=body)
