"""Wallet operations on the double-entry ledger: issuers, customers, wallets, and the typed,
idempotent operations that move value between them.

Sign convention (the ledger's: debit > 0). A wallet account's balance is what its customer holds;
an issuer's float account is minus what the issuer has emitted and not redeemed; ``wallet_fees``
holds the fees the operator earned in the issuer's unit. So for every issuer, at every moment::

    -float == sum(wallet balances) + fees

The postings of each operation (``A`` the amount, ``F`` the fee, ``B`` the exchanged amount)::

    topup             float -A              wallet +(A-F)         fees +F      (emission)
    withdrawal        wallet -(A+F)         float +A              fees +F      (redemption)
    p2p               from -(A+F)           to +A                 fees +F
    merchant_payment  payer -A              merchant +(A-F)       fees +F      (the merchant pays F)
    refund            merchant -(R+F)       payer +R              fees +F      (of a merchant payment)
    service_payment   wallet -(A+F)         hold +A               fees +F      (then wallets.hub_payments)
    exchange    from -(A+F)  float1 +A  fees1 +F  |  float2 -B  to +B   (redeem one unit, emit another)

Every entry goes through ``paymux.ledger.service.post_entry``: it is checked to balance per unit
before anything is written, and balances are updated in ascending account id order under the row
lock of each account (PostgreSQL ``UPDATE`` takes it; SQLite has one writer), with a floor on the
paying wallet (minus its overdraft) and on the float of the emitting issuer (minus its emission
limit): a concurrent payment that would cross a floor fails instead of overdrawing.

An operation is refused (and recorded ``failed`` with its problem, replayed as is for the same
idempotency key) when the customer or a wallet is blocked, a limit refuses it, the wallet cannot
cover it or the issuer's emission limit would be crossed. A limit with action ``review`` holds it
as ``pending_review`` (no postings) until an administrator approves (posted then) or rejects it.
The initiating customer's row is locked first, so the daily counts of one customer are exact under
concurrent requests; account rows are locked after it, always in id order, so nothing deadlocks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.db.concurrent import inserted, locked
from paymux.errors import Problem, invalid, not_found
from paymux.ledger.models import Account
from paymux.ledger.service import AccountCache, AccountKey, InsufficientFunds, Line, post_entry
from paymux.money import CURRENCIES
from paymux.rates.service import RateError, rate_at
from paymux.tariffs.calc import TariffError, compute, rule_from_json, rule_to_json
from paymux.wallets import fraud
from paymux.wallets.contracts import ContractLimit, Terms, check_contract_limits, terms_for
from paymux.wallets.models import (
    IDENTIFICATION_LEVELS,
    ISSUER_KINDS,
    LIMIT_ACTIONS,
    SUPPORTED_TYPES,
    Issuer,
    Wallet,
    WalletCustomer,
    WalletLimit,
    WalletOperation,
)
from paymux.wallets.units import MAX_MINOR, MAX_PRECISION, UNIT_CODE, conflict, format_units

FLOAT = "emoney_float"
WALLET = "wallet"
FEES = "wallet_fees"
HOLD = "wallet_hold"  # money of service payments in flight, owner the issuer


# --- keys of the ledger accounts ----------------------------------------------------------------------


def float_key(issuer: Issuer) -> AccountKey:
    return AccountKey(FLOAT, issuer.id, issuer.currency)


def fees_key(issuer: Issuer) -> AccountKey:
    return AccountKey(FEES, issuer.id, issuer.currency)


def wallet_key(wallet: Wallet, issuer: Issuer) -> AccountKey:
    return AccountKey(WALLET, wallet.id, issuer.currency)


def hold_key(issuer: Issuer) -> AccountKey:
    return AccountKey(HOLD, issuer.id, issuer.currency)


# --- issuers ------------------------------------------------------------------------------------------


def parse_spread(text: object) -> str:
    """A spread percent: a decimal string from 0 to 50 with at most 6 decimals."""
    if not isinstance(text, str) or len(text) > 12:
        raise invalid("invalid-spread", 'exchange_spread_percent must be a decimal string such as "0.5"')
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise invalid("invalid-spread", f"exchange_spread_percent {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0 or value > 50 or -value.as_tuple().exponent > 6:  # type: ignore[operator]
        raise invalid("invalid-spread", "exchange_spread_percent must be from 0 to 50, at most 6 decimals")
    return format(value, "f")


def parse_fee_rules(data: object) -> dict[str, Any]:
    """Fee rules per operation type, in the tariff storage form (money in minor units of the issuer)."""
    if not isinstance(data, dict):
        raise invalid("invalid-fee-rules", "fee_rules must be an object keyed by operation type")
    out: dict[str, Any] = {}
    for op_type, rule in data.items():
        if op_type not in SUPPORTED_TYPES:
            raise invalid("invalid-fee-rules", f"fee_rules: unknown operation type {str(op_type)[:40]!r}")
        try:
            parsed = rule_from_json(rule)
        except (TariffError, TypeError, ValueError) as e:
            raise invalid("invalid-fee-rules", f"fee_rules.{op_type}: {e}") from None
        money = [parsed.fixed, parsed.min, parsed.max]
        for t in parsed.tiers:
            money += [t.from_amount, t.fixed, t.min, t.max]
        if any(m is not None and abs(m) > MAX_MINOR for m in money):
            raise invalid("invalid-fee-rules", f"fee_rules.{op_type}: an amount is too large")
        out[op_type] = rule_to_json(parsed)
    return out


async def create_issuer(
    session: AsyncSession,
    accounts: AccountCache,
    *,
    code: str,
    name: str,
    kind: str,
    currency: str,
    precision: int | None,
    emission_limit: int | None,
    fee_rules: dict[str, Any],
    exchange_spread_percent: str,
) -> Issuer:
    if kind not in ISSUER_KINDS:
        raise invalid("invalid-issuer", f"kind must be one of {list(ISSUER_KINDS)}")
    if not UNIT_CODE.match(currency):
        raise invalid("invalid-issuer", "currency must be three capital letters")
    if kind == "emoney":
        if currency not in CURRENCIES:
            raise invalid("invalid-issuer", f"e-money is tied to an ISO 4217 currency; {currency} is not one")
        iso = CURRENCIES[currency]
        if precision is not None and precision != iso:
            raise invalid("invalid-issuer", f"e-money in {currency} has {iso} minor digits")
        precision = iso
    else:
        if currency in CURRENCIES:
            raise invalid(
                "invalid-issuer", f"{currency} is a currency: units and points need a code of their own"
            )
        if precision is None:
            precision = 0
    if not 0 <= precision <= MAX_PRECISION:
        raise invalid("invalid-issuer", f"precision must be from 0 to {MAX_PRECISION}")
    if await session.scalar(select(Issuer.id).where(Issuer.code == code)) is not None:
        raise conflict("issuer-exists", "Issuer exists", f"issuer {code} exists already")
    issuer = Issuer(
        code=code,
        name=name,
        kind=kind,
        currency=currency,
        precision=precision,
        emission_limit=emission_limit,
        fee_rules=fee_rules,
        exchange_spread_percent=exchange_spread_percent,
        enabled=True,
    )
    if not await inserted(session, issuer):
        raise conflict("issuer-exists", "Issuer exists", f"issuer {code} exists already")
    ids = await accounts.ids(session, [float_key(issuer), fees_key(issuer)])
    issuer.float_account_id = ids[float_key(issuer)]
    await session.flush()
    return issuer


async def issuer_by_code(session: AsyncSession, code: str) -> Issuer:
    issuer = await session.scalar(select(Issuer).where(Issuer.code == code))
    if issuer is None:
        raise not_found(f"issuer {code}")
    return issuer


async def account_balance(session: AsyncSession, account_id: int | None) -> int:
    if account_id is None:
        return 0
    return int(await session.scalar(select(Account.balance).where(Account.id == account_id)) or 0)


async def issuer_totals(session: AsyncSession, accounts: AccountCache, issuer: Issuer) -> dict[str, int]:
    """Outstanding emission (minus the float), the sum of its wallets, the fees it earned and what
    service payments in flight hold (emitted == wallets + fees + held)."""
    ids = await accounts.ids(session, [float_key(issuer), fees_key(issuer)])
    emitted = -await account_balance(session, ids[float_key(issuer)])
    fees = await account_balance(session, ids[fees_key(issuer)])
    hold = hold_key(issuer)  # made by the issuer's first service payment
    held = int(
        await session.scalar(
            select(func.coalesce(func.sum(Account.balance), 0)).where(
                Account.kind == hold.kind,
                Account.owner_id == hold.owner_id,
                Account.currency == hold.currency,
            )
        )
        or 0
    )
    wallets = int(
        await session.scalar(
            select(func.coalesce(func.sum(Account.balance), 0))
            .join(Wallet, Wallet.account_id == Account.id)
            .where(Wallet.issuer_id == issuer.id)
        )
        or 0
    )
    return {"emitted": emitted, "wallets": wallets, "fees": fees, "held": held}


# --- customers and wallets ----------------------------------------------------------------------------


async def signup(
    session: AsyncSession,
    *,
    channel_id: int,
    agent_id: int | None,
    external_ref: str,
    kind: str,
    identification: str,
    name: str | None,
    email: str | None,
    phone: str | None,
) -> tuple[WalletCustomer, bool]:
    """The customer the channel knows as ``external_ref`` (made now if new) and whether it was made.
    Signing up the same reference again returns the customer as it is."""
    query = select(WalletCustomer).where(
        WalletCustomer.channel_id == channel_id, WalletCustomer.external_ref == external_ref
    )
    found = await session.scalar(query)
    if found is not None:
        return found, False
    row = WalletCustomer(
        channel_id=channel_id,
        agent_id=agent_id,
        external_ref=external_ref,
        kind=kind,
        identification=identification,
        status="active",
        name=name,
        email=email,
        phone=phone,
    )
    if await inserted(session, row):
        return row, True
    again = await session.scalar(query)
    if again is None:  # pragma: no cover - the unique key refused it, so it exists
        raise conflict("customer-exists", "Customer exists", "the customer was signed up concurrently")
    return again, False


async def customer_by_ref(session: AsyncSession, channel_id: int, external_ref: str) -> WalletCustomer:
    c = await session.scalar(
        select(WalletCustomer).where(
            WalletCustomer.channel_id == channel_id, WalletCustomer.external_ref == external_ref
        )
    )
    if c is None:
        raise not_found(f"customer {external_ref}")
    return c


async def open_wallet(
    session: AsyncSession, accounts: AccountCache, customer: WalletCustomer, issuer: Issuer
) -> tuple[Wallet, bool]:
    """The customer's wallet in ``issuer``'s unit (opened now if it has none) and whether it was."""
    query = select(Wallet).where(Wallet.customer_id == customer.id, Wallet.issuer_id == issuer.id)
    found = await session.scalar(query)
    if found is not None:
        return found, False
    if customer.status != "active":
        raise blocked_customer(customer)
    if not issuer.enabled:
        raise invalid("issuer-disabled", f"issuer {issuer.code} is disabled")
    wallet = Wallet(customer_id=customer.id, issuer_id=issuer.id, status="active", overdraft=0)
    if not await inserted(session, wallet):
        again = await session.scalar(query)
        if again is None:  # pragma: no cover
            raise conflict("wallet-exists", "Wallet exists", "the wallet was opened concurrently")
        return again, False
    ids = await accounts.ids(session, [wallet_key(wallet, issuer)])
    wallet.account_id = ids[wallet_key(wallet, issuer)]
    await session.flush()
    return wallet, True


def blocked_customer(customer: WalletCustomer) -> Problem:
    return Problem(
        403,
        "customer-blocked",
        "Customer blocked",
        f"customer {customer.id} is blocked: its operations are refused until it is unblocked",
        customer_id=customer.id,
    )


def blocked_wallet(wallet: Wallet) -> Problem:
    return Problem(
        403, "wallet-blocked", "Wallet blocked", f"wallet {wallet.id} is blocked", wallet_id=wallet.id
    )


# --- operations ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """What a client asked for; ``amount`` in minor units of the source unit (the destination
    wallet's for a top-up)."""

    channel_id: int
    idempotency_key: str
    type: str
    customer_id: int
    amount: int
    from_wallet_id: int | None = None
    to_wallet_id: int | None = None
    refund_of: int | None = None  # a refund: the operation it refunds
    detail: str | None = None  # what else the request named (a service payment's service and account)

    def fingerprint(self) -> str:
        body: dict[str, Any] = {
            "type": self.type,
            "customer": self.customer_id,
            "amount": self.amount,
            "from": self.from_wallet_id,
            "to": self.to_wallet_id,
        }
        if self.refund_of is not None:
            body["refund_of"] = self.refund_of
        if self.detail is not None:
            body["detail"] = self.detail
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(slots=True)
class Plan:
    """A checked request: the wallets and issuers involved, the fee and the exchanged amount."""

    source: Issuer
    target: Issuer
    from_wallet: Wallet | None
    to_wallet: Wallet | None
    amount: int
    to_amount: int
    fee: int
    rate: str | None
    terms: Terms | None = None  # the fee and limits that apply (``paymux.wallets.contracts``)


def fee_for(issuer: Issuer, op_type: str, amount: int) -> int:
    rule = (issuer.fee_rules or {}).get(op_type)
    if not rule:
        return 0
    return compute(rule_from_json(rule), amount)


async def exchange_rate(session: AsyncSession, source: Issuer, target: Issuer, at: dt.datetime) -> Fraction:
    """Target minor units per source minor unit: the system rate (``paymux.rates``) less the target
    issuer's spread, scaled by the two precisions; exact (a fraction)."""
    if source.currency == target.currency:
        rate = Fraction(1)
    else:
        if source.kind != "emoney" or target.kind != "emoney":
            raise invalid(
                "no-rate",
                f"no exchange rate between {source.currency} and {target.currency} (not currencies)",
            )
        try:
            found = await rate_at(session, source.currency, target.currency, at)
        except RateError as e:
            raise invalid("no-rate", str(e)) from None
        if found is None:
            raise invalid("no-rate", f"no {source.currency}/{target.currency} exchange rate in force")
        stored = Fraction(Decimal(found.version.rate))
        rate = 1 / stored if found.inverted else stored
    spread = Fraction(Decimal(target.exchange_spread_percent or "0")) / 100
    return rate * (1 - spread) * Fraction(10) ** (target.precision - source.precision)


def exchanged(amount: int, rate: Fraction) -> int:
    """``amount`` times ``rate``, rounded down (toward zero) to a whole minor unit: the customer
    never gets more than the exact value; the remainder (under one minor unit) stays with the operator."""
    return int(amount * rate.numerator // rate.denominator)


def _rate_text(rate: Fraction) -> str:
    return format(Decimal(rate.numerator) / Decimal(rate.denominator), "f")[:60]


async def _wallet(session: AsyncSession, wallet_id: int | None, what: str) -> Wallet:
    w = await session.get(Wallet, wallet_id) if wallet_id is not None else None
    if w is None:
        raise not_found(f"{what} {wallet_id}")
    return w


async def plan(session: AsyncSession, req: OperationRequest) -> Plan:
    """Check what does not depend on balances or limits (raises problems 404/422)."""
    if req.type not in SUPPORTED_TYPES:
        raise invalid("unsupported-operation", f"operation type {req.type} is not supported yet")
    if not 0 < req.amount <= MAX_MINOR:
        raise invalid("invalid-amount", "amount must be greater than zero")
    from_w: Wallet | None = None
    to_w: Wallet | None = None
    if req.type == "refund":
        return await _refund_plan(session, req)
    if req.type in ("withdrawal", "p2p", "exchange", "merchant_payment", "service_payment"):
        from_w = await _wallet(session, req.from_wallet_id, "wallet")
        if from_w.customer_id != req.customer_id:
            raise not_found(f"wallet {req.from_wallet_id}")
    if req.type in ("topup", "p2p", "exchange", "merchant_payment"):
        to_w = await _wallet(session, req.to_wallet_id, "wallet")
        if req.type in ("topup", "exchange") and to_w.customer_id != req.customer_id:
            raise not_found(f"wallet {req.to_wallet_id}")
    if from_w is not None and to_w is not None and from_w.id == to_w.id:
        raise invalid("same-wallet", "the source and the destination are the same wallet")
    source_id = from_w.issuer_id if from_w is not None else to_w.issuer_id  # type: ignore[union-attr]
    source = await session.get(Issuer, source_id)
    target = source if to_w is None else await session.get(Issuer, to_w.issuer_id)
    assert source is not None and target is not None
    if req.type == "p2p" and source.id != target.id:
        raise invalid("issuer-mismatch", "a transfer goes between wallets of one issuer; use an exchange")
    if req.type == "merchant_payment":
        if source.id != target.id:
            raise invalid("issuer-mismatch", "a merchant is paid in the unit of the paying wallet")
        merchant = await session.get(WalletCustomer, to_w.customer_id)  # type: ignore[union-attr]
        if merchant is None or merchant.kind != "merchant":
            raise invalid("not-a-merchant", f"wallet {req.to_wallet_id} is not a merchant's")
    if req.type == "exchange" and source.id == target.id:
        raise invalid("issuer-mismatch", "an exchange goes between wallets of two issuers")
    for i in {source.id: source, target.id: target}.values():
        if not i.enabled:
            raise invalid("issuer-disabled", f"issuer {i.code} is disabled")
    # the initiator's contract (its own, its group's) or the issuer's defaults
    terms = await terms_for(session, req.customer_id, source, req.type)
    fee = terms.fee(req.amount)
    to_amount, rate = req.amount, None
    if req.type == "topup":
        if fee >= req.amount:
            raise invalid(
                "amount-too-small", "the fee takes the whole top-up", fee=format_units(fee, source.precision)
            )
        to_amount = req.amount - fee
    elif req.type == "merchant_payment":  # the merchant pays the fee out of what it receives
        if fee >= req.amount:
            raise invalid(
                "amount-too-small",
                "the merchant's fee takes the whole payment",
                fee=format_units(fee, source.precision),
            )
        to_amount = req.amount - fee
    elif req.type == "exchange":
        r = await exchange_rate(session, source, target, utcnow())
        to_amount, rate = exchanged(req.amount, r), _rate_text(r)
        if to_amount <= 0:
            raise invalid(
                "amount-too-small", "the amount is worth less than one minor unit after the exchange"
            )
    return Plan(source, target, from_w, to_w, req.amount, to_amount, fee, rate, terms)


async def _refund_plan(session: AsyncSession, req: OperationRequest) -> Plan:
    """A refund of a merchant payment: from the merchant's wallet back to the payer's, started by
    the merchant (``req.customer_id``); the issuer's ``refund`` fee, if any, on top, to the merchant."""
    original = await session.get(WalletOperation, req.refund_of) if req.refund_of is not None else None
    if original is None or original.type != "merchant_payment" or original.to_wallet_id is None:
        raise not_found(f"merchant payment {req.refund_of}")
    merchant_w = await _wallet(session, original.to_wallet_id, "wallet")
    if merchant_w.customer_id != req.customer_id:
        raise not_found(f"merchant payment {req.refund_of}")
    if original.state != "done":
        raise invalid("not-refundable", f"operation {original.id} is {original.state}, not done")
    payer_w = await _wallet(session, original.from_wallet_id, "wallet")
    issuer = await session.get(Issuer, merchant_w.issuer_id)
    assert issuer is not None
    fee = fee_for(issuer, "refund", req.amount)
    return Plan(issuer, issuer, merchant_w, payer_w, req.amount, req.amount, fee, None)


async def refundable(session: AsyncSession, original: WalletOperation) -> int:
    """What may still be refunded of ``original``: its amount less the refunds done or held."""
    refunded = await session.scalar(
        select(func.coalesce(func.sum(WalletOperation.amount), 0)).where(
            WalletOperation.refund_of_id == original.id,
            WalletOperation.type == "refund",
            WalletOperation.state.in_(("done", "pending_review")),
        )
    )
    return original.amount - int(refunded or 0)


def lines(op_type: str, p: Plan) -> list[Line]:
    """The journal entry of an operation (see the module's docstring)."""
    src, dst = p.source, p.target
    if op_type == "topup":
        assert p.to_wallet is not None
        return [
            Line(float_key(src), -p.amount),
            Line(wallet_key(p.to_wallet, src), p.amount - p.fee),
            Line(fees_key(src), p.fee),
        ]
    assert p.from_wallet is not None
    out = [Line(wallet_key(p.from_wallet, src), -(p.amount + p.fee)), Line(fees_key(src), p.fee)]
    if op_type == "withdrawal":
        return [*out, Line(float_key(src), p.amount)]
    if op_type == "service_payment":
        return [*out, Line(hold_key(src), p.amount)]
    assert p.to_wallet is not None
    if op_type in ("p2p", "refund"):
        return [*out, Line(wallet_key(p.to_wallet, dst), p.amount)]
    if op_type == "merchant_payment":  # the payer pays A; the merchant gets A - F
        return [
            Line(wallet_key(p.from_wallet, src), -p.amount),
            Line(wallet_key(p.to_wallet, dst), p.to_amount),
            Line(fees_key(src), p.fee),
        ]
    # exchange: redeem in the source unit, emit in the target unit
    return [
        *out,
        Line(float_key(src), p.amount),
        Line(float_key(dst), -p.to_amount),
        Line(wallet_key(p.to_wallet, dst), p.to_amount),
    ]


def floors(p: Plan) -> dict[AccountKey, int]:
    out: dict[AccountKey, int] = {}
    if p.from_wallet is not None:
        out[wallet_key(p.from_wallet, p.source)] = -p.from_wallet.overdraft
    for issuer in (p.source, p.target):
        if issuer.emission_limit is not None:
            out[float_key(issuer)] = -issuer.emission_limit
    return out


async def execute(
    session: AsyncSession, accounts: AccountCache, req: OperationRequest
) -> tuple[WalletOperation, bool]:
    """Carry out (or replay) an operation; returns it and whether it was made by this call.

    The operation's ``state`` says how it ended: ``done``, ``pending_review``, or ``failed`` with
    its ``problem``. A problem raised instead (404, 409, 422) means nothing was recorded.
    """
    fingerprint = req.fingerprint()
    existing = await _existing(session, req, fingerprint)
    if existing is not None:
        return existing, False
    p = await plan(session, req)
    # the initiator's row first: its operations queue here, so its day's counts are exact; a
    # "no key update" lock, which the key-share locks of the foreign keys to it do not wait for
    customer = await _lock_customer(session, req.customer_id)
    existing = await _existing(session, req, fingerprint)  # made while this request waited
    if existing is not None:
        return existing, False
    op = WalletOperation(
        channel_id=req.channel_id,
        idempotency_key=req.idempotency_key,
        request_hash=fingerprint,
        type=req.type,
        state="created",
        customer_id=req.customer_id,
        issuer_id=p.source.id,
        from_wallet_id=p.from_wallet.id if p.from_wallet else None,
        to_wallet_id=p.to_wallet.id if p.to_wallet else None,
        amount=p.amount,
        currency=p.source.currency,
        to_amount=p.to_amount,
        to_currency=p.target.currency,
        fee=p.fee,
        rate=p.rate,
        refund_of_id=req.refund_of,
    )
    if not await inserted(session, op):  # the same key, made concurrently: answer as it was answered
        again = await _existing(session, req, fingerprint)
        if again is None:  # pragma: no cover
            raise conflict("idempotency-conflict", "Request in progress", "retry the request")
        return again, False
    try:
        await _check_blocks(session, customer, p)
        if req.type == "refund":
            await _check_refundable(session, op, p)
        limit = await check_limits(
            session, customer, req.type, p.source, p.amount, exclude=op.id, terms=p.terms
        )
        if limit is not None:
            op.state, op.limit_id = "pending_review", limit.id
            op.hold_reason = f"limit {limit.name!r}"
            op.updated_at = utcnow()
            await session.flush()
            return op, True
        rule = await fraud.matching_rule(
            session, customer, req.type, p.source, p.amount, p.to_wallet, exclude=op.id
        )
        if rule is not None:
            issuer = p.source if rule.issuer_id is not None else None
            op.state, op.fraud_rule_id = "pending_review", rule.id
            op.hold_reason = fraud.describe(rule, issuer)
            op.updated_at = utcnow()
            await session.flush()
            return op, True
        await _post(session, accounts, op, p)
    except Problem as e:
        _fail(op, e)
    await session.flush()
    await _after_done(session, accounts, op)
    return op, True


async def _check_refundable(session: AsyncSession, op: WalletOperation, p: Plan) -> None:
    """Refunds of one payment never add up to more than it: its row is locked while they are
    counted (refunds by the merchant and by an administrator alike)."""
    original = await locked(session, WalletOperation, op.refund_of_id)
    assert original is not None
    left = await refundable(session, original) + (op.amount if op.state == "pending_review" else 0)
    if p.amount > left:
        raise Problem(
            422,
            "refund-exceeds-payment",
            "Refund exceeds the payment",
            f"operation {original.id} may be refunded {format_units(max(left, 0), p.source.precision)} more",
            refundable=format_units(max(left, 0), p.source.precision),
        )


async def _after_done(session: AsyncSession, accounts: AccountCache, op: WalletOperation) -> None:
    """What a done operation sets off: the cashback of the payee's profile (never fails the operation)."""
    if op.state != "done":
        return
    from paymux.wallets.cashback import credit_cashback  # it builds on this module

    await credit_cashback(session, accounts, op)


async def _existing(session: AsyncSession, req: OperationRequest, fingerprint: str) -> WalletOperation | None:
    op = await session.scalar(
        select(WalletOperation).where(
            WalletOperation.channel_id == req.channel_id,
            WalletOperation.idempotency_key == req.idempotency_key,
        )
    )
    if op is not None and op.request_hash != fingerprint:
        raise conflict(
            "idempotency-key-reused",
            "Idempotency key reused",
            "this Idempotency-Key was used for a different request",
            operation_id=op.id,
        )
    return op


async def _lock_customer(session: AsyncSession, customer_id: int) -> WalletCustomer:
    c = await locked(session, WalletCustomer, customer_id, key_share=True)  # FOR NO KEY UPDATE
    if c is None:  # pragma: no cover - the foreign key holds it
        raise not_found(f"customer {customer_id}")
    return c


async def _check_blocks(session: AsyncSession, customer: WalletCustomer, p: Plan) -> None:
    if customer.status != "active":
        raise blocked_customer(customer)
    for w in (p.from_wallet, p.to_wallet):
        if w is None:
            continue
        await session.refresh(w)
        if w.status != "active":
            raise blocked_wallet(w)
        if w.customer_id != customer.id:
            other = await session.get(WalletCustomer, w.customer_id, populate_existing=True)
            if other is None or other.status != "active":
                raise Problem(
                    403,
                    "recipient-blocked",
                    "Recipient blocked",
                    f"the recipient of wallet {w.id} is blocked",
                )


async def _post(session: AsyncSession, accounts: AccountCache, op: WalletOperation, p: Plan) -> None:
    try:
        async with session.begin_nested():
            op.entry_id = await post_entry(
                session,
                accounts,
                f"wallet_{op.type}",
                lines(op.type, p),
                memo=f"wallet operation {op.id}",
                floors=floors(p),
            )
    except InsufficientFunds as e:
        if e.key.kind == FLOAT:
            code = p.target.code if e.key.owner_id == p.target.id else p.source.code
            raise Problem(
                422,
                "emission-limit-exceeded",
                "Emission limit exceeded",
                f"the operation would take the emission of issuer {code} over its limit",
                issuer=code,
            ) from None
        raise Problem(
            422,
            "insufficient-funds",
            "Insufficient funds",
            "the wallet's balance (with its overdraft) does not cover the amount and the fee",
            wallet_id=e.key.owner_id,
        ) from None
    # a service payment waits for its payment (wallets.services); everything else is done now
    op.state = "processing" if op.type == "service_payment" else "done"
    op.updated_at = utcnow()


def _fail(op: WalletOperation, e: Problem) -> None:
    op.state, op.updated_at = "failed", utcnow()
    op.problem = e.to_dict()


# --- limits -------------------------------------------------------------------------------------------


def day_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def over_limit(limit: WalletLimit, issuer: Issuer, amount: int, count: int, total: int) -> Problem | None:
    """The problem naming which bound of ``limit`` the operation breaks, or None."""

    def problem(bound: str, value: int, detail: str) -> Problem:
        fmt = str(value) if bound == "daily_count" else format_units(value, issuer.precision)
        return Problem(
            422,
            "limit-exceeded",
            "Limit exceeded",
            f"limit {limit.name!r} ({bound} {fmt}): {detail}",
            limit={"id": limit.id, "name": limit.name, "bound": bound, "value": fmt, "action": limit.action},
        )

    if limit.min_amount is not None and amount < limit.min_amount:
        return problem("min_amount", limit.min_amount, "the amount is below the minimum")
    if limit.max_amount is not None and amount > limit.max_amount:
        return problem("max_amount", limit.max_amount, "the amount is above the maximum")
    if limit.daily_count is not None and count + 1 > limit.daily_count:
        return problem("daily_count", limit.daily_count, "too many operations of this type today")
    if limit.daily_amount is not None and total + amount > limit.daily_amount:
        return problem("daily_amount", limit.daily_amount, "the day's total would exceed the limit")
    return None


async def check_limits(
    session: AsyncSession,
    customer: WalletCustomer,
    op_type: str,
    issuer: Issuer,
    amount: int,
    *,
    exclude: int | None,
    terms: Terms | None = None,
) -> WalletLimit | ContractLimit | None:
    """Raise the problem of a ``refuse`` limit broken; return a broken ``review`` limit; else None.
    The limits of the customer's contract replace the issuer's when it has terms for the type."""
    if terms is None:
        terms = await terms_for(session, customer.id, issuer, op_type)
    if terms.limits is not None:
        return await check_contract_limits(
            session, customer, op_type, issuer, amount, terms.limits, exclude=exclude
        )
    limits = (
        await session.scalars(
            select(WalletLimit)
            .where(
                WalletLimit.issuer_id == issuer.id,
                WalletLimit.type == op_type,
                WalletLimit.identification == customer.identification,
            )
            .order_by(WalletLimit.id)
        )
    ).all()
    if not limits:
        return None
    conds = [
        WalletOperation.customer_id == customer.id,
        WalletOperation.type == op_type,
        WalletOperation.issuer_id == issuer.id,
        WalletOperation.created_at >= day_start(utcnow()),
        WalletOperation.state.in_(("done", "pending_review")),
    ]
    if exclude is not None:
        conds.append(WalletOperation.id != exclude)
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(WalletOperation.amount), 0)).where(*conds)
        )
    ).one()
    count, total = int(row[0]), int(row[1])
    review: WalletLimit | None = None
    for limit in limits:
        problem = over_limit(limit, issuer, amount, count, total)
        if problem is None:
            continue
        if limit.action == "refuse":
            raise problem
        review = review or limit
    return review


