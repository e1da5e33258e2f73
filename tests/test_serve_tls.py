"""``paymux serve`` with TLS on its own listener: the real command as a subprocess, certificates made
for the test (tests/tls_support.py), requests over HTTPS with httpx checking the server against the
test's CA, client certificates required or not.

These run on SQLite whatever ``PAYMUX_TEST_DATABASE_URL`` says: they are about the listener.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tls_support import KEY_PASSWORD, Pki, make_pki

PAYMUX = Path(sys.executable).parent / "paymux"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env.update(PAYMUX_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", PAYMUX_LOG_LEVEL="info")
    env.update({f"PAYMUX_{k.upper()}": v for k, v in settings.items()})
    return env


def _paymux(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PAYMUX), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,  # nothing may wait for a password typed on a terminal
        check=False,
    )


@dataclass
class Served:
    base: str
    port: int
    log: Path
    admin_token: str


@contextlib.contextmanager
def served(tmp_path: Path, env: dict[str, str], *args: str, ready: ssl.SSLContext) -> Iterator[Served]:
    """``paymux serve --no-workers`` with ``args`` on a fresh SQLite file; ready once an HTTPS
    request made with the ``ready`` context is answered."""
    assert _paymux(env, "migrate").returncode == 0
    token = _paymux(env, "admin", "issue-token").stdout.strip().splitlines()[-1]
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(PAYMUX), "serve", "--no-workers", "--no-migrate", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", verify=ready, timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"paymux serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield Served(base, port, log, token)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _refused(base: str, ctx: ssl.SSLContext) -> str:
    """The transport error of an HTTPS request that must not be answered."""
    with pytest.raises(httpx.TransportError) as caught:
        httpx.get(f"{base}/health", verify=ctx, timeout=10)
    return repr(caught.value)


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " ERROR " in line or "Traceback" in line]


def test_serve_answers_over_https_with_an_encrypted_key(tmp_path: Path, pki: Pki) -> None:
    """Certificate and key on the command line, the key's password in PAYMUX_SSL_KEYFILE_PASSWORD."""
    env = _env(tmp_path, ssl_keyfile_password=KEY_PASSWORD)
    args = ("--ssl-certfile", str(pki.server_cert), "--ssl-keyfile", str(pki.server_key_encrypted))
    with served(tmp_path, env, *args, ready=pki.client_context()) as hub:
        with httpx.Client(base_url=hub.base, verify=pki.client_context(), timeout=10) as http:
            health = http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert health.url.scheme == "https"
            admin = http.get(
                "/api/v1/admin/providers", headers={"Authorization": f"Bearer {hub.admin_token}"}
            )
            assert admin.status_code == 200, admin.text
            assert http.get("/api/v1/admin/providers").status_code == 401
        # a client that trusts another CA refuses the server's certificate
        assert "CERTIFICATE_VERIFY_FAILED" in _refused(hub.base, pki.client_context(trust=pki.rogue_ca))
        # plain HTTP on the TLS port is not answered; the server goes on
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{hub.port}/health", timeout=10)
        assert httpx.get(f"{hub.base}/health", verify=pki.client_context(), timeout=10).status_code == 200
    log = hub.log.read_text()
    assert f"https://127.0.0.1:{hub.port}" in log  # uvicorn's start line
    assert "TLS handshake with 127.0.0.1 failed" in log  # the hub's own listener (bulk accept) took it
    assert not _errors(hub.log), log


def test_serve_requires_client_certificates_from_settings(tmp_path: Path, pki: Pki) -> None:
    """Everything from PAYMUX_SSL_*: only clients with a certificate of the given CA get an answer."""
    env = _env(
        tmp_path,
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_ca_certs=str(pki.ca),
        ssl_cert_reqs="required",
    )
    with served(tmp_path, env, ready=pki.client_context(cert=True)) as hub:
        ok = httpx.get(f"{hub.base}/health", verify=pki.client_context(cert=True), timeout=10)
        assert ok.status_code == 200
        _refused(hub.base, pki.client_context())  # no certificate
        _refused(hub.base, pki.client_context(cert=True, rogue=True))  # one the CA did not issue
        again = httpx.get(f"{hub.base}/health", verify=pki.client_context(cert=True), timeout=10)
        assert again.status_code == 200
    log = hub.log.read_text()
    assert log.count("TLS handshake with 127.0.0.1 failed") >= 2, log
    assert not _errors(hub.log), log


def test_serve_with_optional_client_certificates(tmp_path: Path, pki: Pki) -> None:
    """``optional``: a client without a certificate is answered, one with a bad certificate is not."""
    env = _env(tmp_path)
    args = (
        "--ssl-certfile",
        str(pki.server_cert),
        "--ssl-keyfile",
        str(pki.server_key),
        "--ssl-ca-certs",
        str(pki.ca),
        "--ssl-cert-reqs",
        "optional",
    )
    with served(tmp_path, env, *args, ready=pki.client_context()) as hub:
        assert httpx.get(f"{hub.base}/health", verify=pki.client_context(), timeout=10).status_code == 200
        good = httpx.get(f"{hub.base}/health", verify=pki.client_context(cert=True), timeout=10)
        assert good.status_code == 200
        _refused(hub.base, pki.client_context(cert=True, rogue=True))


