"""Protocol-independent behaviour of an emulated provider.

An :class:`EmulatorConfig` says how the provider behaves overall (latency, error rates, lost
answers, pending payments, downtime) and per account (scripted answers). A
:class:`BehaviourEngine` decides the outcome of each request from the config, the account's
overrides and a (seedable) random generator, and keeps a :class:`Ledger` of the transactions it
has taken, keyed by the hub's ``txn_id``. The ledger makes ``pay`` idempotent — a repeated pay
returns the original outcome and never creates a second transaction — and lets tests verify that
nothing was ever paid twice (``pay_calls`` counts the pay requests that arrived per ``txn_id``).

Protocol modules (``jsonhttp``, later OSMP, Cyberplat, ...) parse their wire format, ask the engine
for a :class:`Decision` and encode it back.

Per-account directives (``accounts: {<account>: {...}}``, ``"*"`` is the fallback for any account):

``check``  ``ok`` | ``reject:<code>:<message>`` | ``temporary:<code>:<message>`` | ``fatal:<code>:<message>``
``pay``    ``ok`` | ``pending`` | ``fatal:<code>:<message>`` | ``temporary:<code>:<message>``
           | ``temporary_then_ok:<n>`` (the first n pays of a txn_id are refused temporarily)
           | ``lost_then_ok`` (the first pay is done but its answer is lost)
           | ``broken_then_ok`` (the first pay is done but answered with garbage)
           | ``pending_then_fatal:<code>:<message>`` (pending, then failed after ``pending_ms``)

Per account too: ``balance`` and ``debt`` (decimal strings in major units, e.g. ``"1500.25"``; a
balance may be negative) and ``info`` (any further fields) are reported in the answers to checks
(the JSON ``info``, OSMP's ``<fields>``): what the hub's recurring payments observe
(:mod:`paymux.recurring.observe`).

An account with a directive is scripted: the random error rates do not apply to it. Random rates
apply to ``check`` (temporary/fatal errors) and ``pay`` (temporary/fatal errors, lost answers,
pending); ``status`` is only affected by latency and downtime.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from paymux.money import format_amount

RESOLUTION = 10**6  # random draws are integers in [0, RESOLUTION)

CHECK_KINDS = frozenset({"ok", "reject", "temporary", "fatal"})
PAY_KINDS = frozenset(
    {
        "ok",
        "pending",
        "fatal",
        "temporary",
        "temporary_then_ok",
        "lost_then_ok",
        "broken_then_ok",
        "pending_then_fatal",
    }
)

TxnStatus = Literal["succeeded", "pending", "failed"]
DecisionKind = Literal["ok", "pending", "rejected", "temporary", "fatal"]


@dataclass(frozen=True, slots=True)
class Directive:
    """A parsed per-account directive such as ``reject:5:account not found``."""

    kind: str
    code: str | None = None
    message: str | None = None
    count: int = 0


def parse_directive(text: str, allowed: frozenset[str]) -> Directive:
    """Parse ``kind[:code[:message]]`` (or ``temporary_then_ok:<n>``); ``ValueError`` if invalid."""
    kind, _, rest = text.strip().partition(":")
    if kind not in allowed:
        raise ValueError(f"unknown directive {text!r} (expected one of: {', '.join(sorted(allowed))})")
    if kind == "temporary_then_ok":
        try:
            count = int(rest)
        except ValueError:
            raise ValueError(f"{text!r}: expected temporary_then_ok:<n> with a whole number n") from None
        if count < 0:
            raise ValueError(f"{text!r}: n must not be negative")
        return Directive(kind, count=count)
    if kind in ("ok", "pending", "lost_then_ok", "broken_then_ok"):
        if rest:
            raise ValueError(f"{text!r}: {kind} takes no arguments")
        return Directive(kind)
    code, _, message = rest.partition(":")
    return Directive(kind, code=code or None, message=message or None)


def _probability(value: Any) -> Decimal:
    if isinstance(value, float):
        value = str(value)  # the literal the user wrote, never binary float arithmetic
    try:
        rate = Decimal(str(value).strip()) if isinstance(value, str | int) else value
    except InvalidOperation:
        raise ValueError(f'{value!r} is not a decimal probability such as "0.05"') from None
    if not isinstance(rate, Decimal) or not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise ValueError(f"{value!r} is not a probability between 0 and 1")
    return rate


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class DowntimeWindow(BaseModel):
    """The provider refuses every request from ``start`` (inclusive) to ``end`` (exclusive), UTC."""

    model_config = ConfigDict(extra="forbid")

    start: dt.datetime
    end: dt.datetime

    @field_validator("start", "end")
    @classmethod
    def _as_utc(cls, value: dt.datetime) -> dt.datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> DowntimeWindow:
        if self.end <= self.start:
            raise ValueError("a downtime window must end after it starts")
        return self

    def covers(self, when: dt.datetime) -> bool:
        return self.start <= when < self.end


class AccountBehaviour(BaseModel):
    """Overrides for one account (or ``"*"``: any account without its own entry)."""

    model_config = ConfigDict(extra="forbid")

    check: str | None = None
    pay: str | None = None
    latency_ms: int | None = Field(default=None, ge=0)
    balance: str | None = None  # decimal string in major units, returned in check info
    debt: str | None = None  # decimal string in major units, returned in check info
    info: dict[str, Any] = Field(default_factory=dict)  # returned in check info

    @field_validator("check")
    @classmethod
    def _check_directive(cls, value: str | None) -> str | None:
        if value is not None:
            parse_directive(value, CHECK_KINDS)
        return value

    @field_validator("pay")
    @classmethod
    def _pay_directive(cls, value: str | None) -> str | None:
        if value is not None:
            parse_directive(value, PAY_KINDS)
        return value

    @field_validator("balance", "debt", mode="before")
    @classmethod
    def _balance(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip()  # a YAML float is taken by its shortest literal (12.5), as written
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f'{value!r} is not a decimal amount such as "1500.00"') from None
        if not amount.is_finite() or "e" in text.lower():
            raise ValueError(f'{value!r} is not a decimal amount such as "1500.00"')
        return text


class EmulatorConfig(BaseModel):
    """How an emulated provider behaves. Probabilities are decimal strings (``"0.05"``), never floats."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0)  # base delay before each answer
    jitter_ms: int = Field(default=0, ge=0)  # plus a uniform random 0..jitter_ms
    temporary_error_rate: Decimal = Decimal(0)
    fatal_error_rate: Decimal = Decimal(0)
    lost_response_rate: Decimal = Decimal(0)  # pay is done, its answer is held lost_hold_ms
    pending_rate: Decimal = Decimal(0)  # pay answers pending, succeeds after pending_ms
    pending_ms: int = Field(default=2000, ge=0)
    lost_hold_ms: int = Field(default=30000, ge=0)
    down: bool = False  # while true every request is refused (temporarily)
    downtime: list[DowntimeWindow] = Field(default_factory=list)
    seed: int | None = None  # makes the random outcomes reproducible
    token: str | None = None  # when set, requests must carry it (protocol-specific credential)
    provider_txn_prefix: str = "EMU-"
    # the number of the first provider transaction id; an emulator restarted against a hub that
    # keeps its database must start after the ids it gave before (a real provider never reuses one)
    provider_txn_start: int = Field(default=1, ge=1)
    accounts: dict[str, AccountBehaviour] = Field(default_factory=dict)

    @field_validator(
        "temporary_error_rate", "fatal_error_rate", "lost_response_rate", "pending_rate", mode="before"
    )
    @classmethod
    def _rate(cls, value: Any) -> Decimal:
        return _probability(value)

    @model_validator(mode="after")
    def _rates_add_up(self) -> EmulatorConfig:
        if self.temporary_error_rate + self.fatal_error_rate + self.lost_response_rate > 1:
            raise ValueError("temporary_error_rate + fatal_error_rate + lost_response_rate must not exceed 1")
        return self

    def account(self, account: str) -> AccountBehaviour | None:
        """The overrides that apply to ``account`` (its own entry, else ``"*"``), if any."""
        return self.accounts.get(account) or self.accounts.get("*")


