"""Balances and debts learned from providers: a provider's account check read by a field mapping.

Threshold subscriptions need the subscriber's balance at the provider, debt subscriptions the
debt. Providers tell them in the answer to the account check the hub already sends for the channel
API (``POST /api/v1/checks``, :mod:`paymux.payments.checks`): OSMP providers as extra fields of the
answer (``<fields><field1 name="balance">5.00</field1></fields>``), JSON/HTTP providers in the
check's ``info`` object. Which field is which, and how its amount is written, is configured per
provider in its ``config`` under ``recurring``::

    config:
      url: https://provider.example/osmp
      recurring:
        balance_field: balance   # the answer's field with the balance (omit: the provider has none)
        debt_field: debt         # the answer's field with the debt (omit: the provider has none)
        scale: major             # "major" (default): a decimal string "1500.25"; "minor": 150025
        check_amount: "1.00"     # optional: the amount the check is sent with (default: the
                                 # service's minimum amount, else one major unit)

A field is looked up by name among the answer's text fields (:attr:`ProtocolResult.fields`: OSMP's
``<fields>``, the JSON check's ``info`` values), then in the answer's ``info`` where a dotted name
(``account.balance``) walks into nested objects. Amounts are converted exactly: a decimal string
with more digits than the currency has (``"12.345"`` RUB) is refused, never rounded, and floats are
never involved (JSON numbers with a fraction arrive as their literal text). A balance may be
negative (an overdrawn account).

:func:`observe` asks the service's route the way a channel's check is routed (priority, weights,
switched-off candidates, opening hours, circuit breakers), skipping providers without a mapping for
the value asked. The first provider that answers decides; providers that do not answer are skipped.
Whatever goes wrong is an :class:`ObserveError` with a ``code`` and whether asking again later may
help (``temporary``): it never raises anything else for a provider's answer or a network failure.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from paymux.catalog.snapshot import ChannelView, ProviderView, ServiceView, Snapshot
from paymux.db.base import utcnow
from paymux.money import MoneyError, exponent, parse_amount
from paymux.providers.base import CheckRequest, ProtocolResult
from paymux.routing.engine import plan_route

if TYPE_CHECKING:
    from paymux.runtime import Hub

Kind = Literal["balance", "debt"]
KINDS: tuple[Kind, ...] = ("balance", "debt")
SCALES = ("major", "minor")
UNANSWERED = ("unreachable", "unknown", "temporary")
MAPPING_KEYS = frozenset({"balance_field", "debt_field", "scale", "check_amount"})

_MAJOR_RE = re.compile(r"^[+-]?[0-9]{1,15}(?:\.[0-9]{1,12})?\Z")
_MINOR_RE = re.compile(r"^[+-]?[0-9]{1,18}\Z")
_FIELD_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}\Z")

ErrorCode = Literal[
    "unknown_service",  # no such service (or it is switched off)
    "no_mapping",  # no provider on the service's route maps this value
    "no_route",  # no provider on the route could be asked (switched off, hours, breaker)
    "unavailable",  # every provider asked failed to answer (down, timeout): ask again later
    "rejected",  # the provider refused the account (unknown account, blocked...)
    "no_value",  # the provider answered but its answer has no such field
    "bad_value",  # the field is there but is not an exact amount
]


class ObserveError(Exception):
    """The balance or debt could not be learned; ``temporary``: asking again later may help."""

    def __init__(
        self, code: ErrorCode, message: str, *, temporary: bool = False, provider: str | None = None
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.temporary = temporary
        self.provider = provider


@dataclass(frozen=True, slots=True)
class Observation:
    """A balance or debt in minor units of ``currency``; ``raw`` tells where it came from."""

    value: int
    currency: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Mapping:
    """A provider's ``config.recurring``."""

    balance_field: str | None = None
    debt_field: str | None = None
    scale: str = "major"
    check_amount: str | None = None

    def field_for(self, kind: Kind) -> str | None:
        return self.balance_field if kind == "balance" else self.debt_field


