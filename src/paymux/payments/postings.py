"""The journal entries a payment causes, as ledger lines (debit > 0, credit < 0).

accept:  channel_collected +total | provider account -amount | fees_unearned -fee
success: fees_unearned +fee | revenue_fees -fee
         provider_remuneration +R | revenue_remuneration -R
         commission_expense +C | channel_commission -C
fail / cancel: the exact reverse of accept
reroute (failover): old provider account +amount | new provider account -amount

A prepaid provider's account is its deposit (our money held by it); a postpaid provider's is
what we owe it. Either way a payment moves ``amount`` to the provider's side.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from paymux.ledger.service import SYSTEM, AccountKey, Line


class PaymentLike(TypingProtocol):
    channel_id: int
    currency: str
    amount: int
    fee: int
    total: int
    remuneration: int
    commission: int


def provider_account(provider_id: int, settlement: str, currency: str) -> AccountKey:
    kind = "provider_deposit" if settlement == "prepaid" else "provider_payable"
    return AccountKey(kind, provider_id, currency)


def accept_lines(p: PaymentLike, provider_key: AccountKey) -> list[Line]:
    c = p.currency
    return [
        Line(AccountKey("channel_collected", p.channel_id, c), p.total),
        Line(provider_key, -p.amount),
        Line(AccountKey("fees_unearned", SYSTEM, c), -p.fee),
    ]


def reverse(lines: list[Line]) -> list[Line]:
    return [Line(ln.key, -ln.amount) for ln in lines]


def success_lines(p: PaymentLike, provider_id: int) -> list[Line]:
    c = p.currency
    return [
        Line(AccountKey("fees_unearned", SYSTEM, c), p.fee),
        Line(AccountKey("revenue_fees", SYSTEM, c), -p.fee),
        Line(AccountKey("provider_remuneration", provider_id, c), p.remuneration),
        Line(AccountKey("revenue_remuneration", SYSTEM, c), -p.remuneration),
        Line(AccountKey("commission_expense", SYSTEM, c), p.commission),
        Line(AccountKey("channel_commission", p.channel_id, c), -p.commission),
    ]


def reroute_lines(amount: int, old_key: AccountKey, new_key: AccountKey) -> list[Line]:
    return [Line(old_key, amount), Line(new_key, -amount)]


def deposit_floor(
    settlement: str, overdraft: dict[str, int], key: AccountKey
) -> dict[AccountKey, int] | None:
    """The lowest balance a prepaid deposit may reach (minus its overdraft); none for postpaid."""
    if settlement != "prepaid":
        return None
    return {key: -int(overdraft.get(key.currency, 0))}