@dataclass(slots=True)
class EmulatedTxn:
    """A transaction the emulated provider has taken."""

    txn_id: str
    account: str
    amount: int  # minor units
    currency: str
    service: str
    status: TxnStatus
    provider_txn_id: str
    created_at: dt.datetime
    pay_calls: int = 1
    txn_date: str | None = None
    code: str | None = None
    message: str | None = None
    # pending payments become final_status at settle_at_ns (monotonic clock)
    settle_at_ns: int | None = None
    final_status: TxnStatus = "succeeded"
    final_code: str | None = None
    final_message: str | None = None

    def settle(self, now_ns: int) -> None:
        if self.status == "pending" and self.settle_at_ns is not None and now_ns >= self.settle_at_ns:
            self.status = self.final_status
            self.code, self.message = self.final_code, self.final_message
            self.settle_at_ns = None

    def as_json(self) -> dict[str, Any]:
        return {
            "txn_id": self.txn_id,
            "account": self.account,
            "amount": format_amount(self.amount, self.currency),
            "currency": self.currency,
            "service": self.service,
            "status": self.status,
            "provider_txn_id": self.provider_txn_id,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "txn_date": self.txn_date,
            "pay_calls": self.pay_calls,
            "code": self.code,
            "message": self.message,
        }


class Ledger:
    """Transactions by ``txn_id``, plus how many pay requests arrived for every ``txn_id``."""

    def __init__(self) -> None:
        self._txns: dict[str, EmulatedTxn] = {}
        self._calls: dict[str, int] = {}
        self._seq = 0

    def get(self, txn_id: str) -> EmulatedTxn | None:
        return self._txns.get(txn_id)

    def count_pay_call(self, txn_id: str) -> int:
        """Record one more pay request for ``txn_id``; the number so far."""
        calls = self._calls.get(txn_id, 0) + 1
        self._calls[txn_id] = calls
        txn = self._txns.get(txn_id)
        if txn is not None:
            txn.pay_calls = calls
        return calls

    def pay_calls(self, txn_id: str) -> int:
        return self._calls.get(txn_id, 0)

    def all_pay_calls(self) -> dict[str, int]:
        return dict(self._calls)

    def next_provider_txn_id(self, prefix: str, start: int = 1) -> str:
        self._seq = max(self._seq + 1, start)
        return f"{prefix}{self._seq:08d}"

    def add(self, txn: EmulatedTxn) -> EmulatedTxn:
        if txn.txn_id in self._txns:
            raise ValueError(f"transaction {txn.txn_id!r} already exists")
        txn.pay_calls = self._calls.get(txn.txn_id, txn.pay_calls)
        self._txns[txn.txn_id] = txn
        return txn

    def transactions(self) -> list[EmulatedTxn]:
        return list(self._txns.values())

    def clear(self) -> None:
        self._txns.clear()
        self._calls.clear()
        self._seq = 0


