"""SFTP uploads with asyncssh (password or key auth; the server's host key is checked)."""

from __future__ import annotations

import asyncio
import posixpath
from typing import Any

import asyncssh

from paymux.registers.delivery import DeliveryError, Outgoing, describe
from paymux.registers.schemas import SftpDelivery


def _known_hosts(d: SftpDelivery) -> Any:
    if d.host_key is None:
        return None  # insecure_skip_host_key
    try:
        return ([asyncssh.import_public_key(d.host_key)], [], [])
    except (asyncssh.KeyImportError, ValueError) as e:
        raise DeliveryError(f"{describe(d)}: the host_key is not a public key: {e}") from None


async def upload_sftp(d: SftpDelivery, out: Outgoing) -> None:
    """Upload under a temporary name, then rename over the final one."""
    try:
        keys = [asyncssh.import_private_key(d.private_key, d.private_key_passphrase)] if d.private_key else []
    except (asyncssh.KeyImportError, ValueError) as e:
        raise DeliveryError(f"{describe(d)}: the private_key cannot be read: {e}") from None

    async def run() -> None:
        async with (
            asyncssh.connect(
                d.host,
                d.port,
                username=d.username,
                password=d.password,
                client_keys=keys,
                known_hosts=_known_hosts(d),
                agent_path=None,
                connect_timeout=d.timeout_seconds,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            final = posixpath.join(d.directory, out.file_name) if d.directory else out.file_name
            target = final + d.temp_suffix
            await sftp.put(str(out.path), target)
            if d.temp_suffix:
                if await sftp.exists(final):
                    await sftp.remove(final)
                await sftp.rename(target, final)

    try:
        await asyncio.wait_for(run(), timeout=d.timeout_seconds * 4)
    except (asyncssh.Error, OSError, TimeoutError) as e:
        raise DeliveryError(f"{describe(d)}: {type(e).__name__}: {e}") from None
