"""The agents' webhook endpoints and Standard Webhooks signatures (https://www.standardwebhooks.com/).

Each agent may have one endpoint: a URL, a secret ``whsec_<base64 of 32 random bytes>`` made by the
hub (shown once, when it is made), and an enabled flag. Every notification POSTed to it carries

* ``webhook-id``: ``ntf_<notification id>``, the same on every retry (receivers deduplicate on it),
* ``webhook-timestamp``: the attempt's time in Unix seconds,
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, made by the
  ``standardwebhooks`` library.

Secrets are stored sealed with ``PAYMUX_NOTIFICATIONS_SECRET_KEY`` (a Fernet key) when it is set
(``fernet:<token>``), as they are otherwise; every read shows them masked.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from paymux.db.base import utcnow
from paymux.masking import MASK, mask_url
from paymux.notifications.models import WebhookEndpoint
from paymux.notifications.settings import NotificationSettings
from paymux.providers.base import base_url_problems

SEALED = "fernet:"
SECRET_PREFIX = "whsec_"


class SecretKeyProblem(RuntimeError):
    """A sealed secret and no key (or the wrong key) to open it."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _fernet(settings: NotificationSettings) -> Fernet | None:
    key = settings.secret_key.get_secret_value()
    return Fernet(key.encode()) if key else None


def check_secret_key(settings: NotificationSettings) -> list[str]:
    """What is wrong with the configured sealing key (empty when it is usable or unset)."""
    try:
        _fernet(settings)
    except (ValueError, TypeError) as e:
        return [f"PAYMUX_NOTIFICATIONS_SECRET_KEY is not a Fernet key: {e}"]
    return []


def seal(secret: str, settings: NotificationSettings) -> str:
    f = _fernet(settings)
    return secret if f is None else SEALED + f.encrypt(secret.encode()).decode()


def unseal(stored: str, settings: NotificationSettings) -> str:
    if not stored.startswith(SEALED):
        return stored
    f = _fernet(settings)
    if f is None:
        raise SecretKeyProblem("the webhook secret is sealed and PAYMUX_NOTIFICATIONS_SECRET_KEY is not set")
    try:
        return f.decrypt(stored[len(SEALED) :].encode()).decode()
    except InvalidToken:
        raise SecretKeyProblem(
            "the webhook secret cannot be opened with PAYMUX_NOTIFICATIONS_SECRET_KEY"
        ) from None


def message_id(notification_id: int) -> str:
    return f"ntf_{notification_id}"


def signed_headers(secret: str, msg_id: str, body: bytes, at: dt.datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent as ``msg_id`` at ``at`` (default: now)."""
    at = at or utcnow()
    signature = Webhook(secret).sign(msg_id, at, body)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def url_problems(url: Any) -> list[str]:
    """An absolute http(s) URL (a query is allowed: some receivers route on it), at most 2000 long."""
    if isinstance(url, str) and len(url) > 2000:
        return ["url must be at most 2000 characters"]
    if isinstance(url, str) and "?" in url and "#" not in url:
        base, _, _ = url.partition("?")
        return base_url_problems(base, "https://bank.example/paymux/webhooks")
    return base_url_problems(url, "https://bank.example/paymux/webhooks")


async def endpoint_of(session: AsyncSession, agent_id: int) -> WebhookEndpoint | None:
    found: WebhookEndpoint | None = await session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.agent_id == agent_id)
    )
    return found


def endpoint_view(e: WebhookEndpoint, agent_code: str, secret: str | None = None) -> dict[str, Any]:
    """The endpoint as reads show it: the secret masked, unless ``secret`` (just made) is given."""
    return {
        "agent": agent_code,
        "url": mask_url(e.url),  # a password in the URL is a secret too
        "enabled": e.enabled,
        "secret": secret if secret is not None else MASK,
        "created_at": e.created_at.isoformat(),
        "updated_at": e.updated_at.isoformat(),
    }
