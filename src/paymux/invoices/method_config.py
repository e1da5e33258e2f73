"""A biller's own settings of its payment methods, over the hub's (``PAYMUX_PAYMETHODS``).

A biller may have its own acquirer merchant id, its own processor URL and its own callback secret:
``Biller.method_config`` is ``{"card": {"merchant": "...", "secret": "..."}}``; what a method uses for
that biller's invoices is the hub's settings of the method with the biller's on top (:func:`effective`).
Values whose name looks secret (:func:`paymux.masking.looks_secret`: ``secret``, ``password``,
``token``...) are stored sealed with ``PAYMUX_NOTIFICATIONS_SECRET_KEY`` when it is set (like webhook
secrets) and every read shows them masked (:func:`view`); a masked value written back keeps the
stored secret (:func:`merged`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from paymux.masking import MaskedSecretError, keep_secrets, looks_secret, mask_secrets
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.webhooks import SEALED, seal, unseal

MAX_KEYS = 20
KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ConfigError(ValueError):
    """A method's settings that cannot be stored (the message says why)."""


def view(config: Mapping[str, Mapping[str, str]] | None) -> dict[str, Any]:
    """The biller's method settings as every read shows them: secrets masked."""
    shown: dict[str, Any] = mask_secrets({m: dict(v) for m, v in (config or {}).items()})
    return shown


def merged(stored: Mapping[str, str] | None, new: Mapping[str, Any]) -> dict[str, str]:
    """The settings of one method to store: ``new`` checked, a masked secret replaced by the stored
    one, secrets sealed. :class:`ConfigError` when ``new`` is not a flat map of short strings."""
    if len(new) > MAX_KEYS:
        raise ConfigError(f"at most {MAX_KEYS} settings per method")
    for k, v in new.items():
        if not isinstance(k, str) or not KEY.fullmatch(k):
            raise ConfigError(f"{str(k)[:64]!r}: a setting's name is lower-case letters, digits and _")
        if not isinstance(v, str) or len(v) > 2000 or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ConfigError(f"{k}: a setting's value is text of up to 2000 printable characters")
    old = dict(stored or {})
    try:
        kept: dict[str, str] = keep_secrets(dict(new), old)
    except MaskedSecretError as e:
        raise ConfigError(str(e)) from None
    settings = NotificationSettings()
    out: dict[str, str] = {}
    for k, v in kept.items():
        if looks_secret(k) and v and not v.startswith(SEALED):
            v = seal(v, settings)
        out[k] = v
    return out


def effective(hub_config: Mapping[str, str] | None, own: Mapping[str, str] | None) -> dict[str, str]:
    """What a method uses for one biller: the hub's settings with the biller's own on top (secrets
    opened)."""
    out = dict(hub_config or {})
    if own:
        settings = NotificationSettings()
        for k, v in own.items():
            out[k] = unseal(v, settings) if isinstance(v, str) and v.startswith(SEALED) else v
    return out
