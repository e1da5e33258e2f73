"""Emulator of a bank's core system speaking the JSON/HTTP funding protocol (:mod:`paymux.funding.jsonhttp`).

``create_app(config)`` returns an ASGI app (a :class:`BankApp`; its :class:`Bank` is ``app.bank``)
serving the protocol:

``POST /debits``, ``POST /refunds``, ``GET /operations/{key}``

over accounts with balances (:class:`BankConfig`), with insufficient funds, unknown and closed
accounts, idempotent keys, refunds never above what was debited, latency (per bank and per
account: a latency above the client's timeout is a timeout; the operation is still applied when
the latency has passed), lost answers (the operation is applied, then the connection is dropped or
the answer withheld: ``lost_answer_rate``, or the next ``n`` answers with ``POST /_emulator/lose``),
downtime, a bearer token and HMAC signatures. Control endpoints for tests and demos (never
protected by the credentials):

``GET  /_emulator/state``            balances, every operation (with ``calls``), and ``lost`` so far
``PUT  /_emulator/accounts/{id}``    create or replace an account (``{"currency", "balance", "closed"}``)
``POST /_emulator/lose``             ``{"count": n}``: the next n debit/refund answers are lost
``POST /_emulator/down``, ``/up``    switch the bank off / on (while down: ``unavailable``, HTTP 503)
``GET  /_emulator/config``           the current :class:`BankConfig`
``PUT  /_emulator/config``           replace it (balances and operations start afresh)
``POST /_emulator/reset``            balances as configured, no operations
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.types import Receive, Scope, Send

from paymux.funding.jsonhttp import SIGNATURE_HEADER, TIMESTAMP_HEADER, key_problem, signature
from paymux.money import MoneyError, check_currency, format_amount, parse_amount
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig, _probability
from paymux.providers.emulators.control import disconnect_waiter, emulator_app, json_response

Kind = Literal["debit", "refund"]
DROP_SCOPE_KEY = "paymux.drop_connection"


class BankAccount(BaseModel):
    """One customer account: its currency, balance (decimal string in major units) and whether closed."""

    model_config = ConfigDict(extra="forbid")

    currency: str = "RUB"
    balance: str = "0"
    closed: bool = False
    latency_ms: int | None = Field(default=None, ge=0, le=600_000)  # this account's answers are this slow

    @field_validator("balance", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # YAML reads 1500.00 as a number: keep the literal as written (never float arithmetic)
        return (
            str(value) if isinstance(value, int | float | Decimal) and not isinstance(value, bool) else value
        )

    @model_validator(mode="after")
    def _valid_money(self) -> BankAccount:
        check_currency(self.currency)
        parse_amount(self.balance, self.currency, allow_zero=True)
        return self

    def minor(self) -> int:
        return parse_amount(self.balance, self.currency, allow_zero=True)


class BankConfig(BaseModel):
    """How the emulated bank behaves. Probabilities are decimal strings (``"0.05"``), never floats."""

    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, BankAccount] = Field(default_factory=dict)
    token: str | None = None  # requests must carry Authorization: Bearer <token>
    hmac_secret: str | None = None  # requests must be signed (paymux.funding.jsonhttp.signature)
    signature_tolerance_s: int = Field(default=300, ge=1, le=86_400)  # how old a signed request may be
    latency_ms: int = Field(default=0, ge=0, le=600_000)  # before every answer (an account's own wins)
    lost_answer_rate: Decimal = Decimal(0)  # probability that a debit/refund is done, its answer lost
    lost_mode: Literal["drop", "hold"] = "drop"  # drop the connection, or withhold the answer
    lost_hold_ms: int = Field(default=30000, ge=0, le=600_000)  # how long a withheld answer waits (hold mode)
    down: bool = False
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)  # makes random lost answers reproducible
    reference_prefix: str = "BANK-"
    reference_start: int = Field(default=1, ge=1, le=10**15)

    @field_validator("lost_answer_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Decimal:
        return _probability(value)


@dataclass(slots=True)
class Operation:
    """A debit or refund the bank has answered (done or refused), under its idempotency key."""

    key: str
    kind: Kind
    account: str
    amount: int  # minor units
    currency: str
    status: Literal["done", "refused"]
    reference: str | None = None
    code: str | None = None
    message: str | None = None
    debit_key: str | None = None  # refunds: the debit given back
    text: str = ""  # a debit's description, a refund's reason
    refunded: int = 0  # debits: how much was given back
    calls: int = 1  # requests that arrived under this key
    created_at: str = ""

    def fingerprint(self) -> tuple[Any, ...]:
        return (
            self.kind,
            self.debit_key if self.kind == "refund" else self.account,
            self.amount,
            self.currency,
        )

    def answer(self) -> dict[str, Any]:
        """The protocol answer about this operation (the same to every request under its key)."""
        if self.status == "refused":
            return {
                "result": "refused",
                "key": self.key,
                "kind": self.kind,
                "code": self.code,
                "message": self.message,
            }
        data: dict[str, Any] = {
            "result": "done",
            "key": self.key,
            "kind": self.kind,
            "reference": self.reference,
            "account": self.account,
            "amount": format_amount(self.amount, self.currency),
            "currency": self.currency,
        }
        if self.kind == "debit":
            data["refunded"] = format_amount(self.refunded, self.currency)
        else:
            data["debit_key"] = self.debit_key
        return data

    def as_json(self) -> dict[str, Any]:
        return {
            **self.answer(),
            "status": self.status,
            "account": self.account,
            "amount": format_amount(self.amount, self.currency),
            "currency": self.currency,
            "text": self.text,
            "calls": self.calls,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class _Account:
    currency: str
    balance: int
    closed: bool


class Conflict(Exception):
    """A key already used for another operation (other kind, account, debit or amount)."""


class Bank:
    """The bank's books: balances and the operations under their keys. Changes are synchronous, so
    one event loop applies every request atomically."""

    def __init__(self, config: BankConfig | None = None) -> None:
        self.config = config or BankConfig()
        # the timing half of a provider emulator's engine: latency, held answers, release on shutdown
        self.engine = BehaviourEngine(EmulatorConfig(seed=self.config.seed))
        self.accounts: dict[str, _Account] = {}
        self.operations: dict[str, Operation] = {}
        self.lose_next = 0
        self.lost = 0
        self._seq = 0
        self.reset()

    def configure(self, config: BankConfig) -> None:
        self.config = config
        self.engine.configure(EmulatorConfig(seed=config.seed))
        self.reset()

    def reset(self) -> None:
        self.accounts = {
            name: _Account(a.currency, a.minor(), a.closed) for name, a in self.config.accounts.items()
        }
        self.operations.clear()
        self.lose_next = self.lost = self._seq = 0

    def set_account(self, name: str, account: BankAccount) -> None:
        self.accounts[name] = _Account(account.currency, account.minor(), account.closed)

    def latency_ms(self, account: str | None) -> int:
        own = self.config.accounts.get(account) if account is not None else None
        return own.latency_ms if own is not None and own.latency_ms is not None else self.config.latency_ms

    def lose_answer(self) -> bool:
        """Whether the answer now being given is lost (the operation is applied all the same)."""
        if self.lose_next > 0:
            self.lose_next -= 1
            lost = True
        else:
            lost = self.engine.below(self.engine.draw(), self.config.lost_answer_rate)
        self.lost += lost
        return lost

    # -- operations ----------------------------------------------------------------------------------

    def _repeat(self, new: Operation) -> Operation | None:
        old = self.operations.get(new.key)
        if old is None:
            return None
        if old.fingerprint() != new.fingerprint():
            raise Conflict(f"key {new.key!r} was used for another {old.kind} ({old.fingerprint()[1:]})")
        old.calls += 1
        return old

    def _record(self, op: Operation, code: str | None = None, message: str | None = None) -> Operation:
        op.created_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if code is None:
            self._seq = max(self._seq + 1, self.config.reference_start)
            op.status, op.reference = "done", f"{self.config.reference_prefix}{self._seq:08d}"
        else:
            op.status, op.code, op.message = "refused", code, message
        self.operations[op.key] = op
        return op

    def debit(self, key: str, account: str, amount: int, currency: str, description: str = "") -> Operation:
        op = Operation(key, "debit", account, amount, currency, "refused", text=description)
        if (old := self._repeat(op)) is not None:
            return old
        acc = self.accounts.get(account)
        if acc is None:
            return self._record(op, "unknown_account", f"no account {account!r}")
        if acc.closed:
            return self._record(op, "account_closed", f"account {account!r} is closed")
        if acc.currency != currency:
            return self._record(op, "currency_mismatch", f"account {account!r} is in {acc.currency}")
        if acc.balance < amount:
            return self._record(op, "insufficient_funds", f"the balance of {account!r} is too low")
        acc.balance -= amount
        return self._record(op)

    def refund(self, key: str, debit_key: str, amount: int, currency: str, reason: str = "") -> Operation:
        debit = self.operations.get(debit_key)
        account = debit.account if debit is not None else ""
        op = Operation(key, "refund", account, amount, currency, "refused", debit_key=debit_key, text=reason)
        if (old := self._repeat(op)) is not None:
            return old
        if debit is None or debit.kind != "debit" or debit.status != "done":
            return self._record(op, "debit_not_found", f"no debit done under {debit_key!r}")
        if debit.currency != currency:
            return self._record(op, "currency_mismatch", f"the debit was in {debit.currency}")
        if debit.refunded + amount > debit.amount:
            left = format_amount(debit.amount - debit.refunded, currency)
            return self._record(op, "amount_exceeds_debit", f"at most {left} {currency} is left to refund")
        acc = self.accounts.get(debit.account)
        if acc is None or acc.closed:
            return self._record(op, "account_closed", f"account {debit.account!r} is closed")
        acc.balance += amount
        debit.refunded += amount
        return self._record(op)

    def state(self) -> dict[str, Any]:
        return {
            "accounts": {
                name: {
                    "balance": format_amount(a.balance, a.currency),
                    "currency": a.currency,
                    "closed": a.closed,
                }
                for name, a in self.accounts.items()
            },
            "operations": [op.as_json() for op in self.operations.values()],
            "lost": self.lost,
        }


class BankApp:
    """The emulator's ASGI app: the FastAPI app, plus a way for it to drop a request's connection
    (uvicorn's; elsewhere a lost answer is withheld instead)."""

    def __init__(self, app: FastAPI, bank: Bank) -> None:
        self.app = app
        self.bank = bank
        self.state = app.state  # app.state.release_holds: run_emulator releases held answers on exit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope[DROP_SCOPE_KEY] = transport.abort
        await self.app(scope, receive, send)


class _BadRequest(ValueError):
    pass


def _refused(code: str, message: str, status_code: int) -> Response:
    return json_response({"result": "refused", "code": code, "message": message}, status_code)


def _unavailable(message: str) -> Response:
    return json_response({"result": "unavailable", "code": "unavailable", "message": message}, 503)


def _string(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise _BadRequest(f"{name} is required and must be a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class _Parsed:
    body: dict[str, Any]
    key: str
    amount: int  # minor units
    currency: str


def _parse(raw: bytes, reference: str) -> _Parsed:
    """The body, its key, amount (minor units) and currency; ``reference`` is the account or debit key."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _BadRequest("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    key = _string(body, "key")
    if (problem := key_problem(key)) is not None:
        raise _BadRequest(problem)
    _string(body, reference)
    currency = _string(body, "currency")
    try:
        amount = parse_amount(_string(body, "amount"), currency)
    except MoneyError as exc:
        raise _BadRequest(str(exc)) from None
    return _Parsed(body, key, amount, currency)


def create_app(config: BankConfig | None = None) -> BankApp:
    """The bank emulator app; ``app.bank`` is its :class:`Bank`."""
    bank = Bank(config)
    app = emulator_app("paymux bank emulator (JSON/HTTP funding protocol)", bank.engine)
    app.state.bank = bank

    def refusal(request: Request, body: bytes) -> Response | None:
        """The answer when the request may not be served at all (bank down, credentials)."""
        cfg = bank.config
        if cfg.down:
            return _unavailable("the bank is temporarily unavailable")
        if cfg.token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {cfg.token}".encode()):
                return _refused("unauthorized", "missing or wrong bearer token", 401)
        if cfg.hmac_secret:
            stamp = request.headers.get(TIMESTAMP_HEADER, "")
            given = request.headers.get(SIGNATURE_HEADER, "")
            if not stamp.isdigit() or abs(int(stamp) - time.time()) > cfg.signature_tolerance_s:
                return _refused("bad_signature", f"{TIMESTAMP_HEADER} is missing or too far from now", 401)
            expected = signature(cfg.hmac_secret, stamp, request.method, request.url.path, body)
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _refused("bad_signature", f"{SIGNATURE_HEADER} does not match the request", 401)
        return None

    async def operate(request: Request, reference: str, apply: Callable[[_Parsed], Operation]) -> Response:
        raw = await request.body()
        if (refused := refusal(request, raw)) is not None:
            return refused
        try:
            parsed = _parse(raw, reference)
        except _BadRequest as exc:
            return _refused("bad_request", str(exc), 400)
        account = parsed.body["account"] if reference == "account" else None
        if not await bank.engine.sleep(bank.latency_ms(account)):
            return _unavailable("the bank is shutting down")
        try:
            op = apply(parsed)
        except Conflict as exc:
            return json_response({"result": "conflict", "code": "key_conflict", "message": str(exc)}, 409)
        if bank.lose_answer():
            drop = request.scope.get(DROP_SCOPE_KEY)
            if bank.config.lost_mode == "drop" and drop is not None:
                drop()
            else:
                await bank.engine.hold(bank.config.lost_hold_ms, disconnect_waiter(request))
        return json_response(op.answer())

    @app.post("/debits")
    async def debits(request: Request) -> Response:
        def apply(p: _Parsed) -> Operation:
            description = str(p.body.get("description") or "")
            return bank.debit(p.key, p.body["account"], p.amount, p.currency, description)

        return await operate(request, "account", apply)

    @app.post("/refunds")
    async def refunds(request: Request) -> Response:
        def apply(p: _Parsed) -> Operation:
            reason = str(p.body.get("reason") or "")
            return bank.refund(p.key, p.body["debit_key"], p.amount, p.currency, reason)

        return await operate(request, "debit_key", apply)

    @app.get("/operations/{key}")
    async def operation(request: Request, key: str) -> Response:
        if (refused := refusal(request, b"")) is not None:
            return refused
        op = bank.operations.get(key)
        if not await bank.engine.sleep(bank.latency_ms(op.account if op else None)):
            return _unavailable("the bank is shutting down")
        op = bank.operations.get(key)  # it may have been applied while we waited
        if op is None:
            return json_response({"result": "not_found", "key": key}, 404)
        return json_response(op.answer())

    _mount_control(app, bank)
    return BankApp(app, bank)


def _mount_control(app: FastAPI, bank: Bank) -> None:
    @app.get("/_emulator/state")
    async def state() -> Response:
        return json_response(bank.state())

    @app.put("/_emulator/accounts/{name}")
    async def put_account(name: str, request: Request) -> Response:
        try:
            account = BankAccount.model_validate_json(await request.body())
        except (ValidationError, MoneyError) as exc:
            return json_response({"detail": str(exc)}, 422)
        bank.set_account(name, account)
        return json_response(bank.state()["accounts"][name])

    @app.post("/_emulator/lose")
    async def lose(request: Request) -> Response:
        try:
            data = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            data = None
        count = data.get("count", 1) if isinstance(data, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return json_response({"detail": "count must be a whole number >= 0"}, 422)
        bank.lose_next = count
        return json_response({"lose_next": count})

    @app.post("/_emulator/down")
    async def go_down() -> Response:
        bank.config = bank.config.model_copy(update={"down": True})
        return json_response({"down": True})

    @app.post("/_emulator/up")
    async def go_up() -> Response:
        bank.config = bank.config.model_copy(update={"down": False})
        return json_response({"down": False})

    @app.get("/_emulator/config")
    async def get_config() -> Response:
        return json_response(bank.config.model_dump(mode="json"))

    @app.put("/_emulator/config")
    async def put_config(request: Request) -> Response:
        try:
            new = BankConfig.model_validate_json(await request.body())
        except ValidationError as exc:
            return json_response({"detail": orjson.loads(exc.json(include_url=False))}, 422)
        bank.configure(new)
        return json_response(bank.config.model_dump(mode="json"))

    @app.post("/_emulator/reset")
    async def reset() -> Response:
        bank.reset()
        return json_response({"reset": True})


__all__ = ["Bank", "BankAccount", "BankApp", "BankConfig", "Operation", "create_app"]