def mapping_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with a provider config's ``recurring`` mapping (empty when fine or absent)."""
    value = config.get("recurring")
    if value is None:
        return []
    if not isinstance(value, dict):
        return ["recurring must be a mapping such as {balance_field: balance, scale: major}"]
    problems: list[str] = []
    unknown = sorted(str(k) for k in value if k not in MAPPING_KEYS)
    if unknown:
        problems.append(
            f"recurring has unknown keys {', '.join(unknown)} (expected {', '.join(sorted(MAPPING_KEYS))})"
        )
    for key in ("balance_field", "debt_field"):
        name = value.get(key)
        if name is not None and (not isinstance(name, str) or not _FIELD_RE.match(name)):
            problems.append(f"recurring.{key} must be a field name such as 'balance' (got {name!r})")
    scale = value.get("scale", "major")
    if scale not in SCALES:
        problems.append(f"recurring.scale must be major or minor (got {scale!r})")
    amount = value.get("check_amount")
    if amount is not None and (
        not isinstance(amount, str) or not re.match(r"^[0-9]{1,15}(?:\.[0-9]{1,6})?\Z", amount)
    ):
        problems.append(f'recurring.check_amount must be a decimal string such as "1.00" (got {amount!r})')
    return problems


def mapping_of(provider: ProviderView) -> Mapping | None:
    """The provider's mapping, or None when it has none (or an unusable one)."""
    value = provider.config.get("recurring")
    if not isinstance(value, dict) or mapping_problems(provider.config):
        return None
    return Mapping(
        balance_field=value.get("balance_field"),
        debt_field=value.get("debt_field"),
        scale=value.get("scale", "major"),
        check_amount=value.get("check_amount"),
    )


def to_minor(text: str | int, currency: str, scale: str = "major") -> int:
    """An amount as a provider wrote it, in minor units, exactly; ``ValueError`` saying why not."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"{text!r} is not an amount")
    raw = str(text).strip()
    digits = exponent(currency)
    if scale == "minor":
        if not _MINOR_RE.match(raw):
            raise ValueError(f"{raw!r} is not a whole number of minor units")
        return int(raw)
    if not _MAJOR_RE.match(raw):
        raise ValueError(f'{raw!r} is not a decimal amount such as "150.00"')
    try:
        scaled = Decimal(raw).scaleb(digits)
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise ValueError(f"{raw!r} is not a decimal amount") from None
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{raw!r} has more decimal places than {currency} has ({digits})")
    return int(scaled)


def _lookup(result: ProtocolResult, name: str) -> Any:
    """The value of field ``name`` in a check answer, or None."""
    if name in result.fields:
        return result.fields[name]
    node: Any = result.info
    for part in name.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = None
            break
    if node is not None:
        return node
    nested = result.info.get("fields")  # OSMP keeps the answer's <fields> here too
    if isinstance(nested, dict) and name in nested:
        return nested[name]
    return None


def read_value(result: ProtocolResult, mapping: Mapping, kind: Kind, currency: str, provider: str) -> int:
    """The balance or debt in a check answer by the provider's mapping; :class:`ObserveError` if none."""
    name = mapping.field_for(kind)
    if name is None:  # pragma: no cover - providers without the field are never asked
        raise ObserveError("no_mapping", f"provider {provider} has no {kind}_field", provider=provider)
    value = _lookup(result, name)
    if value is None or value == "":
        raise ObserveError(
            "no_value",
            f"the check answer of provider {provider} has no field {name!r} (its {kind})",
            provider=provider,
        )
    try:
        return to_minor(value, currency, mapping.scale)
    except (ValueError, MoneyError) as exc:
        raise ObserveError(
            "bad_value",
            f"provider {provider} gave {kind} field {name!r} = {str(value)[:50]!r}: {exc}",
            provider=provider,
        ) from None


def _neutral_channel() -> ChannelView:
    """The channel a check of the hub's own is routed as: no group, no agent."""
    return ChannelView(
        id=0,
        code="recurring",
        name="recurring",
        kind="hub",
        group_id=None,
        agent_id=None,
        enabled=True,
        signing="none",
        signing_required=False,
        hmac_secret=None,
        rsa_public_key=None,
    )


def _check_amount(service: ServiceView, mapping: Mapping) -> int:
    if mapping.check_amount is not None:
        try:
            return parse_amount(mapping.check_amount, service.currency)
        except MoneyError:
            pass
    if service.min_amount is not None and service.min_amount > 0:
        return service.min_amount
    return 10 ** exponent(service.currency)


