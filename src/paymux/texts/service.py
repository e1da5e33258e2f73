"""The texts editor: every back-office text and notification template text, per language, with the
edited ones kept in the database over the shipped translations.

Back-office texts are keyed by their English msgid (the keys of ``backoffice/locales/*.json`` and the
English texts themselves); an override per language (``text_overrides``) wins over the shipped
translation at render time. Each node keeps the overrides in memory per installation and reloads
them when an edit is saved on it, and otherwise at most ``PAYMUX_TEXTS_CACHE_SECONDS`` later.
Notification texts are the templates' subject and body (``notification:<event>:<channel>:<part>``),
saved as template overrides (``notifications.template_admin``, checked by rendering them). Services
never commit; every change is audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import string
import time
import weakref
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.backoffice.i18n import LANGUAGES, catalog
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.texts.models import TextOverride

NOTIFICATION = "notification:"
EXPORT_VERSION = 1
MAX_TEXT = 5000


class TextsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_TEXTS_", extra="ignore")

    cache_seconds: float = Field(
        30, ge=0, le=3600, description="how long a node shows texts edited on another node before reloading"
    )


class TextError(ValueError):
    """A readable reason an edit is refused (an English sentence)."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@cache
def backoffice_keys() -> tuple[str, ...]:
    """Every shipped back-office msgid (the keys of the ru and ro catalogs), sorted."""
    keys: set[str] = set()
    for lang in LANGUAGES:
        if lang != "en":
            keys |= set(
                json.loads(files("paymux.backoffice").joinpath(f"locales/{lang}.json").read_text("utf-8"))
            )
    return tuple(sorted(keys, key=str.lower))


def placeholders(text: str) -> set[str] | None:
    """The ``{name}`` placeholders of ``text``; None when it is not a valid format string."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return None


# --- the cache ---------------------------------------------------------------------------------------


@dataclass
class _Cache:
    texts: dict[str, dict[str, str]]
    loaded_at: float
    lock: asyncio.Lock


_caches: weakref.WeakKeyDictionary[object, _Cache] = weakref.WeakKeyDictionary()  # by hub


def invalidate(hub: object) -> None:
    """Reload this installation's overrides on the next request (after an edit is committed)."""
    c = _caches.get(hub)
    if c is not None:
        c.loaded_at = float("-inf")


async def overrides_for(hub: Any, settings: TextsSettings | None = None) -> dict[str, dict[str, str]]:
    """The edited back-office texts of ``hub``'s installation, by language (cached)."""
    ttl = (settings or TextsSettings()).cache_seconds
    c = _caches.get(hub)
    if c is None:
        c = _caches.setdefault(hub, _Cache({}, float("-inf"), asyncio.Lock()))
    if time.monotonic() - c.loaded_at < ttl:
        return c.texts
    async with c.lock:
        if time.monotonic() - c.loaded_at >= ttl:
            started = time.monotonic()
            async with hub.read_sessions() as session:
                rows = (
                    await session.execute(select(TextOverride.language, TextOverride.key, TextOverride.text))
                ).all()
            texts: dict[str, dict[str, str]] = {}
            for lang, key, text in rows:
                texts.setdefault(lang, {})[key] = text
            c.texts, c.loaded_at = texts, started
    return c.texts


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str  # "backoffice" or "notification"
    texts: dict[str, str]  # language -> the text in force
    edited: frozenset[str]  # languages whose text is an override


async def backoffice_entries(session: AsyncSession) -> list[Entry]:
    rows = (await session.execute(select(TextOverride.language, TextOverride.key, TextOverride.text))).all()
    over: dict[str, dict[str, str]] = {}
    for lang, key, text in rows:
        over.setdefault(key, {})[lang] = text
    out = []
    for key in backoffice_keys():
        edited = over.get(key, {})
        texts = {
            lang: edited.get(lang) or catalog(lang).get(key) or (key if lang == "en" else "")
            for lang in LANGUAGES
        }
        out.append(Entry(key, "backoffice", texts, frozenset(edited)))
    return out


async def notification_entries(session: AsyncSession) -> list[Entry]:
    from paymux.notifications import templates as T
    from paymux.notifications.models import NotificationTemplate

    rows = (await session.scalars(select(NotificationTemplate))).all()
    over = {(r.event, r.channel, r.language): r for r in rows}
    out = []
    for event in [*T.known_events(), T.GENERIC]:
        for channel in T.TEMPLATE_CHANNELS:
            for part in ("subject", "body") if channel == "email" else ("body",):
                texts: dict[str, str] = {}
                edited: set[str] = set()
                for lang in LANGUAGES:
                    row = over.get((event, channel, lang))
                    if row is not None:
                        edited.add(lang)
                        texts[lang] = (row.subject if part == "subject" else row.body) or ""
                    else:
                        src = T.shipped(event, channel, lang)
                        texts[lang] = ((src.subject if part == "subject" else src.body) or "") if src else ""
                out.append(
                    Entry(f"{NOTIFICATION}{event}:{channel}:{part}", "notification", texts, frozenset(edited))
                )
    return out