def check_limit_fields(action: str, identification: str, op_type: str) -> None:
    if action not in LIMIT_ACTIONS:
        raise invalid("invalid-limit", f"action must be one of {list(LIMIT_ACTIONS)}")
    if identification not in IDENTIFICATION_LEVELS:
        raise invalid("invalid-limit", f"identification must be one of {list(IDENTIFICATION_LEVELS)}")
    if op_type not in SUPPORTED_TYPES:
        raise invalid("invalid-limit", f"type must be one of {list(SUPPORTED_TYPES)}")


# --- review -------------------------------------------------------------------------------------------


async def review(
    session: AsyncSession,
    accounts: AccountCache,
    operation_id: int,
    *,
    approve: bool,
    actor: str,
    reason: str,
) -> WalletOperation:
    """Approve (post it now, or fail it if it cannot be posted any more) or reject an operation
    waiting for review. Rejected operations leave no postings."""
    op = await locked(session, WalletOperation, operation_id)
    if op is None:
        raise not_found(f"operation {operation_id}")
    if op.state != "pending_review":
        raise conflict("not-pending", "Not waiting for review", f"operation {op.id} is {op.state}")
    if approve and op.blocked:
        raise conflict(
            "operation-blocked",
            "Operation blocked",
            f"operation {op.id} is blocked by anti-fraud: unblock it before approving it, or reject it",
        )
    op.reviewed_by, op.review_reason = actor[:100], reason[:500] or None
    if not approve:
        op.state, op.updated_at = "rejected", utcnow()
        await session.flush()
        return op
    req = OperationRequest(
        op.channel_id,
        op.idempotency_key,
        op.type,
        op.customer_id,
        op.amount,
        op.from_wallet_id,
        op.to_wallet_id,
        op.refund_of_id,
    )
    try:
        p = await plan(session, req)
        customer = await _lock_customer(session, op.customer_id)
        await _check_blocks(session, customer, p)
        if op.type == "refund":
            await _check_refundable(session, op, p)
        p.fee, p.to_amount, p.rate = op.fee, op.to_amount, op.rate  # as quoted when it was asked
        await _post(session, accounts, op, p)
    except Problem as e:
        _fail(op, e)
    await session.flush()
    await _after_done(session, accounts, op)
    return op