CASES = {
    # name: (command-line options, PAYMUX_SSL_* settings, part of the message)
    "key-without-cert": (["--ssl-keyfile", "{server_key}"], {}, "needs a certificate: --ssl-certfile"),
    "cert-reqs-without-cert": ([], {"ssl_cert_reqs": "required"}, "needs a certificate"),
    "missing-file": (["--ssl-certfile", "{tmp}/missing.pem"], {}, "missing.pem: no such file"),
    "required-without-ca": (
        ["--ssl-certfile", "{server_cert}", "--ssl-keyfile", "{server_key}", "--ssl-cert-reqs", "required"],
        {},
        "--ssl-cert-reqs required needs --ssl-ca-certs",
    ),
    "ca-without-cert-reqs": (
        ["--ssl-certfile", "{server_cert}", "--ssl-keyfile", "{server_key}", "--ssl-ca-certs", "{ca}"],
        {},
        "only checks client certificates",
    ),
    "encrypted-key-without-password": (
        [],
        {"ssl_certfile": "{server_cert}", "ssl_keyfile": "{server_key_encrypted}"},
        "is encrypted: give its password",
    ),
    "wrong-password": (
        ["--ssl-certfile", "{server_cert}", "--ssl-keyfile", "{server_key_encrypted}"],
        {"ssl_keyfile_password": "not the password"},
        "cannot be decrypted: wrong password?",
    ),
    "key-of-another-certificate": (
        ["--ssl-certfile", "{server_cert}", "--ssl-keyfile", "{client_key}"],
        {},
        "cannot use the certificate",
    ),
    "ca-file-without-ca": (
        ["--ssl-certfile", "{server_cert}", "--ssl-keyfile", "{server_key}", "--ssl-cert-reqs", "optional"],
        {"ssl_ca_certs": "{server_key}"},
        "no CA certificate in it",
    ),
}


def _case(pki: Pki, tmp_path: Path, name: str) -> tuple[list[str], dict[str, str], str]:
    args, settings, message = CASES[name]
    paths = {field: str(getattr(pki, field)) for field in Pki.__dataclass_fields__} | {"tmp": str(tmp_path)}
    return [a.format(**paths) for a in args], {k: v.format(**paths) for k, v in settings.items()}, message


@pytest.mark.parametrize("name", list(CASES))
def test_tls_options_that_cannot_work_are_named(tmp_path: Path, pki: Pki, name: str) -> None:
    from paymux.server_tls import ClientCerts, TLSOptionsError, server_tls
    from paymux.settings import Settings

    args, settings, message = _case(pki, tmp_path, name)
    options = dict(zip(args[::2], args[1::2], strict=True))
    with pytest.raises(TLSOptionsError) as caught:
        server_tls(
            Settings(**settings),  # type: ignore[arg-type]
            certfile=options.get("--ssl-certfile"),
            keyfile=options.get("--ssl-keyfile"),
            ca_certs=options.get("--ssl-ca-certs"),
            client_certs=ClientCerts(options["--ssl-cert-reqs"]) if "--ssl-cert-reqs" in options else None,
        )
    assert message in str(caught.value)


@pytest.mark.parametrize("name", ["key-without-cert", "encrypted-key-without-password"])
def test_serve_refuses_tls_options_it_cannot_use_with_a_readable_message(
    tmp_path: Path, pki: Pki, name: str
) -> None:
    """The command says what is wrong in one line, before it migrates or listens; an encrypted key
    without a password does not make OpenSSL ask for one on the terminal."""
    args, settings, message = _case(pki, tmp_path, name)
    env = _env(tmp_path, **settings)
    r = _paymux(env, "serve", "--no-workers", "--port", str(_free_port()), *args)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "hub.db").exists()  # refused before anything was started or migrated


def test_the_bench_keeps_tls_settings_from_its_hubs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The bench's load generator speaks plain HTTP: PAYMUX_SSL_* of the caller's environment must not
    reach the hubs it starts, nor the results file (a key's password)."""
    from paymux.bench.runner import Bench, BenchOptions, _settings_overrides

    monkeypatch.setenv("PAYMUX_SSL_CERTFILE", "/etc/paymux/cert.pem")
    monkeypatch.setenv("PAYMUX_SSL_KEYFILE_PASSWORD", "secret")
    monkeypatch.setenv("PAYMUX_WORKERS", "32")
    env = Bench(BenchOptions(), tmp_path).env("sqlite+aiosqlite:///x.db")
    assert not [k for k in env if k.startswith("PAYMUX_SSL_")]
    assert env["PAYMUX_WORKERS"] == "32"
    assert _settings_overrides() == {"PAYMUX_WORKERS": "32"}