async def entries(session: AsyncSession, term: str = "", kind: str = "") -> list[Entry]:
    """Every text (or those of ``kind``) whose key or text in any language contains ``term``."""
    found: list[Entry] = []
    if kind in ("", "backoffice"):
        found += await backoffice_entries(session)
    if kind in ("", "notification"):
        found += await notification_entries(session)
    needle = term.strip().lower()
    if needle:
        found = [
            e for e in found if needle in e.key.lower() or any(needle in t.lower() for t in e.texts.values())
        ]
    return found


# --- writing -----------------------------------------------------------------------------------------


def _check_text(text: str) -> str:
    if len(text) > MAX_TEXT or "\x00" in text:
        raise TextError(f"A text has at most {MAX_TEXT} characters.")
    return text


async def save(session: AsyncSession, me: Any, language: str, key: str, text: str) -> bool:
    """Edit ``key`` in ``language`` (an empty text puts the shipped one back); audited. False when
    nothing changed."""
    if language not in LANGUAGES:
        raise TextError("Unknown language.")
    text = _check_text(text.replace("\r\n", "\n"))
    if key.startswith(NOTIFICATION):
        return await _save_notification(session, me, language, key, text)
    if key not in backoffice_keys():
        raise TextError("Unknown text key.")
    wanted = placeholders(key)
    if text.strip() and placeholders(text) != wanted:
        raise TextError(
            "The text must keep the placeholders of the original: "
            + ", ".join(sorted(f"{{{n}}}" for n in wanted or ()))
        )
    row = await session.scalar(
        select(TextOverride).where(TextOverride.language == language, TextOverride.key_hash == key_hash(key))
    )
    before = None if row is None else row.text
    target = f"text:{language}:{key[:200]}"
    if not text.strip():
        if row is None:
            return False
        await session.execute(delete(TextOverride).where(TextOverride.id == row.id))
        await audit.record(session, me, "text.reset", target, {"text": before}, None)
        return True
    if before == text:
        return False
    if row is None:
        row = TextOverride(language=language, key_hash=key_hash(key), key=key, text=text, updated_by="")
        session.add(row)
    row.text, row.updated_by, row.updated_at = text, str(getattr(me, "audit_name", me))[:200], utcnow()
    await session.flush()
    await audit.record(session, me, "text.put", target, {"text": before}, {"text": text})
    return True


async def _save_notification(session: AsyncSession, me: Any, language: str, key: str, text: str) -> bool:
    from paymux.notifications import template_admin as TA
    from paymux.notifications import templates as T

    parts = key[len(NOTIFICATION) :].split(":")
    if len(parts) != 3 or parts[2] not in ("subject", "body"):
        raise TextError("Unknown text key.")
    event, channel, part = parts
    if (event != T.GENERIC and event not in T.known_events()) or channel not in T.TEMPLATE_CHANNELS:
        raise TextError("Unknown text key.")
    if part == "subject" and channel != "email":
        raise TextError("Unknown text key.")
    row = await TA.find_override(session, event, channel, language)
    if not text.strip():
        if row is None:
            return False
        return await TA.reset_override(session, me, event, channel, language)
    current = (
        T.Source(row.subject, row.body) if row is not None else T.shipped(event, channel, language)
    ) or T.Source(None, "")
    subject = text if part == "subject" else current.subject
    body = text if part == "body" else current.body
    if row is not None and (row.subject, row.body) == (subject, body):
        return False
    try:
        await TA.save_override(session, me, event, channel, language, subject=subject, body=body)
    except Problem as e:
        raise TextError(e.detail or e.title) from None
    return True


async def export(session: AsyncSession) -> dict[str, Any]:
    """Every edited text (back office and notifications) as a JSON document ``import_texts`` takes."""
    items = [
        {"language": lang, "key": e.key, "text": e.texts[lang]}
        for e in await entries(session)
        for lang in sorted(e.edited)
    ]
    return {"paymux_texts": EXPORT_VERSION, "texts": items}


async def import_texts(session: AsyncSession, me: Any, data: Any) -> int:
    """Apply an export (each text checked as an edit is); the number changed. ``TextError`` names
    the first bad item, and nothing is applied then (the caller rolls back)."""
    if (
        not isinstance(data, dict)
        or data.get("paymux_texts") != EXPORT_VERSION
        or not isinstance(data.get("texts"), list)
    ):
        raise TextError("This is not a texts file exported by paymux.")
    changed = 0
    for i, item in enumerate(data["texts"], 1):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("language", "key", "text")
        ):
            raise TextError(f"Item {i}: language, key and text are needed.")
        try:
            changed += await save(session, me, item["language"], item["key"], item["text"])
        except TextError as e:
            raise TextError(f"Item {i} ({item['key'][:80]}): {e}") from None
    return changed
