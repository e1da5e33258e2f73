"""Fetching a provider's register by FTP/FTPS or SFTP, with the register delivery settings and helpers
(the same destination schemas, TLS context and host-key checks as ``paymux.registers.delivery``)."""

from __future__ import annotations

import asyncio
import ftplib
import posixpath
from pathlib import Path

import asyncssh

from paymux.registers.delivery import DeliveryError, describe, tls_context
from paymux.registers.delivery.sftp import _known_hosts
from paymux.registers.schemas import FtpDelivery, SftpDelivery


class FetchError(RuntimeError):
    """The file could not be fetched; the message names the server, never its secrets."""


class NotThereYet(FetchError):
    """The server has no such file (yet): retried later."""


def _ftp_missing(e: BaseException) -> bool:
    return isinstance(e, ftplib.error_perm) and str(e)[:3] in ("550", "450")


def download_ftp(d: FtpDelivery, name: str, target: Path) -> None:
    """Download ``name`` from ``d.directory`` into ``target``. Blocking."""
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
            with target.open("wb") as f:
                ftp.retrbinary(f"RETR {name}", f.write, blocksize=1 << 16)
            ftp.quit()
    except ftplib.all_errors as e:
        if _ftp_missing(e):
            raise NotThereYet(f"{describe(d)}: {name} is not there yet ({e})") from None
        raise FetchError(f"{describe(d)}: {type(e).__name__}: {e}") from None


async def download_sftp(d: SftpDelivery, name: str, target: Path) -> None:
    try:
        keys = [asyncssh.import_private_key(d.private_key, d.private_key_passphrase)] if d.private_key else []
        known = _known_hosts(d)
    except (asyncssh.KeyImportError, ValueError, DeliveryError) as e:
        raise FetchError(f"{describe(d)}: the keys cannot be read: {e}") from None
    remote = posixpath.join(d.directory, name) if d.directory else name

    async def run() -> None:
        async with (
            asyncssh.connect(
                d.host,
                d.port,
                username=d.username,
                password=d.password,
                client_keys=keys,
                known_hosts=known,
                agent_path=None,
                connect_timeout=d.timeout_seconds,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            if not await sftp.exists(remote):
                raise NotThereYet(f"{describe(d)}: {remote} is not there yet")
            await sftp.get(remote, str(target))

    try:
        await asyncio.wait_for(run(), timeout=d.timeout_seconds * 4)
    except FetchError:
        raise
    except (asyncssh.Error, OSError, TimeoutError) as e:
        raise FetchError(f"{describe(d)}: {type(e).__name__}: {e}") from None


async def download(d: FtpDelivery | SftpDelivery, name: str, target: Path) -> None:
    if isinstance(d, FtpDelivery):
        await asyncio.to_thread(download_ftp, d, name, target)
    else:
        await download_sftp(d, name, target)
