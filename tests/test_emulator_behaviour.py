"""The protocol-independent emulator behaviour engine, its config and the emulator CLI."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from paymux.providers.emulators import server as emulator_server
from paymux.providers.emulators.behaviour import (
    CHECK_KINDS,
    PAY_KINDS,
    BehaviourEngine,
    Directive,
    EmulatorConfig,
    parse_directive,
)
from paymux.providers.emulators.cli import emulator_app, load_config


class FakeClock:
    def __init__(self) -> None:
        self.ns = 0
        self.wall = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.wall

    def monotonic_ns(self) -> int:
        return self.ns


def engine(config: dict[str, Any] | None = None, clock: FakeClock | None = None) -> BehaviourEngine:
    clock = clock or FakeClock()
    return BehaviourEngine(
        EmulatorConfig.model_validate(config or {}), now=clock.now, monotonic_ns=clock.monotonic_ns
    )


# -- config ------------------------------------------------------------------------------------------------


def test_rates_are_exact_decimals() -> None:
    config = EmulatorConfig.model_validate(
        {"temporary_error_rate": "0.1", "fatal_error_rate": 0.2, "pending_rate": 1}
    )
    assert config.temporary_error_rate == Decimal("0.1")
    assert config.fatal_error_rate == Decimal("0.2")  # a float is read as the literal written
    assert config.pending_rate == Decimal(1)
    assert config.model_dump(mode="json")["temporary_error_rate"] == "0.1"


@pytest.mark.parametrize(
    "config",
    [
        {"temporary_error_rate": "1.5"},
        {"fatal_error_rate": "-0.1"},
        {"lost_response_rate": "lots"},
        {"temporary_error_rate": "0.6", "fatal_error_rate": "0.5"},
        {"latency_ms": -1},
        {"downtime": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]},
        {"accounts": {"1": {"pay": "sometimes"}}},
        {"accounts": {"1": {"check": "lost_then_ok"}}},
        {"accounts": {"1": {"pay": "temporary_then_ok:x"}}},
        {"accounts": {"1": {"balance": "a lot"}}},
        {"no_such_setting": 1},
    ],
)
def test_invalid_config(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EmulatorConfig.model_validate(config)


def test_parse_directive() -> None:
    assert parse_directive("reject:5:account not found: closed", CHECK_KINDS) == Directive(
        "reject", "5", "account not found: closed"
    )
    assert parse_directive("temporary_then_ok:3", PAY_KINDS) == Directive("temporary_then_ok", count=3)
    assert parse_directive("fatal", PAY_KINDS) == Directive("fatal")
    with pytest.raises(ValueError, match="unknown directive"):
        parse_directive("reject:1:x", PAY_KINDS)
    with pytest.raises(ValueError, match="no arguments"):
        parse_directive("ok:1", PAY_KINDS)


def test_wildcard_account() -> None:
    config = EmulatorConfig.model_validate(
        {"accounts": {"*": {"check": "reject:5:x"}, "1001": {"check": "ok"}}}
    )
    assert config.account("1001") is config.accounts["1001"]
    assert config.account("9999") is config.accounts["*"]
    eng = BehaviourEngine(config)
    assert eng.decide_check("9999", 100, "RUB").kind == "rejected"
    assert eng.decide_check("1001", 100, "RUB").kind == "ok"


# -- decisions ---------------------------------------------------------------------------------------------


def test_pay_is_idempotent_and_counts_calls() -> None:
    eng = engine()
    first = eng.decide_pay("t-1", "1001", 15000, "RUB", "mobile")
    again = eng.decide_pay("t-1", "1001", 15000, "RUB", "mobile")
    conflict = eng.decide_pay("t-1", "1001", 15001, "RUB", "mobile")
    assert first.kind == again.kind == "ok"
    assert not first.repeat and again.repeat
    assert first.txn is again.txn
    assert (conflict.kind, conflict.code) == ("fatal", "txn_conflict")
    [txn] = eng.transactions()
    assert txn.pay_calls == 3
    assert txn.as_json()["amount"] == "150.00"


def test_provider_txn_ids_start_where_configured_and_again_after_reset() -> None:
    eng = engine({"provider_txn_prefix": "X-", "provider_txn_start": 41})
    ids = [eng.decide_pay(f"t-{i}", "1001", 100, "RUB", "mobile").txn.provider_txn_id for i in range(2)]  # type: ignore[union-attr]
    assert ids == ["X-00000041", "X-00000042"]
    eng.reset()
    again = eng.decide_pay("t-9", "1001", 100, "RUB", "mobile").txn
    assert again is not None and again.provider_txn_id == "X-00000041"
    plain = engine()
    first = plain.decide_pay("t-1", "1001", 100, "RUB", "mobile").txn
    assert first is not None and first.provider_txn_id == "EMU-00000001"


def test_temporary_attempts_count_towards_pay_calls() -> None:
    eng = engine({"accounts": {"1001": {"pay": "temporary_then_ok:2"}}})
    kinds = [eng.decide_pay("t-1", "1001", 100, "RUB").kind for _ in range(3)]
    assert kinds == ["temporary", "temporary", "ok"]
    assert eng.ledger.pay_calls("t-1") == 3
    assert eng.transactions()[0].pay_calls == 3
    assert eng.decide_pay("t-2", "1001", 100, "RUB").kind == "temporary"  # counted per txn_id


def test_pending_settles_on_the_clock() -> None:
    clock = FakeClock()
    eng = engine({"pending_ms": 500, "accounts": {"1001": {"pay": "pending"}}}, clock)
    decision = eng.decide_pay("t-1", "1001", 100, "RUB")
    assert decision.kind == "pending"
    clock.ns += 499_000_000
    txn = eng.lookup("t-1")
    assert txn is not None and txn.status == "pending"
    clock.ns += 1_000_000
    txn = eng.lookup("t-1")
    assert txn is not None and txn.status == "succeeded"
    assert eng.decide_pay("t-1", "1001", 100, "RUB").kind == "ok"


def test_lost_then_ok_loses_only_the_first_answer() -> None:
    eng = engine({"accounts": {"1001": {"pay": "lost_then_ok"}}})
    first = eng.decide_pay("t-1", "1001", 100, "RUB")
    second = eng.decide_pay("t-1", "1001", 100, "RUB")
    assert first.kind == "ok" and first.lose_response
    assert second.kind == "ok" and not second.lose_response
    assert len(eng.transactions()) == 1


def test_downtime() -> None:
    clock = FakeClock()
    window = {"start": "2026-11-22T09:00:00Z", "end": "2026-11-22T11:00:00"}  # naive means UTC
    eng = engine({"downtime": [window]}, clock)
    assert eng.is_down()
    clock.wall = dt.datetime(2026, 11, 22, 11, 0, tzinfo=dt.UTC)
    assert not eng.is_down()
    eng.set_down(True)
    assert eng.is_down() and eng.config.down


def test_seeded_outcomes_are_reproducible_and_follow_the_rates() -> None:
    config = {"seed": 7, "temporary_error_rate": "0.25", "fatal_error_rate": "0.05"}
    eng = engine(config)
    first = [eng.decide_check("1", 100, "RUB").kind for _ in range(4000)]
    eng.reset()
    second = [eng.decide_check("1", 100, "RUB").kind for _ in range(4000)]
    assert first == second
    assert 900 <= first.count("temporary") <= 1100
    assert 140 <= first.count("fatal") <= 260
    unseeded = engine({"temporary_error_rate": "0.25"})
    assert {unseeded.decide_check("1", 100, "RUB").kind for _ in range(200)} == {"ok", "temporary"}


def test_latency_settings_do_not_shift_outcomes() -> None:
    config: dict[str, Any] = {"seed": 3, "temporary_error_rate": "0.5"}
    plain = engine(config)
    jittery = engine({**config, "jitter_ms": 50, "latency_ms": 10})
    outcomes_plain, outcomes_jittery = [], []
    for _ in range(100):
        outcomes_plain.append(plain.decide_check("1", 100, "RUB").kind)
        delay = jittery.delay_ms("1")
        assert 10 <= delay <= 60
        outcomes_jittery.append(jittery.decide_check("1", 100, "RUB").kind)
    assert outcomes_plain == outcomes_jittery


def test_account_latency_override() -> None:
    eng = engine({"latency_ms": 100, "accounts": {"fast": {"latency_ms": 0}}})
    assert eng.delay_ms("fast") == 0
    assert eng.delay_ms("other") == 100
    assert eng.delay_ms(None) == 100


def test_rates_edge_values() -> None:
    always = engine({"fatal_error_rate": "1"})
    assert {always.decide_pay(f"t{i}", "1", 100, "RUB").kind for i in range(50)} == {"fatal"}
    assert {t.status for t in always.transactions()} == {"failed"}
    pending = engine({"pending_rate": "1"})
    assert pending.decide_pay("t", "1", 100, "RUB").kind == "pending"


async def test_sleep_and_hold_are_cut_short_on_release() -> None:
    eng = engine()
    assert await eng.sleep(1)
    eng.release_holds()
    assert not await eng.sleep(10_000)
    await eng.hold(10_000)  # returns at once
    eng.reopen()
    assert await eng.sleep(1)
    assert eng.holding == 0


# -- CLI ---------------------------------------------------------------------------------------------------


def test_load_config_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "emu.yaml"
    yaml_file.write_text(
        "latency_ms: 5\n"
        "temporary_error_rate: 0.1\n"
        "accounts:\n"
        "  '1001': {pay: lost_then_ok, balance: '10.00'}\n"
    )
    config = load_config(yaml_file, {"seed": 9, "latency_ms": None})
    assert (config.latency_ms, config.seed, config.temporary_error_rate) == (5, 9, Decimal("0.1"))
    assert config.accounts["1001"].pay == "lost_then_ok"
    json_file = tmp_path / "emu.json"
    json_file.write_text(json.dumps({"fatal_error_rate": 0.3, "down": True}))
    config = load_config(json_file, {"fatal_error_rate": "0.05"})
    assert config.fatal_error_rate == Decimal("0.05") and config.down
    assert load_config(None) == EmulatorConfig()


def test_cli_jsonhttp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(
        emulator_server, "serve_emulator", lambda app, host, port: served.append((app, host, port))
    )
    runner = CliRunner()
    result = runner.invoke(
        emulator_app,
        ["jsonhttp", "--port", "0", "--latency-ms", "3", "--temporary-error-rate", "0.2", "--seed", "5"],
    )
    assert result.exit_code == 0, result.output
    [(app, host, port)] = served
    assert (host, port) == ("127.0.0.1", 0)
    config = app.state.engine.config
    assert (config.latency_ms, config.temporary_error_rate, config.seed) == (3, Decimal("0.2"), 5)

    bad = tmp_path / "bad.yaml"
    bad.write_text("fatal_error_rate: 3\n")
    result = runner.invoke(emulator_app, ["jsonhttp", "--config", str(bad)])
    assert result.exit_code == 2
    assert "invalid emulator configuration" in result.output
    assert served == [(app, host, port)]

    help_text = runner.invoke(emulator_app, ["--help"]).output
    assert "jsonhttp" in help_text