def _service(snap: Snapshot, service_id: int) -> ServiceView:
    service = snap.services_by_id.get(service_id)
    if service is None or not service.enabled:
        raise ObserveError("unknown_service", f"service {service_id} does not exist or is switched off")
    return service


async def observe(
    hub: Hub,
    *,
    service_id: int,
    account: str,
    kind: Kind,
    channel_id: int | None = None,
    fields: dict[str, str] | None = None,
    at: dt.datetime | None = None,
) -> Observation:
    """The subscriber's balance or debt at the provider of ``service_id`` for ``account``.

    ``channel_id``: route as this channel would (its group's candidates); by default the check is
    routed as the hub's own (candidates restricted to a channel group are left out). ``fields``: the
    service's extra fields sent with the check (e.g. a template's). Raises :class:`ObserveError`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be balance or debt, not {kind!r}")
    snap = await hub.catalog.get()
    service = _service(snap, service_id)
    channel = snap.channels.get(channel_id) if channel_id is not None else None
    channel = channel or _neutral_channel()
    now = at or utcnow()
    unmapped: list[str] = []
    # the route is planned per amount; each mapped provider's check amount may differ
    plan = plan_route(snap, service, channel, _probe_amount(snap, service), now, hub.breakers)
    failures: list[str] = []
    asked = 0
    for option in plan.options:
        p = option.provider
        mapping = mapping_of(p)
        if mapping is None or mapping.field_for(kind) is None:
            unmapped.append(p.code)
            continue
        amount = _check_amount(service, mapping)
        c = option.candidate
        if (c.min_amount is not None and amount < c.min_amount) or (
            c.max_amount is not None and amount > c.max_amount
        ):
            failures.append(f"{p.code}: check amount outside the route's limits")
            continue
        asked += 1
        txn_id = await hub.check_ids.next(hub)
        hub.breakers.begin_call(p.id, p.breaker)
        result = await hub.protocol(p).check(
            CheckRequest(
                txn_id=txn_id,
                service_code=c.provider_service_code,
                account=account,
                amount=amount,
                currency=service.currency,
                fields=dict(fields or {}),
            )
        )
        hub.breakers.record(p.id, p.breaker, result.outcome not in UNANSWERED)
        if result.outcome in UNANSWERED:
            failures.append(f"{p.code}: {result.message or result.outcome}")
            continue
        if result.outcome not in ("ok", "pending"):
            raise ObserveError(
                "rejected",
                f"provider {p.code} refused account {account!r}: {result.message or result.code}",
                provider=p.code,
            )
        value = read_value(result, mapping, kind, service.currency, p.code)
        name = mapping.field_for(kind)
        return Observation(
            value=value,
            currency=service.currency,
            raw={
                "provider": p.code,
                "kind": kind,
                "field": name,
                "text": str(_lookup(result, name or "")),
                "txn_id": txn_id,
                "code": result.code,
                "fields": dict(result.fields),
                "info": result.info,
            },
        )
    if asked:
        raise ObserveError(
            "unavailable",
            f"no provider answered the {kind} check: " + "; ".join(failures),
            temporary=True,
        )
    if unmapped and not failures and not plan.skipped:
        raise ObserveError(
            "no_mapping",
            f"no provider of service {service.code} tells the {kind} "
            f"(set config.recurring.{kind}_field of: {', '.join(unmapped)})",
        )
    detail = "; ".join(plan.skipped + failures) or "the service has no route"
    if unmapped:
        detail += f"; without a {kind} mapping: {', '.join(unmapped)}"
    raise ObserveError("no_route", f"no provider can be asked for the {kind}: {detail}", temporary=True)


def _probe_amount(snap: Snapshot, service: ServiceView) -> int:
    """The amount the route is planned for: the smallest a mapped provider checks with."""
    amounts = [
        _check_amount(service, m)
        for c in snap.routes.get(service.id, ())
        if (p := snap.providers.get(c.provider_id)) is not None and (m := mapping_of(p)) is not None
    ]
    return min(amounts) if amounts else _check_amount(service, Mapping())
