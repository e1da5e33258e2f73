"""Our own message catalogs (en, ru, ro): English text is the key, ``locales/<lang>.json`` the translation.

Texts edited in the back office (``paymux.texts``) override the shipped ones: each back-office
request puts its installation's edited texts in force (``use_overrides``, per language, English
included) and every translator made while it runs applies them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import cache
from importlib.resources import files
from typing import Any

LANGUAGES = {"en": "English", "ru": "Русский", "ro": "Română"}
DEFAULT = "en"

Translator = Callable[..., str]

# language -> msgid -> edited text, for the request being served (never changed in place)
Overrides = Mapping[str, Mapping[str, str]]
_overrides: ContextVar[Overrides | None] = ContextVar("pmx_text_overrides", default=None)


def use_overrides(overrides: Overrides) -> None:
    """Put these edited texts in force for the rest of the current request (task)."""
    _overrides.set(overrides)


def overrides(lang: str) -> Mapping[str, str]:
    return (_overrides.get() or {}).get(lang, {})


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
    edited = overrides(lang)

    def _(msgid: str, **kwargs: Any) -> str:
        text = edited.get(msgid) or messages.get(msgid) or msgid
        if not kwargs:
            return text
        try:
            return text.format(**kwargs)
        except (KeyError, IndexError, ValueError):  # an edited text that lost or broke a placeholder
            shipped = messages.get(msgid) or msgid
            return shipped.format(**kwargs)

    return _


def negotiate(accept_language: str | None, default: str = DEFAULT) -> str:
    """The first supported language in an Accept-Language header."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default if default in LANGUAGES else DEFAULT