# --- views --------------------------------------------------------------------------------------------


def operation_view(op: WalletOperation, precisions: dict[str, int]) -> dict[str, Any]:
    def fmt(minor: int, cur: str) -> str:
        return format_units(minor, precisions.get(cur, 0))

    out: dict[str, Any] = {
        "id": op.id,
        "type": op.type,
        "state": op.state,
        "amount": fmt(op.amount, op.currency),
        "currency": op.currency,
        "fee": fmt(op.fee, op.currency),
        "from_wallet": op.from_wallet_id,
        "to_wallet": op.to_wallet_id,
        "to_amount": fmt(op.to_amount, op.to_currency),
        "to_currency": op.to_currency,
        "rate": op.rate,
        "entry_id": op.entry_id,
        "created_at": op.created_at.isoformat(),
        "updated_at": op.updated_at.isoformat(),
    }
    if op.state == "pending_review":
        out["limit_id"] = op.limit_id
        out["fraud_rule_id"] = op.fraud_rule_id
        out["hold_reason"] = op.hold_reason
        out["blocked"] = op.blocked
    if op.review_reason:
        out["review_reason"] = op.review_reason
    if op.refund_of_id is not None:
        out["refund_of"] = op.refund_of_id
    return out


async def precisions_of(session: AsyncSession, op: WalletOperation) -> dict[str, int]:
    issuer = await session.get(Issuer, op.issuer_id)  # usually in the session already
    if issuer is not None and op.to_currency == op.currency:
        return {issuer.currency: issuer.precision}
    ids = {op.issuer_id}
    if op.to_wallet_id is not None:
        w = await session.get(Wallet, op.to_wallet_id)
        if w is not None:
            ids.add(w.issuer_id)
    rows = (await session.execute(select(Issuer.currency, Issuer.precision).where(Issuer.id.in_(ids)))).all()
    return {c: int(p) for c, p in rows}
