"""ISO 8583 (1987) for ATMs and POS: terminals pay through the hub over TCP on loopback.

A hub with provider emulators (``harness.hub_env``) and the ISO 8583 listener; the terminal
emulator (``paymux.iso8583.terminal``) speaks to it over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from harness import Env, hub_env
from paymux.cli import app as cli_app
from paymux.iso8583 import codes
from paymux.iso8583.config import ConfigError, Iso8583Config, load_config, parse_config
from paymux.iso8583.framing import (
    FrameError,
    decode,
    encode,
    frame,
    parse_header,
    response_mti,
)
from paymux.iso8583.server import Iso8583Server, local_date, payment_key, running_iso8583
from paymux.iso8583.terminal import TerminalEmulator
from paymux.ledger.service import verify_ledger
from paymux.money import CURRENCIES
from paymux.payments.models import Payment

TERMINALS = [
    {"terminal": "ATM00001", "merchant": "MERCHANT000001", "channel": "term"},
    {"terminal": "POS00002", "channel": "term", "service": "topup"},
    *({"terminal": f"LOAD{i:04d}", "channel": "term"} for i in range(20)),
]
CONFIG: dict[str, Any] = {"terminals": TERMINALS, "service_codes": {"1001": "topup"}}


@contextlib.asynccontextmanager
async def iso_env(
    db_url: str, *, config: dict[str, Any] | None = None, listener: dict[str, Any] | None = None, **kw: Any
) -> AsyncIterator[tuple[Env, Iso8583Server]]:
    async with hub_env(db_url, **kw) as env:
        cfg = parse_config(config or CONFIG)
        async with running_iso8583(env.hub, cfg, "127.0.0.1", 0, **(listener or {})) as server:
            yield env, server


def term(server: Iso8583Server, tid: str = "ATM00001", merchant: str = "MERCHANT000001", **kw: Any) -> Any:
    host, port = server.address
    return TerminalEmulator(host, port, tid, merchant, **kw)


async def payments_of(env: Env) -> list[Payment]:
    async with env.hub.read_sessions() as s:
        return list((await s.scalars(select(Payment).order_by(Payment.id))).all())


async def ledger_balanced(env: Env) -> None:
    async with env.hub.read_sessions() as s:
        check = await verify_ledger(s)
    assert check.balanced, check


# --- the pieces, without a hub ----------------------------------------------------------------------


def test_length_headers_and_message_types() -> None:
    assert frame(b"abc", "binary2") == b"\x00\x03abc"
    assert frame(b"abc", "ascii4") == b"0003abc"
    assert parse_header(b"\x01\x00", "binary2") == 256
    assert parse_header(b"0256", "ascii4") == 256
    with pytest.raises(FrameError):
        parse_header(b"02x6", "ascii4")
    with pytest.raises(FrameError):
        frame(b"x" * 10_000, "ascii4")
    assert [response_mti(m) for m in ("0200", "0201", "0400", "0420", "0421", "0800")] == [
        "0210",
        "0210",
        "0410",
        "0430",
        "0430",
        "0810",
    ]
    assert response_mti("0210") is None and response_mti("02x0") is None and response_mti("") is None


def test_messages_round_trip_in_both_bitmaps() -> None:
    doc = {"t": "0200", "3": "500000", "4": "000000010000", "11": "000123", "41": "ATM00001", "103": "42"}
    for bitmap in ("binary", "ascii"):
        assert decode(encode(doc, bitmap), bitmap) == doc  # type: ignore[arg-type]


def test_local_dates_and_keys() -> None:
    today = dt.date(2026, 1, 1)
    assert local_date("0101", today) == dt.date(2026, 1, 1)
    assert local_date("0102", today) == dt.date(2026, 1, 2)  # a terminal a day ahead
    assert local_date("1231", today) == dt.date(2025, 12, 31)  # sent before the new year
    assert payment_key("ATM1    ", dt.date(2026, 3, 4), "000042") == "iso8583:ATM1:20260304:000042"


def test_every_currency_has_its_numeric_code() -> None:
    assert set(codes.ALPHA) == set(CURRENCIES)
    assert codes.NUMERIC["643"] == "RUB" and codes.NUMERIC["978"] == "EUR" and codes.NUMERIC["840"] == "USD"


def test_configuration_is_validated(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="field 4"):
        parse_config({"fields": {"account": 4}})
    with pytest.raises(ConfigError, match="twice"):
        parse_config({"terminals": [{"terminal": "A", "channel": "x"}, {"terminal": "A", "channel": "y"}]})
    with pytest.raises(ConfigError, match="twice"):
        parse_config({"fields": {"account": 103, "service": 103}})
    with pytest.raises(ConfigError):
        parse_config({"terminals": [{"terminal": "TOOLONGID", "channel": "x"}]})
    with pytest.raises(ConfigError):
        parse_config(["not", "a", "mapping"])
    path = tmp_path / "iso.yaml"
    path.write_text("fields: {account: 102, service: null}\nterminals:\n  - {terminal: T1, channel: term}\n")
    cfg = load_config(path)
    assert cfg.fields.account == 102 and cfg.fields.service is None
    assert cfg.terminal("T1      ") is not None and cfg.terminal("T2") is None
    assert load_config(None) == Iso8583Config()
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")


# --- end to end over TCP ----------------------------------------------------------------------------


async def test_a_terminal_signs_on_and_pays_through_the_hub_once(db_url: str) -> None:
    async with iso_env(db_url) as (env, server), term(server) as t:
        for code in ("001", "301"):
            answer = await t.network(code)
            assert answer["t"] == "0810" and answer["39"] == "00" and answer["70"] == code

        request = t.payment("9001234567", 150_00, service="topup")
        paid = await t.exchange(request)
        assert paid["t"] == "0210" and paid["39"] == codes.APPROVED, paid
        assert paid["11"] == request["11"] and paid["4"] == "000000015000" and paid["41"] == "ATM00001"
        pid = int(paid["37"])
        assert paid["38"] == f"{pid % 1_000_000:06d}"
        final = await env.wait_final(pid)
        assert final["status"] == "succeeded", final
        assert final["amount"] == "150.00" and final["currency"] == "RUB" and final["account"] == "9001234567"
        assert final["external_id"] == f"iso8583:ATM00001:{dt.date.today():%Y%m%d}:{request['11']}"
        assert len(env.pay_calls("p1")) == 1  # the provider emulator got it

        # the same STAN again: the same answer, paid once
        again = await t.exchange(request)
        assert again["39"] == codes.APPROVED and again["37"] == paid["37"] and again["38"] == paid["38"]
        assert len(await payments_of(env)) == 1
        assert len(env.pay_calls("p1")) == 1
        # the same STAN for another amount: a duplicate transmission, nothing paid
        other = dict(request, **{"4": "000000020000"})
        assert (await t.exchange(other))["39"] == codes.DUPLICATE
        assert len(await payments_of(env)) == 1

        # a service code mapped by service_codes; the fee tariff of the channel applies as for the API
        mapped = await t.pay("9001234568", 10_00, service="1001")
        assert mapped["39"] == codes.APPROVED
        done = await env.wait_final(int(mapped["37"]))
        assert done["service"] == "topup" and done["fee"] == "1.00"
        await ledger_balanced(env)


async def test_declines_answer_their_codes_and_store_nothing(db_url: str) -> None:
    async with iso_env(db_url, run_workers=False) as (env, server):
        async with term(server, "NOSUCH01") as stranger:
            assert (await stranger.pay("9001234567", 100_00, service="topup"))["39"] == "58"
            assert (await stranger.sign_on())["39"] == "58"
        async with term(server, "ATM00001", "OTHERMERCHANT01") as wrong_merchant:
            assert (await wrong_merchant.pay("9001234567", 100_00, service="topup"))["39"] == "03"
        async with term(server) as t:
            cases = {
                "zero amount": (t.payment("9001234567", 0, service="topup"), "13"),
                "above the maximum": (t.payment("9001234567", 10_000_01, service="topup"), "13"),
                "below the minimum": (t.payment("9001234567", 99, service="topup"), "13"),
                "another currency": (t.payment("9001234567", 100_00, service="topup", currency="840"), "13"),
                "account format": (t.payment("12ab", 100_00, service="topup"), "14"),
                "unknown service": (t.payment("9001234567", 100_00, service="nosuch"), "12"),
                "no service": (t.payment("9001234567", 100_00), "12"),
                "not a payment": (
                    t.payment("9001234567", 100_00, service="topup", processing_code="010000"),
                    "12",
                ),
            }
            no_account = t.payment("9001234567", 100_00, service="topup")
            del no_account["103"]
            cases["no account"] = (no_account, "14")
            letters = t.payment("9001234567", 100_00, service="topup")
            letters["4"] = "00000001000A"
            cases["amount not digits"] = (letters, "30")
            no_stan = t.payment("9001234567", 100_00, service="topup")
            no_stan["11"] = "12345X"
            cases["bad STAN"] = (no_stan, "30")
            no_date = t.payment("9001234567", 100_00, service="topup")
            del no_date["13"], no_date["7"]
            cases["no date"] = (no_date, "30")
            bad_date = t.payment("9001234567", 100_00, service="topup")
            bad_date["13"] = "1332"
            cases["not a date"] = (bad_date, "30")
            for what, (doc, code) in cases.items():
                answer = await t.exchange(doc)
                assert answer["t"] == "0210", what
                assert answer["39"] == code, (what, answer)
                assert "38" not in answer, what
            file_update = dict(t.payment("9001234567", 100_00, service="topup"), t="0300")
            answer = await t.exchange(file_update)
            assert answer["t"] == "0310" and answer["39"] == codes.INVALID_TRANSACTION
        # a terminal with its own default service needs no service field
        async with term(server, "POS00002", "") as pos:
            assert (await pos.pay("9001234567", 100_00))["39"] == codes.APPROVED
        assert len(await payments_of(env)) == 1


async def test_malformed_frames_never_stop_the_listener(db_url: str) -> None:
    async with iso_env(db_url, run_workers=False, listener={"max_frame": 512}) as (env, server):
        host, port = server.address
        async with term(server) as t:
            # a 0200 whose fields cannot be decoded: format error, the same connection goes on
            broken = await t.send_payload(b"0200" + b"\xff" * 8 + b"garbage")
            assert broken is not None and broken["t"] == "0210" and broken["39"] == codes.FORMAT_ERROR
            # an empty frame is a keep-alive
            t._writer.write(b"\x00\x00")  # type: ignore[union-attr]
            assert (await t.echo())["39"] == "00"
            # not even a message type: the connection closes
            assert await t.send_payload(b"\x00\x01garbage") is None
        async with term(server) as t:  # oversized: closed, never read
            assert await t.send_frame(b"\xff\xff" + b"x" * 100) is None
        async with term(server) as t:  # the stream cut inside a frame
            assert t._writer is not None
            t._writer.write(b"\x00\x50half")
            t._writer.write_eof()
            await asyncio.sleep(0.05)
        async with term(server, length_header="ascii4") as t:  # a header of another kind
            assert await t.send_frame(b"00x9" + b"x" * 9) is None
        # answers to requests (a terminal sending a 0210) are ignored, the connection stays
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(frame(encode({"t": "0210", "11": "000001", "39": "00"}, "binary"), "binary2"))
        writer.write(frame(encode({"t": "0800", "11": "000002", "70": "301"}, "binary"), "binary2"))
        await writer.drain()
        n = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
        echo = decode(await reader.readexactly(n), "binary")
        assert echo["t"] == "0810" and echo["11"] == "000002"
        writer.close()
        # and it still serves payments
        async with term(server) as t:
            assert (await t.pay("9001234567", 100_00, service="topup"))["39"] == codes.APPROVED
        assert len(await payments_of(env)) == 1


async def test_reversals_cancel_what_no_provider_has_yet(db_url: str) -> None:
    async with iso_env(db_url, run_workers=False) as (env, server), term(server) as t:
        paid = await t.pay("9001234567", 100_00, service="topup")
        assert paid["39"] == codes.APPROVED
        reversed_ = await t.reverse(paid)
        assert reversed_["t"] == "0410" and reversed_["39"] == codes.APPROVED, reversed_
        assert reversed_["37"] == paid["37"]
        (payment,) = await payments_of(env)
        assert payment.status == "cancelled"
        await ledger_balanced(env)
        # the advice repeated: still approved, nothing else changes
        again = await t.reverse(paid, advice=True)
        assert again["t"] == "0430" and again["39"] == codes.APPROVED
        # a reversal of a STAN never paid: the original cannot be found
        ghost = dict(paid, **{"11": "999999"})
        assert (await t.reverse(ghost))["39"] == codes.ORIGINAL_NOT_FOUND
        # a partial reversal is refused
        other = await t.pay("9001234567", 200_00, service="topup")
        partial = dict(other, **{"4": "000000010000"})
        assert (await t.reverse(partial))["39"] == codes.INVALID_AMOUNT
        statuses = sorted(p.status for p in await payments_of(env))
        assert statuses == ["accepted", "cancelled"]


async def test_a_delivered_payment_cannot_be_reversed(db_url: str) -> None:
    async with iso_env(db_url) as (env, server), term(server) as t:
        paid = await t.pay("9001234567", 100_00, service="topup")
        assert (await env.wait_final(int(paid["37"])))["status"] == "succeeded"
        answer = await t.reverse(paid)
        assert answer["t"] == "0410" and answer["39"] == codes.NO_ACTION_TAKEN
        (payment,) = await payments_of(env)
        assert payment.status == "succeeded"
        assert len(env.pay_calls("p1")) == 1


async def test_authorization_checks_the_account_and_pays_nothing(db_url: str) -> None:
    async with iso_env(
        db_url, emulators={"p1": {"accounts": {"9009999999": {"check": "reject:5:account not found"}}}}
    ) as (env, server):
        async with term(server) as t:
            ok = await t.authorize("9001234567", 100_00, service="topup")
            assert ok["t"] == "0110" and ok["39"] == codes.APPROVED
            refused = await t.authorize("9009999999", 100_00, service="topup")
            assert refused["39"] == codes.DO_NOT_HONOUR
        assert await payments_of(env) == []


async def test_twenty_terminals_pay_at_once(db_url: str) -> None:
    async with iso_env(db_url) as (env, server):

        async def one(i: int) -> dict[str, str]:
            async with term(server, f"LOAD{i:04d}", "") as t:
                assert (await t.sign_on())["39"] == "00"
                return await t.pay(f"90012345{i:02d}", 100_00 + i, service="topup")

        answers = await asyncio.gather(*(one(i) for i in range(20)))
        assert [a["39"] for a in answers] == ["00"] * 20
        ids = {int(a["37"]) for a in answers}
        assert len(ids) == 20
        finals = [await env.wait_final(pid) for pid in ids]
        assert {f["status"] for f in finals} == {"succeeded"}
        async with env.hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Payment)) == 20
        assert sum(len(env.pay_calls(p)) for p in ("p1", "p2", "p3")) == 20

        # one request repeated on five connections at once: one payment, the same answer everywhere
        request = term(server, "LOAD0000", "").payment("9001234599", 77_00, service="topup", stan="424242")

        async def repeat() -> dict[str, str]:
            async with term(server, "LOAD0000", "") as t:
                return await t.exchange(request)

        repeats = await asyncio.gather(*(repeat() for _ in range(5)))
        assert {(a["39"], a["37"], a["38"]) for a in repeats} == {("00", repeats[0]["37"], repeats[0]["38"])}
        assert (await env.wait_final(int(repeats[0]["37"])))["status"] == "succeeded"
        async with env.hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Payment)) == 21
        assert sum(len(env.pay_calls(p)) for p in ("p1", "p2", "p3")) == 21
        await ledger_balanced(env)


async def test_ascii_bitmaps_and_ascii_length_headers(db_url: str) -> None:
    listener = {"length_header": "ascii4", "bitmap": "ascii", "idle_timeout": 1.0}
    async with iso_env(db_url, run_workers=False, listener=listener) as (env, server):
        async with term(server, length_header="ascii4", bitmap="ascii") as t:
            assert (await t.echo())["39"] == "00"
            request = t.payment("9001234567", 100_00, service="topup")
            request["2"] = "4111111111111111"  # a card number is never repeated in an answer
            answer = await t.exchange(request)
            assert answer["39"] == codes.APPROVED and "2" not in answer
            # a connection silent longer than the idle timeout is closed by the hub
            await asyncio.sleep(1.5)
            assert t._reader is not None
            assert await asyncio.wait_for(t._reader.read(1), 5) == b""
        assert len(await payments_of(env)) == 1


async def test_the_terminal_command_pays(db_url: str) -> None:
    async with iso_env(db_url, run_workers=False) as (env, server):
        _host, port = server.address
        args = ["emulator", "terminal", "--port", str(port), "--account", "9001234567", "--amount", "12.34"]
        args += ["--service", "topup", "--terminal", "ATM00001", "--merchant", "MERCHANT000001"]
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, args)
        assert result.exit_code == 0, result.output
        assert "0810 field 39=00 (approved)" in result.output
        assert "0210 field 39=00 (approved)" in result.output
        (payment,) = await payments_of(env)
        assert payment.amount == 12_34
        bad = await asyncio.to_thread(CliRunner().invoke, cli_app, [*args[:-4], "--terminal", "NOSUCH"])
        assert bad.exit_code == 1 and "field 39=58" in bad.output


ANSWERS = {"00", "03", "05", "12", "13", "14", "21", "25", "30", "58", "91", "94"}


async def test_random_messages_get_codes_never_a_failure(db_url: str) -> None:
    """Random messages, well-formed or not: each is answered with a known code (never 96, an
    unexpected failure) or the connection is closed, and the listener keeps serving."""
    import random

    rng = random.Random(8583)
    digits = "0123456789"
    letters = "ABCxyz 0123456789-/"
    lengths = {"3": 6, "4": 12, "7": 10, "11": 6, "12": 6, "13": 4, "41": 8, "42": 15, "49": 3, "90": 42}
    async with iso_env(db_url, run_workers=False) as (env, server):
        t = term(server)
        await t.connect()
        seen: set[str] = set()
        for i in range(240):
            if i % 3 == 0:  # bytes after a request's type
                payload = rng.choice([b"0200", b"0400", b"0800", b"0100"]) + rng.randbytes(
                    rng.randint(0, 120)
                )
            else:  # a structured message with random field values
                doc = {"t": rng.choice(["0100", "0200", "0200", "0400", "0420", "0800", "0600"])}
                for key, n in lengths.items():
                    if rng.random() < 0.8:
                        pool = digits if rng.random() < 0.85 else letters
                        doc[key] = "".join(rng.choice(pool) for _ in range(n))
                if rng.random() < 0.5:
                    doc["41"] = rng.choice(["ATM00001", "POS00002", "LOAD0003"])
                    doc["42"] = "MERCHANT000001 "
                for key in ("48", "103"):
                    if rng.random() < 0.8:
                        doc[key] = rng.choice(["topup", "1001", "nosuch", "9001234567", "", "x" * 28])[:28]
                payload = encode(doc, "binary")
            answer = await t.send_payload(payload)
            if answer is None:  # closed: a new connection
                await t.close()
                await t.connect()
                continue
            assert answer["39"] in ANSWERS, (payload, answer)
            seen.add(answer["39"])
        assert {"00", "30", "12"} <= seen  # the random walk went through approvals and refusals
        assert (await t.echo())["39"] == "00"
        await t.close()
        await ledger_balanced(env)
