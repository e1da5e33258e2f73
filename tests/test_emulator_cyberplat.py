"""The Cyberplat emulator against a client written here from the spec (raw httpx, hand-built envelopes)."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paymux.providers.emulators.behaviour import EmulatorConfig
from paymux.providers.emulators.cyberplat import create_app
from paymux.providers.emulators.server import run_emulator

HUB_SERIAL, EMU_SERIAL = "1", "2"
PAYMUX = str(Path(sys.executable).parent / "paymux")
CHECK, PAY, STATUS = "/cgi-bin/es/es_pay_check.cgi", "/cgi-bin/es/es_pay.cgi", "/cgi-bin/es/es_pay_status.cgi"


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def hub_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def emu_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- the hand-written client: message, envelope, form post, answer parsing ----------------------------


def envelope(fields: dict[str, str], key: rsa.RSAPrivateKey, serial: str = HUB_SERIAL) -> bytes:
    body = b"".join(f"{k}={v}\r\n".encode("cp1251") for k, v in fields.items())
    head = (
        f"BEGIN SIGNED MESSAGE\r\nVersion: 1\r\nSigner-Key: {serial}\r\nRecipient-Key: {EMU_SERIAL}\r\n"
        f"Algorithm: RSA-SHA256\r\nBody-Length: {len(body)}\r\n\r\n"
    ).encode("ascii")
    covered = head + body + b"END SIGNED MESSAGE\r\n"
    signature = base64.b64encode(key.sign(covered, padding.PKCS1v15(), hashes.SHA256())).decode()
    lines = "\r\n".join(signature[i : i + 64] for i in range(0, len(signature), 64))
    return covered + f"BEGIN SIGNATURE\r\n{lines}\r\nEND SIGNATURE\r\n".encode("ascii")


def form(message: bytes) -> bytes:
    return b"inputmessage=" + urllib.parse.quote_plus(message).encode("ascii")


@dataclass
class Reply:
    status_code: int
    content_type: str
    fields: dict[str, str]
    signer: str


def parse_reply(response: httpx.Response, emu_public: rsa.RSAPublicKey) -> Reply:
    raw = response.content
    covered, _, signature_block = raw.partition(b"BEGIN SIGNATURE\r\n")
    signature = base64.b64decode(b"".join(signature_block.split(b"END SIGNATURE")[0].split()))
    emu_public.verify(signature, covered, padding.PKCS1v15(), hashes.SHA256())  # raises when tampered
    head, _, rest = covered.partition(b"\r\n\r\n")
    header = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n")[1:])
    body = rest[: int(header["Body-Length"])]
    assert rest[int(header["Body-Length"]) :] == b"END SIGNED MESSAGE\r\n"
    fields = dict(line.split("=", 1) for line in body.decode("cp1251").split("\r\n") if line)
    return Reply(response.status_code, response.headers["content-type"], fields, header["Signer-Key"])


@dataclass
class Client:
    http: httpx.AsyncClient
    hub_key: rsa.RSAPrivateKey
    emu_public: rsa.RSAPublicKey
    app: Any

    async def send(self, path: str, fields: dict[str, str], key: rsa.RSAPrivateKey | None = None) -> Reply:
        message = envelope(fields, key or self.hub_key)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = await self.http.post(path, content=form(message), headers=headers)
        return parse_reply(response, self.emu_public)


def payment(session: str, number: str = "9001234567", amount: str = "150.00", **extra: str) -> dict[str, str]:
    fields = {"SD": "17031", "AP": "17032", "OP": "17034", "SESSION": session, "NUMBER": number}
    return {**fields, "AMOUNT": amount, "AMOUNT_ALL": amount, **extra, "ACCEPT_KEYS": EMU_SERIAL}


@asynccontextmanager
async def emulator(
    hub_key: rsa.RSAPrivateKey, emu_key: rsa.RSAPrivateKey, config: dict[str, Any] | None = None
) -> AsyncIterator[Client]:
    app = create_app(
        EmulatorConfig.model_validate(config or {}),
        private_key=_pem_private(emu_key),
        peer_public_key=_pem_public(hub_key),
        key_serial=EMU_SERIAL,
        peer_key_serial=HUB_SERIAL,
    )
    async with run_emulator(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Client(http, hub_key, emu_key.public_key(), app)


# -- the protocol ------------------------------------------------------------------------------------


async def test_check_pay_repeat_and_status(hub_key: rsa.RSAPrivateKey, emu_key: rsa.RSAPrivateKey) -> None:
    async with emulator(hub_key, emu_key, {"accounts": {"9001234567": {"balance": "12.50"}}}) as c:
        verify_only = await c.send(CHECK, payment("S1", REQ_TYPE="1"))
        assert c.app.state.sessions == {}
        checked = await c.send(CHECK, payment("S1", COMMENT="Оплата связи"))
        paid = await c.send(PAY, payment("S1", COMMENT="Оплата связи"))
        repeated = await c.send(PAY, payment("S1"))
        rechecked = await c.send(CHECK, payment("S1"))
        status = await c.send(STATUS, {"SESSION": "S1", "ACCEPT_KEYS": EMU_SERIAL})
        by_transid = await c.send(STATUS, {"SESSION": "S1", "TRANSID": paid.fields["TRANSID"]})
        listed = (await c.http.get("/_emulator/transactions")).json()
    assert verify_only.fields["ERROR"] == "0" and verify_only.fields["BALANCE"] == "12.50"
    assert verify_only.content_type == "text/plain; charset=windows-1251" and verify_only.signer == EMU_SERIAL
    assert (checked.fields["ERROR"], checked.fields["RESULT"], checked.fields["SESSION"]) == ("0", "0", "S1")
    assert paid.fields["ERROR"] == "0" and paid.fields["TRANSID"]
    assert len(paid.fields["DATE"]) == 19 and paid.fields["DATE"][2] == "."  # DD.MM.YYYY HH:MM:SS
    assert repeated.fields["ERROR"] == "0" and repeated.fields["TRANSID"] == paid.fields["TRANSID"]
    assert rechecked.fields["ERROR"] == "1"  # the session exists (and is paid)
    assert status.fields["ERROR"] == "0" and status.fields["TRNXSTATUS"] == status.fields["RESULT"] == "7"
    assert status.fields["TRANSID"] == paid.fields["TRANSID"] and status.fields["AUTHCODE"].isdigit()
    assert by_transid.fields["TRNXSTATUS"] == "7"
    assert [t["txn_id"] for t in listed["transactions"]] == ["S1"] and listed["pay_calls"] == {"S1": 2}


async def test_bad_signature_is_refused_and_changes_nothing(
    hub_key: rsa.RSAPrivateKey, emu_key: rsa.RSAPrivateKey
) -> None:
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with emulator(hub_key, emu_key) as c:
        forged = await c.send(CHECK, payment("S2"), key=intruder)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        good = envelope(payment("S2"), hub_key)
        tampered = good.replace(b"AMOUNT=150.00", b"AMOUNT=950.00")
        altered = parse_reply(await c.http.post(CHECK, content=form(tampered), headers=headers), c.emu_public)
        wrong_serial = envelope(payment("S2"), hub_key, serial="7")
        unknown_key = parse_reply(
            await c.http.post(CHECK, content=form(wrong_serial), headers=headers), c.emu_public
        )
        unsigned = good.split(b"BEGIN SIGNATURE")[0]
        no_signature = parse_reply(
            await c.http.post(CHECK, content=form(unsigned), headers=headers), c.emu_public
        )
        # the pay itself with a forged signature: never paid
        await c.send(CHECK, payment("S3"))
        forged_pay = await c.send(PAY, payment("S3"), key=intruder)
        listed = (await c.http.get("/_emulator/transactions")).json()
    for reply in (forged, altered, unknown_key, no_signature, forged_pay):
        assert (reply.fields["ERROR"], reply.fields["RESULT"]) == ("6", "1"), reply
    assert "TRANSID" not in forged_pay.fields
    assert listed["transactions"] == [] and listed["pay_calls"] == {}
    assert listed["checked_sessions"] == ["S3"]


async def test_request_errors(hub_key: rsa.RSAPrivateKey, emu_key: rsa.RSAPrivateKey) -> None:
    async with emulator(hub_key, emu_key) as c:
        json_type = parse_reply(
            await c.http.post(
                CHECK,
                content=form(envelope(payment("S4"), hub_key)),
                headers={"Content-Type": "application/json"},
            ),
            c.emu_public,
        )
        no_field = parse_reply(
            await c.http.post(
                CHECK, content=b"message=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
            ),
            c.emu_public,
        )
        bad_session = await c.send(CHECK, payment("S-4!"))
        bad_amount = await c.send(CHECK, payment("S4", amount="150.5"))
        bad_total = await c.send(CHECK, {**payment("S4"), "AMOUNT_ALL": "100.00"})
        no_dealer = await c.send(CHECK, {k: v for k, v in payment("S4").items() if k != "SD"})
        pay_unchecked = await c.send(PAY, payment("S5"))
        await c.send(CHECK, payment("S6"))
        other_amount = await c.send(PAY, payment("S6", amount="151.00"))
        other_number = await c.send(PAY, payment("S6", number="9007654321"))
        no_session = await c.send(STATUS, {"SESSION": "S404"})
        only_checked = await c.send(STATUS, {"SESSION": "S6"})
    assert json_type.fields["ERROR"] == "10" and no_field.fields["ERROR"] == "10"
    assert bad_session.fields["ERROR"] == "5"
    assert bad_amount.fields["ERROR"] == "7" and bad_total.fields["ERROR"] == "85"
    assert no_dealer.fields["ERROR"] == "2"
    assert pay_unchecked.fields["ERROR"] == "11"
    assert other_amount.fields["ERROR"] == "18" and other_number.fields["ERROR"] == "17"
    assert no_session.fields["ERROR"] == "11"
    assert (only_checked.fields["ERROR"], only_checked.fields["TRNXSTATUS"]) == ("0", "1")


async def test_scripted_answers_down_and_cyrillic(
    hub_key: rsa.RSAPrivateKey, emu_key: rsa.RSAPrivateKey
) -> None:
    accounts = {
        "9000000001": {"check": "reject:23:Абонент не найден"},
        "9000000002": {"pay": "fatal:7:amount too big"},
        "9000000003": {"pay": "temporary:24:no link"},
        "9000000004": {"pay": "pending"},
    }
    async with emulator(hub_key, emu_key, {"accounts": accounts, "pending_ms": 60000}) as c:
        rejected = await c.send(CHECK, payment("A1", "9000000001"))
        for session, number in (("A2", "9000000002"), ("A3", "9000000003"), ("A4", "9000000004")):
            await c.send(CHECK, payment(session, number))
        fatal = await c.send(PAY, payment("A2", "9000000002"))
        temporary = await c.send(PAY, payment("A3", "9000000003"))
        pending = await c.send(PAY, payment("A4", "9000000004"))
        failed_status = await c.send(STATUS, {"SESSION": "A2"})
        pending_status = await c.send(STATUS, {"SESSION": "A4"})
        await c.http.post("/_emulator/down")
        down_response = await c.http.post(
            CHECK,
            content=form(envelope(payment("A5"), hub_key)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        down = parse_reply(down_response, c.emu_public)
        await c.http.post("/_emulator/up")
        up = await c.send(CHECK, payment("A5"))
    assert (rejected.fields["ERROR"], rejected.fields["ERRMSG"]) == ("23", "Абонент не найден")
    assert (fatal.fields["ERROR"], fatal.fields["TRANSID"] != "") == ("7", True)
    assert temporary.fields["ERROR"] == "24" and "TRANSID" not in temporary.fields
    assert pending.fields["ERROR"] == "20" and pending.fields["TRANSID"]
    assert (failed_status.fields["ERROR"], failed_status.fields["TRNXSTATUS"]) == ("7", "7")
    assert (pending_status.fields["ERROR"], pending_status.fields["TRNXSTATUS"]) == ("0", "3")
    assert (down.status_code, down.fields["ERROR"], down.fields["SESSION"]) == (503, "50", "A5")
    assert up.fields["ERROR"] == "0"


async def test_the_answer_signature_really_covers_the_answer(
    hub_key: rsa.RSAPrivateKey, emu_key: rsa.RSAPrivateKey
) -> None:
    async with emulator(hub_key, emu_key) as c:
        response = await c.http.post(
            CHECK,
            content=form(envelope(payment("B1"), hub_key)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert parse_reply(response, c.emu_public).fields["ERROR"] == "0"
    forged = httpx.Response(
        200, content=response.content.replace(b"ERROR=0", b"ERROR=1"), headers=response.headers
    )
    with pytest.raises(InvalidSignature):
        parse_reply(forged, c.emu_public)


# -- the command line --------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextmanager
def _running(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([PAYMUX, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cli_generates_keys_and_serves(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    made = subprocess.run(
        [PAYMUX, "emulator", "cyberplat-keys", str(keys_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in keys_dir.iterdir()) == [
        "hub.key",
        "hub.pub",
        "provider.key",
        "provider.pub",
    ]
    assert "provider_public_key_file" in made.stdout and "paymux emulator cyberplat --key" in made.stdout
    hub = serialization.load_pem_private_key((keys_dir / "hub.key").read_bytes(), None)
    emu_public = serialization.load_pem_public_key((keys_dir / "provider.pub").read_bytes())
    assert isinstance(hub, rsa.RSAPrivateKey) and isinstance(emu_public, rsa.RSAPublicKey)
    port = _free_port()
    args = ["emulator", "cyberplat", "--port", str(port), "--key", str(keys_dir / "provider.key")]
    args += ["--peer-key", str(keys_dir / "hub.pub"), "--key-serial", "2", "--peer-key-serial", "1"]
    with (
        _running(args, tmp_path) as proc,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
    ):
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get("/_emulator/config")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    proc.stdout.read() if proc.stdout else ""
                )
                time.sleep(0.1)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        reply = parse_reply(
            http.post(CHECK, content=form(envelope(payment("C1"), hub)), headers=headers), emu_public
        )
        assert (reply.fields["ERROR"], reply.signer) == ("0", "2")
    bad = subprocess.run(
        [
            PAYMUX,
            "emulator",
            "cyberplat",
            "--key",
            str(keys_dir / "hub.pub"),
            "--peer-key",
            str(keys_dir / "hub.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "cannot use the keys" in bad.stderr
