"""iPriv signed documents and key files (the real Cyberplat signature layer), and the SHA-1 option.

The published sample below is the "Hello world" message of the Cyberplat dealer kit's test key
(dealer key ``api17032``, serial 17033), as independent implementations of the format quote it:
we read it, check its armour and packets, and write it back byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from paymux.cli import app as cli_app
from paymux.providers import ipriv
from paymux.providers.cyberplat import CyberplatProtocol
from paymux.providers.cyberplat_envelope import (
    KeyProblem,
    generate_key_pair,
    load_private_key,
    load_public_key,
    open_envelope,
    seal,
)
from paymux.providers.emulators.behaviour import EmulatorConfig
from paymux.providers.emulators.cyberplat import create_app, provider_urls
from paymux.providers.emulators.server import run_emulator
from paymux.providers.transport import provider_client
from test_protocol_cyberplat import check_req, pay_req, sent_fields

PUBLISHED_SAMPLE = (
    b"0000027201SM000000110000001100000125\r\n"
    b"api17032            00017033\r\n"
    b"                    00000000\r\n"
    b"BEGIN\r\nHello world\r\nEND\r\nBEGIN SIGNATURE\r\n"
    b"iQBRAwkBAABCiVCdMQoBAcf2AfwOYzgQxyj1jwRv/6JdjCFh+lguLENscUFfaNXu\r\n"
    b"OIi4jaGbW8jFrxnUj5AaoeA/WJtFuBayNdBmyiQpeisngU6XsAHH\r\n"
    b"=z1vE\r\nEND SIGNATURE"
)
PASS = "1111111111"


@pytest.fixture(scope="module")
def rsa_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {name: rsa.generate_private_key(public_exponent=65537, key_size=1024) for name in ("a", "b", "ca")}


def test_published_sample_reads_and_writes_back_byte_for_byte() -> None:
    [doc] = ipriv.read_documents(PUBLISHED_SAMPLE)
    assert (doc.type, doc.engine, doc.subject, doc.ca) == (
        "SM",
        1,
        ipriv.KeyId("api17032", 17033),
        ipriv.NO_KEY,
    )
    assert (doc.body, doc.data_length) == (b"Hello world", 11)
    assert ipriv.write_documents([doc]) == PUBLISHED_SAMPLE
    packets = ipriv.read_packets(ipriv.dearmour(doc.signature))
    assert [t for t, _ in packets] == [ipriv.PKT_SIGNATURE, ipriv.PKT_TRUST]
    assert packets[1][1] == b"\xc7"
    message = ipriv.open_message(PUBLISHED_SAMPLE)
    assert (message.signer_name, message.signer_serial, message.body) == ("api17032", 17033, b"Hello world")
    signature = message._signature
    assert signature.serial == 17033 and signature.metadata[0] == ipriv.SIG_MESSAGE
    assert len(signature.value) == 64  # a 512-bit key, 508 significant bits


def test_sample_with_a_broken_crc_or_length_is_refused() -> None:
    with pytest.raises(ipriv.IprivError, match="RADIX_DECODE"):
        ipriv.open_message(PUBLISHED_SAMPLE.replace(b"=z1vE", b"=z1vF"))
    with pytest.raises(ipriv.IprivError, match="INVALID_FORMAT"):
        ipriv.read_documents(PUBLISHED_SAMPLE.replace(b"00000011000000110", b"00000012000000110"))
    with pytest.raises(ipriv.IprivError, match="INVALID_FORMAT"):
        ipriv.read_documents(PUBLISHED_SAMPLE.replace(b"BEGIN\r\nHello", b"BEGlN\r\nHello"))


def test_secret_key_file_opens_with_its_passphrase_only(rsa_keys: dict[str, rsa.RSAPrivateKey]) -> None:
    data = ipriv.secret_key_file(rsa_keys["a"], "api17032", 17033, PASS)
    assert data.startswith(b"0") and data[10:12] == b"NM" and not data.endswith(b"\r\n")
    key = ipriv.load_secret_key(data, PASS)
    assert (key.name, key.serial) == ("api17032", 17033)
    original = rsa_keys["a"].private_numbers()
    assert key.key.private_numbers().d == original.d
    assert key.key.public_key().public_numbers() == original.public_numbers
    with pytest.raises(ipriv.IprivError, match="INVALID_PASSWD"):
        ipriv.load_secret_key(data, "1111111112")


def test_public_keys_certified_by_themselves_or_by_a_ca(rsa_keys: dict[str, rsa.RSAPrivateKey]) -> None:
    ca = ipriv.IprivSecretKey("cyberplat", 64182, rsa_keys["ca"])
    ca_doc = ipriv.public_key_document(rsa_keys["ca"].public_key(), "cyberplat", 64182, ca)
    dealer_doc = ipriv.public_key_document(rsa_keys["a"].public_key(), "api17032", 17033, ca)
    data = ipriv.public_key_file([ca_doc, dealer_doc])
    dealer = ipriv.load_public_key(data, 17033)
    assert dealer.key.public_numbers() == rsa_keys["a"].public_key().public_numbers()
    with pytest.raises(ipriv.IprivError, match="PUB_KEY_NOT_FOUND"):
        ipriv.load_public_key(data, 12345)
    with pytest.raises(ipriv.IprivError, match="PUB_KEY_NOT_FOUND"):  # the CA left out
        ipriv.load_public_key(ipriv.public_key_file([dealer_doc]), 17033)
    # a certificate made by another key than the named CA does not verify
    forged = ipriv.public_key_document(
        rsa_keys["a"].public_key(), "api17032", 17033, ipriv.IprivSecretKey("cyberplat", 64182, rsa_keys["b"])
    )
    with pytest.raises(ipriv.IprivError, match="INVALID_KEY"):
        ipriv.load_public_key(ipriv.public_key_file([ca_doc, forged]), 17033)


def test_signed_message_verifies_with_the_right_key_only(rsa_keys: dict[str, rsa.RSAPrivateKey]) -> None:
    signer = ipriv.IprivSecretKey("api17032", 17033, rsa_keys["a"])
    body = "SD=17031\r\nAP=17032\r\nCOMMENT=Оплата\r\n".encode("cp1251")
    doc = signer.sign(body, at=1_352_478_986)
    [parsed] = ipriv.read_documents(doc)
    assert doc.startswith(b"%08d01SM%08d%08d" % (len(doc) - 8, len(body), len(body)))
    assert parsed.body == body and ipriv.write_documents([parsed]) == doc
    message = ipriv.open_message(doc)
    assert message.verify(signer.public())
    assert not ipriv.open_message(doc.replace(b"17031", b"17039", 1)).verify(signer.public())
    other = ipriv.IprivSecretKey("api17032", 17033, rsa_keys["b"]).public()
    assert not message.verify(other)
    assert not message.verify(ipriv.IprivPublicKey("x", 17034, rsa_keys["a"].public_key()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600), serial=st.integers(min_value=1, max_value=99_999_999))
def test_any_body_round_trips(rsa_keys: dict[str, rsa.RSAPrivateKey], body: bytes, serial: int) -> None:
    signer = ipriv.IprivSecretKey("k", serial, rsa_keys["b"])
    message = ipriv.open_message(signer.sign(body))
    assert message.body == body and message.verify(signer.public())


def test_envelope_layer_picks_the_layout_by_key(rsa_keys: dict[str, rsa.RSAPrivateKey]) -> None:
    secret = ipriv.secret_key_file(rsa_keys["a"], "hub", 1, PASS)
    own = ipriv.IprivSecretKey("hub", 1, rsa_keys["a"])
    public = ipriv.public_key_file([ipriv.public_key_document(rsa_keys["a"].public_key(), "hub", 1, own)])
    private = load_private_key(secret.decode("ascii"), PASS)
    peer = load_public_key(public.decode("ascii"), "1")
    sealed = seal(b"SESSION=1\r\n", private, "1")
    assert ipriv.looks_like_document(sealed)
    envelope = open_envelope(sealed)
    assert envelope.signer_key == "1" and envelope.verify(peer)
    pem = generate_key_pair(1024)
    assert not envelope.verify(load_public_key(pem.public_pem))  # a PEM key never accepts an iPriv message
    assert not open_envelope(seal(b"X=1\r\n", load_private_key(pem.private_pem), "1")).verify(peer)
    with pytest.raises(KeyProblem, match="passphrase"):
        load_private_key(secret, None)
    with pytest.raises(KeyProblem, match="INVALID_PASSWD"):
        load_private_key(secret, "wrong")
    with pytest.raises(KeyProblem, match="serial"):
        load_public_key(public)


def test_sha1_option_is_explicit_on_both_sides() -> None:
    pair = generate_key_pair(1024)
    private, public = load_private_key(pair.private_pem), load_public_key(pair.public_pem)
    sha1 = open_envelope(seal(b"A=1\r\n", private, "1", algorithm="RSA-SHA1"))
    assert sha1.header["Algorithm"] == "RSA-SHA1"
    assert sha1.verify(public, "RSA-SHA1") and not sha1.verify(public)  # no silent downgrade
    assert not open_envelope(seal(b"A=1\r\n", private, "1")).verify(public, "RSA-SHA1")
    problems = CyberplatProtocol.validate_config({"signature_algorithm": "RSA-MD5"})
    assert any("signature_algorithm must be one of RSA-SHA1, RSA-SHA256" in p for p in problems)


def _ipriv_files(tmp_path: Path) -> Path:
    result = CliRunner().invoke(
        cli_app,
        ["emulator", "cyberplat-keys", str(tmp_path), "--ipriv", "--passphrase", PASS, "--bits", "1024"],
    )
    assert result.exit_code == 0, result.output
    assert "iPriv format" in result.output
    return tmp_path


def test_cli_refuses_ipriv_keys_without_a_passphrase(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["emulator", "cyberplat-keys", str(tmp_path), "--ipriv"])
    assert result.exit_code == 2 and "passphrase" in result.output


async def test_payment_over_http_with_ipriv_keys(tmp_path: Path) -> None:
    keys = _ipriv_files(tmp_path)
    app = create_app(
        EmulatorConfig(),
        private_key=(keys / "provider.key").read_bytes(),
        peer_public_key=(keys / "pubkeys.key").read_bytes(),
        key_serial="2",
        peer_key_serial="1",
        passphrase=PASS,
    )
    config = {
        "sd": "17031",
        "ap": "17032",
        "op": "17034",
        "private_key_file": str(keys / "hub.key"),
        "private_key_passphrase": PASS,
        "provider_public_key_file": str(keys / "pubkeys.key"),
        "key_serial": "1",
        "provider_key_serial": "2",
        "timeout": "2",
    }
    async with run_emulator(app) as url, provider_client() as http:
        config.update(provider_urls(url))
        assert CyberplatProtocol.validate_config(config) == []
        protocol = CyberplatProtocol(config, http)
        check = await protocol.check(check_req())
        assert check.outcome == "ok", check
        result = await protocol.pay(pay_req("501"))
        assert (result.outcome, result.code) == ("ok", "0")
        request = result.exchanges[-1].request
        assert request[10:12] == "SM" and "BEGIN SIGNATURE" in request
        assert sent_fields(request)["SESSION"] == "PMX501"
        [txn] = app.state.engine.transactions()
        assert txn.txn_id == "PMX501"
        # the hub's key with another serial than configured is a config problem, nothing is sent
        assert any("serial 1" in p for p in CyberplatProtocol.validate_config({**config, "key_serial": "7"}))