@dataclass(slots=True)
class Decision:
    """What the emulated provider answers to one request.

    ``lose_response``: hold the answer (the client should time out); ``broken_response``: answer
    with something that is not a valid protocol message. Both only happen after the work is done.
    """

    kind: DecisionKind
    code: str | None = None
    message: str | None = None
    txn: EmulatedTxn | None = None
    info: dict[str, Any] = field(default_factory=dict)
    repeat: bool = False  # a pay for a txn_id that already had a transaction
    lose_response: bool = False
    broken_response: bool = False


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BehaviourEngine:
    """Decides every answer of an emulated provider and keeps its ledger."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        now: Callable[[], dt.datetime] = _utcnow,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.ledger = Ledger()
        self.holding = 0  # answers being held right now (lost responses)
        self._now = now
        self._monotonic_ns = monotonic_ns
        self._closing = asyncio.Event()
        self._config = config or EmulatorConfig()
        self._rng = random.Random()
        self._jitter_rng = random.Random()
        self._reseed()

    # -- configuration ---------------------------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    def configure(self, config: EmulatorConfig) -> None:
        """Replace the configuration (the ledger is kept; the random generator is reseeded)."""
        self._config = config
        self._reseed()

    def set_down(self, down: bool) -> None:
        self._config = self._config.model_copy(update={"down": down})

    def reset(self) -> None:
        """Forget every transaction and pay call; reseed the random generator."""
        self.ledger.clear()
        self._reseed()

    def _reseed(self) -> None:
        seed = self._config.seed
        self._rng = random.Random(seed)
        # a separate stream, so that latency settings never shift the sequence of outcomes
        self._jitter_rng = random.Random(None if seed is None else seed + 1)

    # -- randomness and timing -------------------------------------------------------------------

    def draw(self) -> int:
        """A uniform integer in ``[0, RESOLUTION)`` from the outcome stream."""
        return self._rng.randrange(RESOLUTION)

    @staticmethod
    def below(draw: int, threshold: Decimal) -> bool:
        """Whether ``draw`` falls under the probability ``threshold`` (exact Decimal comparison)."""
        return Decimal(draw) < threshold * RESOLUTION

    def is_down(self) -> bool:
        if self._config.down:
            return True
        now = self._now()
        return any(window.covers(now) for window in self._config.downtime)

    def delay_ms(self, account: str | None = None) -> int:
        """How long to wait before answering a request about ``account``."""
        overrides = self._config.account(account) if account is not None else None
        base = (
            overrides.latency_ms
            if overrides and overrides.latency_ms is not None
            else self._config.latency_ms
        )
        jitter = self._config.jitter_ms
        return base + (self._jitter_rng.randrange(jitter + 1) if jitter else 0)

    async def sleep(self, ms: int) -> bool:
        """Wait ``ms``; ``False`` if cut short because the emulator is shutting down."""
        if self._closing.is_set():
            return False
        if ms <= 0:
            return True
        try:
            async with asyncio.timeout(ms / 1000):
                await self._closing.wait()
        except TimeoutError:
            return True
        return False

    async def hold(self, ms: int, disconnected: Callable[[], Awaitable[None]] | None = None) -> None:
        """Hold a lost answer: until ``ms`` pass, the client goes away or the emulator shuts down."""
        if ms <= 0 or self._closing.is_set():
            return
        self.holding += 1
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._closing.wait())]
        if disconnected is not None:
            waiters.append(asyncio.ensure_future(disconnected()))
        try:
            await asyncio.wait(waiters, timeout=ms / 1000, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            self.holding -= 1

    def release_holds(self) -> None:
        """Cut every sleep and held answer short (called when the server shuts down)."""
        self._closing.set()

    def reopen(self) -> None:
        """Allow sleeping and holding again (called when the server starts)."""
        self._closing.clear()

    # -- decisions -------------------------------------------------------------------------------

    def decide_check(self, account: str, amount: int, currency: str) -> Decision:
        overrides = self._config.account(account)
        info: dict[str, Any] = {}
        if overrides is not None:
            info.update(overrides.info)
            if overrides.balance is not None:
                info["balance"] = overrides.balance
            if overrides.debt is not None:
                info["debt"] = overrides.debt
        if overrides is not None and overrides.check is not None:
            directive = parse_directive(overrides.check, CHECK_KINDS)
            if directive.kind == "ok":
                return Decision("ok", info=info)
            if directive.kind == "reject":
                return Decision(
                    "rejected", directive.code or "rejected", directive.message or "account rejected"
                )
            return self._scripted_error(directive)
        draw = self.draw()
        temporary = self._config.temporary_error_rate
        if self.below(draw, temporary):
            return Decision("temporary", "temporary_error", "emulated temporary error")
        if self.below(draw, temporary + self._config.fatal_error_rate):
            return Decision("fatal", "fatal_error", "emulated fatal error")
        return Decision("ok", info=info)

    def decide_pay(
        self,
        txn_id: str,
        account: str,
        amount: int,
        currency: str,
        service: str = "",
        txn_date: str | None = None,
    ) -> Decision:
        calls = self.ledger.count_pay_call(txn_id)
        existing = self.lookup(txn_id)
        if existing is not None:
            if (existing.account, existing.amount, existing.currency) != (account, amount, currency):
                return Decision(
                    "fatal",
                    "txn_conflict",
                    f"transaction {txn_id} already exists with a different account or amount",
                    repeat=True,
                )
            return self._from_txn(existing, repeat=True)

        def take(
            status: TxnStatus = "succeeded",
            code: str | None = None,
            message: str | None = None,
            *,
            final: TxnStatus = "succeeded",
        ) -> EmulatedTxn:
            txn = EmulatedTxn(
                txn_id=txn_id,
                account=account,
                amount=amount,
                currency=currency,
                service=service,
                status=status,
                provider_txn_id=self.ledger.next_provider_txn_id(
                    self._config.provider_txn_prefix, self._config.provider_txn_start
                ),
                created_at=self._now(),
                pay_calls=calls,
                txn_date=txn_date,
                code=code,
                message=message,
            )
            if status == "pending":
                txn.settle_at_ns = self._monotonic_ns() + self._config.pending_ms * 1_000_000
                txn.final_status = final
                if final == "failed":
                    txn.final_code, txn.final_message = code, message
                    txn.code = txn.message = None
            return self.ledger.add(txn)

        overrides = self._config.account(account)
        if overrides is not None and overrides.pay is not None:
            directive = parse_directive(overrides.pay, PAY_KINDS)
            kind = directive.kind
            if kind == "ok":
                return self._from_txn(take())
            if kind == "pending":
                return self._from_txn(take("pending"))
            if kind == "pending_then_fatal":
                code, message = directive.code or "failed", directive.message or "payment failed"
                return self._from_txn(take("pending", code, message, final="failed"))
            if kind == "fatal":
                code, message = directive.code or "fatal_error", directive.message or "payment refused"
                return self._from_txn(take("failed", code, message))
            if kind == "temporary":
                return self._scripted_error(directive)
            if kind == "temporary_then_ok":
                if calls <= directive.count:
                    return Decision("temporary", "temporary_error", f"emulated temporary error ({calls})")
                return self._from_txn(take())
            decision = self._from_txn(take())
            if calls == 1:  # only the first attempt's answer goes astray
                decision.lose_response = kind == "lost_then_ok"
                decision.broken_response = kind == "broken_then_ok"
            return decision

        cfg = self._config
        outcome, pending = self.draw(), self.draw()
        status: TxnStatus = "pending" if self.below(pending, cfg.pending_rate) else "succeeded"
        if self.below(outcome, cfg.temporary_error_rate):
            return Decision("temporary", "temporary_error", "emulated temporary error")
        if self.below(outcome, cfg.temporary_error_rate + cfg.fatal_error_rate):
            return self._from_txn(take("failed", "fatal_error", "emulated fatal error"))
        decision = self._from_txn(take(status))
        lost_limit = cfg.temporary_error_rate + cfg.fatal_error_rate + cfg.lost_response_rate
        decision.lose_response = self.below(outcome, lost_limit)
        return decision

    def lookup(self, txn_id: str) -> EmulatedTxn | None:
        """The transaction with this ``txn_id`` (pending ones settled as time has passed)."""
        txn = self.ledger.get(txn_id)
        if txn is not None:
            txn.settle(self._monotonic_ns())
        return txn

    def transactions(self) -> list[EmulatedTxn]:
        now_ns = self._monotonic_ns()
        txns = self.ledger.transactions()
        for txn in txns:
            txn.settle(now_ns)
        return txns

    @staticmethod
    def _scripted_error(directive: Directive) -> Decision:
        if directive.kind == "temporary":
            return Decision(
                "temporary",
                directive.code or "temporary_error",
                directive.message or "temporary error, try again later",
            )
        return Decision("fatal", directive.code or "fatal_error", directive.message or "request refused")

    @staticmethod
    def _from_txn(txn: EmulatedTxn, *, repeat: bool = False) -> Decision:
        if txn.status == "failed":
            return Decision("fatal", txn.code, txn.message, txn=txn, repeat=repeat)
        return Decision("ok" if txn.status == "succeeded" else "pending", txn=txn, repeat=repeat)
