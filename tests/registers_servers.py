"""Real servers on 127.0.0.1 for the register delivery tests: SMTP (STARTTLS/SSL, auth), FTP/FTPS, SFTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import asyncssh
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

USER, PASSWORD = "registers", "pa55-word"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cert:
    cert_pem: str
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def self_signed(tmp: Path) -> Cert:
    """A self-signed certificate for 127.0.0.1 and localhost, made with ``cryptography``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "cert.pem").write_bytes(pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Cert(pem.decode(), tmp / "cert.pem", tmp / "key.pem")


# --- SMTP ---------------------------------------------------------------------------------------------------


@dataclass
class SmtpHandler:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    refuse: bool = False
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"


def start_smtp(cert: Cert, *, implicit_tls: bool = False) -> tuple[Controller, SmtpHandler, int]:
    """An aiosmtpd server requiring STARTTLS (or implicit TLS) and LOGIN/PLAIN auth."""
    handler = SmtpHandler()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == USER
            and auth_data.password.decode() == PASSWORD
        )
        if ok:
            handler.logins.append(USER)
        return AuthResult(success=ok, handled=False)

    port = free_port()
    kwargs: dict[str, Any] = {
        "authenticator": authenticator,
        "auth_required": True,
    }
    if implicit_tls:
        kwargs.update(ssl_context=cert.server_context(), auth_require_tls=False)  # the whole session is TLS
    else:
        kwargs.update(tls_context=cert.server_context(), require_starttls=True, auth_require_tls=True)
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, handler, port


# --- FTP ----------------------------------------------------------------------------------------------------


class FtpServerThread:
    """pyftpdlib in a thread; ``uploads`` lists every file a client stored (temporary names included)."""

    def __init__(self, root: Path, port: int, cert: Cert | None = None) -> None:
        self.root, self.port, self.cert = root, port, cert
        self.uploads: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.server: FTPServer | None = None

    def start(self) -> None:
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(self.root), perm="elradfmwMT")
        uploads = self.uploads
        base: type[FTPHandler] = TLS_FTPHandler if self.cert else FTPHandler
        attrs: dict[str, Any] = {
            "authorizer": authorizer,
            "on_file_received": lambda h, path: uploads.append(Path(path).name),
        }
        if self.cert:
            attrs.update(
                certfile=str(self.cert.cert_file),
                keyfile=str(self.cert.key_file),
                tls_control_required=True,
                tls_data_required=True,
            )
        handler = type("Handler", (base,), attrs)
        self.server = FTPServer(("127.0.0.1", self.port), handler)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self.server is not None
        while not self._stop.is_set():
            self.server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self.server.close_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None


# --- SFTP ---------------------------------------------------------------------------------------------------


class _SshServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


class SftpServer:
    """An asyncssh SFTP server (password and key auth) chrooted to ``root``; counts files written."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.writes: list[str] = []
        self._listener: Any = None
        self._dropper: asyncio.Server | None = None

    @property
    def host_public(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    @property
    def client_private(self) -> str:
        return self.client_key.export_private_key().decode()

    async def start(self) -> None:
        writes = self.writes
        root = str(self.root)

        class Sftp(asyncssh.SFTPServer):
            def __init__(self, chan: Any) -> None:
                super().__init__(chan, chroot=root)

            def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
                if pflags & asyncssh.FXF_WRITE:
                    writes.append(path.decode())
                return super().open(path, pflags, attrs)

        self._listener = await asyncssh.listen(
            "127.0.0.1",
            self.port,
            server_factory=_SshServer,
            server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()
            ),
            sftp_factory=Sftp,
        )

    async def start_dropping(self) -> None:
        """Accept connections and drop them at once (a server that is up but broken)."""

        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self._dropper = await asyncio.start_server(drop, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        if self._dropper is not None:
            self._dropper.close()
            await self._dropper.wait_closed()
            self._dropper = None
