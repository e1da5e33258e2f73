"""FTP and explicit FTPS (AUTH TLS, protected data channel) uploads. Blocking."""

from __future__ import annotations

import ftplib

from paymux.registers.delivery import DeliveryError, Outgoing, describe, tls_context
from paymux.registers.schemas import FtpDelivery


def upload_ftp(d: FtpDelivery, out: Outgoing) -> None:
    """Upload under a temporary name, then rename, so the provider never picks up half a file."""
    try:
        ftp: ftplib.FTP
        if d.security == "explicit_tls":
            ftp = ftplib.FTP_TLS(context=tls_context(d.verify_tls, d.ca_pem), timeout=d.timeout_seconds)
        else:
            ftp = ftplib.FTP(timeout=d.timeout_seconds)
        with ftp:
            ftp.connect(d.host, d.port)
            ftp.login(d.username, d.password or "")
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(d.passive)
            if d.directory:
                ftp.cwd(d.directory)
            target = out.file_name + d.temp_suffix
            with out.path.open("rb") as f:
                ftp.storbinary(f"STOR {target}", f, blocksize=1 << 16)
            if d.temp_suffix:
                ftp.rename(target, out.file_name)
            ftp.quit()
    except ftplib.all_errors as e:
        raise DeliveryError(f"{describe(d)}: {type(e).__name__}: {e}") from None
