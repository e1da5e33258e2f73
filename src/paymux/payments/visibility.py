"""What a viewer may see of a payment, defined once for every page, export and admin API answer.

The operator's staff see every field. An agent's users (``Principal.agent_scoped``) see their own
channels' payments as their reports show them: what was paid, by which channel, for which service,
the amount, fee, total and their commission, the status and its times, and the payer's account and
fields their channel sent. Nothing of the provider side: not the provider, its service code or
transaction id, our remuneration and tariff versions, the route and its reasons, the attempts and
the exchanges with providers (or with an inbound gateway), the delivery state (in doubt, next
attempt, needing attention, errors: a provider's own words) nor postings on any account but their
channels'.

A payment is shown through :func:`payment_view` (a dict of the fields the viewer may see, raw:
minor units, UTC datetimes, catalog codes), lists choose their columns, filters and searched
columns with :meth:`PaymentScope.shows`, and details their parts with :meth:`PaymentScope.shows`
too, so a field reaches an agent only if it is named in ``AGENT_FIELDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.principal import Principal, channel_scope
from paymux.masking import mask_secrets

# every field of a payment a viewer may be shown, in display order
FIELDS = (
    "id",
    "external_id",
    "status",
    "service",
    "channel",
    "provider",
    "provider_service_code",
    "account",
    "currency",
    "amount",
    "fee",
    "total",
    "remuneration",
    "commission",
    "tariff_versions",
    "fields",
    "route_reason",
    "attempts",
    "failovers",
    "in_doubt",
    "needs_attention",
    "provider_txn_id",
    "error_code",
    "error_message",
    "created_at",
    "final_at",
    "next_attempt_at",
    "expires_at",
)
MONEY_FIELDS = frozenset({"amount", "fee", "total", "remuneration", "commission"})
# what a payment earns (our remuneration from the provider, the agent's commission): earned only when
# the payment succeeds; a payment not (yet) succeeded shows none (None), whatever its tariffs priced
EARNINGS = frozenset({"remuneration", "commission"})


def earned(status: str, minor: int) -> int | None:
    """What a payment of ``status`` earned of ``minor`` (its remuneration or commission): None unless
    it succeeded."""
    return minor if status == "succeeded" else None


# what an agent's users see (their reports show them the same measures of the same payments)
AGENT_FIELDS = frozenset(
    {
        "id",
        "external_id",
        "status",
        "service",
        "channel",
        "account",
        "currency",
        "amount",
        "fee",
        "total",
        "commission",
        "fields",
        "created_at",
        "final_at",
    }
)

# parts of a payment's details beyond its fields
EXCHANGES = "exchanges"  # delivery attempts with the exchanges with providers
INBOUND = "inbound"  # requests through an inbound gateway, with our answers
AUDIT = "audit"  # the audit records about the payment (the operator's staff at work)

# account kinds owned by a channel: the only postings an agent's users see (of their channels)
CHANNEL_ACCOUNT_KINDS = frozenset({"channel_collected", "channel_commission"})

CodeOf = Callable[[str, int], Any]  # ("provider", id) -> its code (or the id when unknown)


@dataclass(frozen=True)
class PaymentScope:
    """The payments a viewer may see (``channels``: None means all) and what of each."""

    channels: frozenset[int] | None
    fields: frozenset[str]
    parts: frozenset[str]

    def shows(self, name: str) -> bool:
        """Whether the viewer may see field (or part) ``name``."""
        return name in self.fields or name in self.parts

    def sees_payment_of(self, channel_id: int) -> bool:
        return self.channels is None or channel_id in self.channels

    def sees_posting(self, account_kind: str, owner_id: int) -> bool:
        return self.channels is None or (account_kind in CHANNEL_ACCOUNT_KINDS and owner_id in self.channels)

    def postings(self, rows: Iterable[Any]) -> list[Any]:
        """Of ``payment_postings`` rows (entry, kind, at, account kind, owner id, amount, currency),
        those the viewer may see."""
        return [r for r in rows if self.sees_posting(r[3], r[4])]


STAFF_PARTS = frozenset({EXCHANGES, INBOUND, AUDIT})


def scope_of(principal: Principal, channels: set[int] | None) -> PaymentScope:
    """The scope of ``principal`` whose channels are ``channels`` (from ``channel_scope``)."""
    if not principal.agent_scoped:
        return PaymentScope(None, frozenset(FIELDS), STAFF_PARTS)
    return PaymentScope(frozenset(channels or ()), AGENT_FIELDS, frozenset())


async def payment_scope(session: AsyncSession, principal: Principal) -> PaymentScope:
    """What ``principal`` may see of payments."""
    return scope_of(principal, await channel_scope(session, principal))


def all_fields(
    p: Any, code_of: CodeOf, *, service: Any = None, channel: Any = None, provider: Any = None
) -> dict[str, Any]:
    """Every field of payment ``p`` (an ORM row or the values a batch wrote), raw; catalog codes from
    ``code_of`` unless given."""
    return {
        "id": p.id,
        "external_id": p.external_id,
        "status": p.status,
        "service": service if service is not None else code_of("service", p.service_id),
        "channel": channel if channel is not None else code_of("channel", p.channel_id),
        "provider": provider if provider is not None else code_of("provider", p.provider_id),
        "provider_service_code": p.provider_service_code,
        "account": p.account,
        "currency": p.currency,
        "amount": p.amount,
        "fee": p.fee,
        "total": p.total,
        "remuneration": earned(p.status, p.remuneration),
        "commission": earned(p.status, p.commission),
        "tariff_versions": {
            "fee": p.fee_tariff_id,
            "remuneration": p.remuneration_tariff_id,
            "commission": p.commission_tariff_id,
        },
        "fields": mask_secrets(p.fields or {}),  # the payer's fields, secret-looking ones masked
        "route_reason": p.route_reason,
        "attempts": p.attempts,
        "failovers": p.failovers,
        "in_doubt": p.in_doubt,
        "needs_attention": p.needs_attention,
        "provider_txn_id": p.provider_txn_id,
        "error_code": p.error_code,
        "error_message": p.error_message,
        "created_at": p.created_at,
        "final_at": p.final_at,
        "next_attempt_at": p.next_attempt_at,
        "expires_at": p.expires_at,
    }


def payment_view(scope: PaymentScope, p: Any, code_of: CodeOf, **codes: Any) -> dict[str, Any]:
    """The fields of payment ``p`` the viewer may see, raw, in ``FIELDS`` order."""
    every = all_fields(p, code_of, **codes)
    return {k: every[k] for k in FIELDS if k in scope.fields}


def visible(scope: PaymentScope, named: Sequence[tuple[str, Any]]) -> list[Any]:
    """Of (field, thing) pairs (a list's columns, filters or searched columns), the things whose field
    the viewer may see."""
    return [thing for field, thing in named if scope.shows(field)]
