"""The funding-source plug-in interface.

A funding source is one module exposing a subclass of :class:`FundingSource`, registered under the
entry point group ``paymux.funding`` (as provider protocols are under ``paymux.protocols``). The hub
creates one instance per configured source with its ``config`` mapping and a shared
``httpx.AsyncClient`` and calls :meth:`~FundingSource.debit`, :meth:`~FundingSource.refund` and
:meth:`~FundingSource.status`.

Every operation carries an idempotency ``key`` chosen by the hub: the same key sent again never moves
money twice; the source answers what the first request did. Sources never raise for an answer or a
network failure; they classify it (:data:`Outcome`):

``done``         the money moved (a debit taken, a refund given back).
``refused``      definitively not done (insufficient funds, account closed, limit): ``code`` says why.
``unreachable``  the request certainly did not reach the source (connection refused, connect
                 timeout): safe to send again with the same key.
``unknown``      the request may have reached the source and the answer was lost (read timeout,
                 reset, malformed answer): only :meth:`~FundingSource.status` of the same key may
                 settle it; it is never sent as a new debit.
``not_found``    (``status`` only) the source has never seen this key: the request never arrived.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

import httpx

from paymux.masking import mask_secrets

Outcome = Literal["done", "refused", "unreachable", "unknown", "not_found"]
ENTRY_POINT_GROUP = "paymux.funding"


@dataclass(frozen=True, slots=True)
class Debit:
    """Take ``amount`` (minor units of ``currency``) from the customer's ``account`` at the source."""

    key: str  # idempotency key: unique per recurring run, the same on every retry
    account: str
    amount: int
    currency: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Refund:
    """Give back ``amount`` of the debit made under ``debit_key`` (all of it, by default use)."""

    key: str
    debit_key: str
    amount: int
    currency: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FundingAnswer:
    outcome: Outcome
    reference: str | None = None  # the source's own transaction id
    code: str | None = None  # why it was refused (``insufficient_funds``, ``account_closed``...)
    message: str | None = None
    kind: Literal["debit", "refund"] | None = None  # what ``status`` found under the key


class FundingSource(abc.ABC):
    """One configured funding source. ``secret_keys`` name the config entries every read masks."""

    name: ClassVar[str]
    secret_keys: ClassVar[frozenset[str]] = frozenset({"password", "token", "hmac_secret"})

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    @classmethod
    def masked_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with every secret masked (``secret_keys`` and names that look secret): what may be
        logged or shown."""
        masked: dict[str, Any] = mask_secrets(config, cls.secret_keys)
        return masked

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.masked_config(self.config)!r}>"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        """What is wrong with ``config`` (empty when it is usable)."""
        return []

    @abc.abstractmethod
    async def debit(self, debit: Debit) -> FundingAnswer: ...

    @abc.abstractmethod
    async def refund(self, refund: Refund) -> FundingAnswer: ...

    @abc.abstractmethod
    async def status(self, key: str) -> FundingAnswer:
        """What became of the debit or refund sent under ``key`` (``not_found`` if it never arrived)."""


class UnknownFundingSource(LookupError):
    pass


@cache
def source_class(name: str) -> type[FundingSource]:
    """The funding source plug-in registered as ``name``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, FundingSource)):
                raise UnknownFundingSource(f"{name}: {ep.value} is not a FundingSource")
            return cls
    raise UnknownFundingSource(f"no funding source plug-in named {name!r}")


def source_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
