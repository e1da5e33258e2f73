"""Secrets in what the hub shows: which values are secret, how every read masks them, how writes keep them.

Every read of a stored object (admin API answers, back-office pages and their Excel exports, the
catalog file, the audit log, the exchanges recorded with a payment) passes it through
:func:`mask_secrets`: a value is a secret when

* its key is *declared* secret by the code that owns it (a provider protocol's
  ``Protocol.secret_config_keys``, see :mod:`paymux.providers.base`), or
* its key's name *looks* secret (:func:`looks_secret`: ``password``, ``secret``, ``token``,
  ``passphrase``, ``private_key``, ``api_key``... anywhere in the name), the safety net for keys
  nobody declared; or
* it is a URL with a password in it (``https://user:pass@host``): the password part is masked.

A secret is shown as :data:`MASK` (``***``). Sent back unchanged (a form saved as it was shown, an
exported catalog applied again), a masked value keeps the stored secret: :func:`keep_secrets` puts
the stored value back wherever the value written equals what a read showed of the stored one. A
mask with nothing stored behind it is an error (:class:`MaskedSecretError`), never stored as the
secret. Empty values (``None``, ``""``) and booleans are shown as they are: there is nothing to hide.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from typing import Any

__all__ = [
    "MASK",
    "MaskedSecretError",
    "is_masked",
    "keep_secrets",
    "looks_secret",
    "mask_secrets",
    "mask_url",
]

MASK = "***"

# a key whose name (lower-case, separators removed) contains one of these holds a secret ...
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "privatekey",
    "apikey",
    "accesskey",
    "signkey",
    "signingkey",
    "clientkey",
    "hmackey",
    "encryptionkey",
    "masterkey",
    "securitykey",  # PayOnline's PrivateSecurityKey
    "paymentkey",  # PayOnline's PaymentKey
    "sharedkey",
    "merchantkey",
    "authkey",
    "credential",
    "authorization",
    "signature",
)
# ... or is one of these whole names ...
_SECRET_NAMES = frozenset({"key", "pwd", "pass"})
# ... unless its last word says it names or locates the secret instead of holding it
_NOT_SECRET_ENDINGS = frozenset(
    {"file", "path", "url", "uri", "serial", "prefix", "id", "at", "header", "param", "field", "name", "type"}
)
_WORD_BREAK = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
# scheme://user:password@ (the password part is group 2)
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*:)([^/?#@\s]+)(@)")


class MaskedSecretError(ValueError):
    """A masked value was written where no secret is stored to keep: the secret itself is needed."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path or 'the value'} is the mask {MASK!r} of a secret, but no secret is stored there to keep: "
            "give the secret itself"
        )


@lru_cache(maxsize=4096)
def looks_secret(name: object) -> bool:
    """Whether a key's name says it holds a secret (asked for every key shown: cached)."""
    words = [w.lower() for w in _WORD_BREAK.split(str(name)) if w]
    if not words or words[-1] in _NOT_SECRET_ENDINGS:
        return False
    joined = "".join(words)
    return joined in _SECRET_NAMES or any(part in joined for part in _SECRET_PARTS)


def mask_url(value: str) -> str:
    """``value`` with the password of a ``scheme://user:password@host`` URL masked."""
    if "@" not in value or "://" not in value:  # the common case, without a regular expression
        return value
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), value, count=1)


def _hidden(value: Any) -> bool:
    """Whether a value under a secret key has something to hide."""
    return value is not None and value != "" and not isinstance(value, bool)


def _is_secret(key: object, secret_keys: Collection[str]) -> bool:
    return key in secret_keys or looks_secret(key)


def mask_secrets(data: Any, secret_keys: Collection[str] = ()) -> Any:
    """A copy of ``data`` (dicts, lists, strings) with every secret value masked (see the module).

    ``secret_keys``: names declared secret by the data's owner, on top of the names that look secret.
    """
    if isinstance(data, dict):
        return {
            k: (MASK if _hidden(v) else v) if _is_secret(k, secret_keys) else mask_secrets(v, secret_keys)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [mask_secrets(v, secret_keys) for v in data]
    if isinstance(data, str):
        return mask_url(data)
    return data


def is_masked(value: Any) -> bool:
    """Whether ``value`` is (or holds) a mask, as a read shows a secret."""
    if not isinstance(value, str):
        return False
    if value == MASK:
        return True
    url = _URL_PASSWORD.match(value) if MASK in value else None
    return url is not None and url.group(2) == MASK


_NOTHING = object()


def keep_secrets(new: Any, stored: Any, secret_keys: Collection[str] = (), path: str = "") -> Any:
    """``new`` with every masked value replaced by the stored value it stands for.

    Dicts are matched key by key and lists position by position. A value of ``new`` that equals what
    a read shows of the stored value at the same place (:data:`MASK` for a secret, a URL with its
    password masked) becomes the stored value; a mask with no such stored value raises
    :class:`MaskedSecretError` naming its place (``path`` is the prefix of that name).
    """
    return _keep(new, stored, None, secret_keys, path)


def _keep(new: Any, old: Any, key: object, secret_keys: Collection[str], path: str) -> Any:
    if isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        return {
            k: _keep(v, old_map.get(k, _NOTHING), k, secret_keys, f"{path}.{k}" if path else str(k))
            for k, v in new.items()
        }
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        return [
            _keep(v, old_list[i] if i < len(old_list) else _NOTHING, key, secret_keys, f"{path}[{i}]")
            for i, v in enumerate(new)
        ]
    if not is_masked(new):
        return new
    if old is not _NOTHING:
        if _is_secret(key, secret_keys):
            shown = MASK if _hidden(old) else old
        else:
            shown = mask_secrets(old, secret_keys)
        if shown == new:
            return old
    raise MaskedSecretError(path)
