"""Our own message catalogs (en, ru, ro): English text is the key, ``locales/<lang>.json`` the translation."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any

LANGUAGES = {"en": "English", "ru": "Русский", "ro": "Română"}
DEFAULT = "en"

Translator = Callable[..., str]


@cache
def catalog(lang: str) -> dict[str, str]:
    if lang == DEFAULT or lang not in LANGUAGES:
        return {}
    text = files("paymux.backoffice").joinpath(f"locales/{lang}.json").read_text("utf-8")
    data: dict[str, str] = json.loads(text)
    return data


def translator(lang: str) -> Translator:
    """``_("Hello {name}", name=...)``: the translation (English when missing), formatted."""
    messages = catalog(lang)

    def _(msgid: str, **kwargs: Any) -> str:
        text = messages.get(msgid) or msgid
        return text.format(**kwargs) if kwargs else text

    return _


def negotiate(accept_language: str | None, default: str = DEFAULT) -> str:
    """The first supported language in an Accept-Language header."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default if default in LANGUAGES else DEFAULT
