"""SMS gateways: a plug-in interface (entry point group ``paymux.sms``) and the JSON/HTTP gateway.

A gateway is a subclass of :class:`SmsGateway` registered under a name in ``paymux.sms``::

    [project.entry-points."paymux.sms"]
    mygateway = "mypackage.sms:MyGateway"

It is made with its ``config`` (a dict: ``url``, ``token``, ``sender`` and whatever it needs) and
the hub's shared ``httpx.AsyncClient``, and implements ``send``: it returns the gateway's message
id when the message was accepted and raises :class:`SmsError` otherwise (``permanent=True`` when
sending again cannot help, e.g. a number the gateway refuses).

The JSON/HTTP gateway (``jsonhttp``) POSTs to ``<url>/messages``::

    {"id": "ntf_42", "to": "+37369123456", "from": "paymux", "text": "..."}

with ``Authorization: Bearer <token>`` when a token is configured; a 2xx answer is accepted (its
JSON ``id``, if any, is the gateway's message id); 400, 401, 403, 404 and 422 are permanent
failures, anything else is retried. ``id`` is the same on every retry: the gateway deduplicates on it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar

import httpx

from paymux.masking import mask_secrets
from paymux.providers.base import base_url_problems

ENTRY_POINT_GROUP = "paymux.sms"
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 422})


@dataclass(frozen=True, slots=True)
class SmsMessage:
    to: str  # E.164
    text: str
    sender: str
    reference: str  # the same on every retry of one notification


class SmsError(RuntimeError):
    def __init__(self, message: str, *, status_code: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.permanent = permanent


class SmsGateway(abc.ABC):
    """One configured SMS gateway."""

    name: ClassVar[str]
    secret_keys: ClassVar[frozenset[str]] = frozenset({"token", "password"})

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_secrets(self.config, self.secret_keys)!r}>"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        """What is wrong with ``config`` (empty when it is usable)."""
        return []

    @abc.abstractmethod
    async def send(self, message: SmsMessage) -> str | None:
        """Send ``message``; returns the gateway's id of it. Raises :class:`SmsError` when not accepted."""


class UnknownSmsGateway(LookupError):
    pass


@cache
def gateway_class(name: str) -> type[SmsGateway]:
    """The SMS gateway plug-in registered as ``name``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, SmsGateway)):
                raise UnknownSmsGateway(f"{name}: {ep.value} is not an SmsGateway")
            return cls
    raise UnknownSmsGateway(f"no SMS gateway plug-in named {name!r}")


def gateway_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


class JsonHttpSms(SmsGateway):
    """The generic JSON/HTTP SMS gateway (see the module's description)."""

    name = "jsonhttp"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        return base_url_problems(config.get("url"), "https://sms.example/api")

    async def send(self, message: SmsMessage) -> str | None:
        url = str(self.config["url"]).rstrip("/") + "/messages"
        token = self.config.get("token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"id": message.reference, "to": message.to, "from": message.sender, "text": message.text}
        timeout = float(self.config.get("timeout_seconds") or 10)
        try:
            r = await self.http.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as e:
            raise SmsError(f"SMS gateway not reached: {type(e).__name__}: {e}") from None
        if r.is_success:
            try:
                answer = r.json()
            except ValueError:
                return None
            found = answer.get("id") if isinstance(answer, dict) else None
            return str(found) if found is not None else None
        raise SmsError(
            f"SMS gateway answered {r.status_code}: {r.text[:200]}",
            status_code=r.status_code,
            permanent=r.status_code in PERMANENT_STATUSES,
        )
