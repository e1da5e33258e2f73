"""Certificates for TLS tests, made with ``cryptography``: a CA, a server certificate for 127.0.0.1
signed by it, a client certificate signed by it, and a client certificate of another CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "a key password"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA's certificate
    server_cert: Path  # for 127.0.0.1 and localhost, signed by the CA
    server_key: Path  # unencrypted
    server_key_encrypted: Path  # the same key, encrypted with KEY_PASSWORD
    client_cert: Path  # signed by the CA
    client_key: Path
    rogue_ca: Path  # another CA
    rogue_client_cert: Path  # a client certificate signed by the other CA
    rogue_client_key: Path

    def client_context(
        self, *, cert: bool = False, rogue: bool = False, trust: Path | None = None
    ) -> ssl.SSLContext:
        """A client's context trusting ``trust`` (the CA), with the client certificate when ``cert``
        (the other CA's when ``rogue``)."""
        ctx = ssl.create_default_context(cafile=str(trust or self.ca))
        if cert:
            pair = (
                (self.rogue_client_cert, self.rogue_client_key)
                if rogue
                else (self.client_cert, self.client_key)
            )
            ctx.load_cert_chain(*map(str, pair))
        return ctx

    def server_context(self, verify: ssl.VerifyMode = ssl.CERT_NONE) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        if verify != ssl.CERT_NONE:
            ctx.verify_mode = verify
            ctx.load_verify_locations(cafile=str(self.ca))
        return ctx


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    path.chmod(0o600)
    return path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("paymux test CA")
    rogue = _ca("another CA")
    server_cert, server_key = _leaf("127.0.0.1", ca, server=True)
    client_cert, client_key = _leaf("terminal-0001", ca, server=False)
    rogue_cert, rogue_key = _leaf("terminal-0001", rogue, server=False)
    return Pki(
        ca=_write_cert(directory / "ca.pem", ca[0]),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server.key", server_key),
        server_key_encrypted=_write_key(directory / "server-encrypted.key", server_key, KEY_PASSWORD),
        client_cert=_write_cert(directory / "client.pem", client_cert),
        client_key=_write_key(directory / "client.key", client_key),
        rogue_ca=_write_cert(directory / "rogue-ca.pem", rogue[0]),
        rogue_client_cert=_write_cert(directory / "rogue-client.pem", rogue_cert),
        rogue_client_key=_write_key(directory / "rogue-client.key", rogue_key),
    )
