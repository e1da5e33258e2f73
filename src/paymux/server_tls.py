"""TLS on ``paymux serve``'s own listener: its certificate and key, and clients' certificates.

The options come from the command line, each falling back to its ``PAYMUX_SSL_*`` setting. They are
checked, and the files loaded, before anything starts, so that a missing file, a key that does not
belong to the certificate or a wrong password is one readable line instead of a traceback (and an
encrypted key without a password never makes OpenSSL ask for one on the terminal). uvicorn then
builds the listener's context from the same files.

A client certificate checked here admits the connection (``required``: only clients holding a
certificate issued by ``ca_certs`` can connect at all); who the certificate names does not reach
the application. Gateways and the back office that tell clients apart by their certificate read it
from a header set by a TLS-terminating proxy instead (docs/deployment.md).
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paymux.settings import Settings


class ClientCerts(enum.StrEnum):
    """Whether clients must present a certificate issued by ``ca_certs``."""

    none = "none"  # not asked for
    optional = "optional"  # asked for; one that is sent must be valid, none is also admitted
    required = "required"  # a connection without a valid one is refused during the handshake


VERIFY_MODES = {
    ClientCerts.none: ssl.CERT_NONE,
    ClientCerts.optional: ssl.CERT_OPTIONAL,
    ClientCerts.required: ssl.CERT_REQUIRED,
}


class TLSOptionsError(ValueError):
    """Options that cannot make a TLS listener; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ServerTLS:
    certfile: Path
    keyfile: Path | None = None
    keyfile_password: str | None = None
    ca_certs: Path | None = None
    client_certs: ClientCerts = ClientCerts.none

    def context(self) -> ssl.SSLContext:
        """The server's TLS context; :class:`TLSOptionsError` for files that cannot make one."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        asked: list[bool] = []

        def password() -> bytes:  # called by OpenSSL only for an encrypted key
            asked.append(True)
            return (self.keyfile_password or "").encode()

        key = self.keyfile or self.certfile
        for path, option in ((self.certfile, "--ssl-certfile"), (self.keyfile, "--ssl-keyfile")):
            if path is not None and not path.is_file():
                raise TLSOptionsError(f"{option} {path}: no such file")
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile, password)
        except ssl.SSLError as e:
            if asked and not self.keyfile_password:
                raise TLSOptionsError(
                    f"the private key {key} is encrypted: give its password"
                    " (PAYMUX_SSL_KEYFILE_PASSWORD or --ssl-keyfile-password)"
                ) from None
            if asked:
                raise TLSOptionsError(f"the private key {key} cannot be decrypted: wrong password?") from None
            raise TLSOptionsError(
                f"cannot use the certificate {self.certfile} with the key {key}: {e.reason or e}"
            ) from None
        except OSError as e:
            raise TLSOptionsError(f"cannot read the certificate or key: {e}") from None
        ctx.verify_mode = VERIFY_MODES[self.client_certs]
        if self.ca_certs is not None:
            if not self.ca_certs.is_file():
                raise TLSOptionsError(f"--ssl-ca-certs {self.ca_certs}: no such file")
            try:
                ctx.load_verify_locations(cafile=self.ca_certs)
            except (ssl.SSLError, OSError, ValueError) as e:
                raise TLSOptionsError(
                    f"--ssl-ca-certs {self.ca_certs}: no CA certificate in it ({e})"
                ) from None
        return ctx

    def uvicorn_options(self) -> dict[str, Any]:
        """The keyword arguments of ``uvicorn.Config`` that make the same context."""
        return {
            "ssl_certfile": str(self.certfile),
            "ssl_keyfile": str(self.keyfile) if self.keyfile else None,
            "ssl_keyfile_password": self.keyfile_password or None,
            "ssl_cert_reqs": int(VERIFY_MODES[self.client_certs]),
            "ssl_ca_certs": str(self.ca_certs) if self.ca_certs else None,
        }


def server_tls(
    settings: Settings,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    keyfile_password: str | None = None,
    ca_certs: str | None = None,
    client_certs: ClientCerts | None = None,
) -> ServerTLS | None:
    """The listener's TLS from the command's options and the settings (None: plain HTTP), its
    files loaded once to check them; :class:`TLSOptionsError` says what is wrong."""
    cert = certfile or settings.ssl_certfile
    key = keyfile or settings.ssl_keyfile
    password = keyfile_password or settings.ssl_keyfile_password.get_secret_value()
    ca = ca_certs or settings.ssl_ca_certs
    reqs = client_certs or ClientCerts(settings.ssl_cert_reqs)
    if not cert:
        given = [
            name
            for name, value in (
                ("--ssl-keyfile (PAYMUX_SSL_KEYFILE)", key),
                ("--ssl-ca-certs (PAYMUX_SSL_CA_CERTS)", ca),
                ("--ssl-cert-reqs (PAYMUX_SSL_CERT_REQS)", reqs is not ClientCerts.none),
            )
            if value
        ]
        if given:
            raise TLSOptionsError(
                f"{', '.join(given)} needs a certificate: --ssl-certfile or PAYMUX_SSL_CERTFILE"
            )
        return None
    if reqs is not ClientCerts.none and not ca:
        raise TLSOptionsError(
            f"--ssl-cert-reqs {reqs.value} needs --ssl-ca-certs (PAYMUX_SSL_CA_CERTS):"
            " the CA certificates that issue the clients' certificates"
        )
    if ca and reqs is ClientCerts.none:
        raise TLSOptionsError(
            "--ssl-ca-certs (PAYMUX_SSL_CA_CERTS) only checks client certificates:"
            " give --ssl-cert-reqs optional or required (PAYMUX_SSL_CERT_REQS), or leave it out"
        )
    tls = ServerTLS(
        certfile=Path(cert),
        keyfile=Path(key) if key else None,
        keyfile_password=password or None,
        ca_certs=Path(ca) if ca else None,
        client_certs=reqs,
    )
    tls.context()
    return tls
