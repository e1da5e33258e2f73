"""OpenPGP encryption (and optional signing) of a register file with gpg through python-gnupg.

Each call uses a fresh temporary keyring holding only the provider's public key (and our signing
key when signing), so nothing is left behind and no system keyring is involved.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import gnupg

from paymux.registers.schemas import Encryption


class EncryptionError(RuntimeError):
    pass


def gpg_binary() -> str:
    found = shutil.which("gpg")
    if found is None:
        raise EncryptionError("gpg is not installed (apt-get install gnupg)")
    return found


def encrypt_file(src: Path, dst: Path, enc: Encryption) -> None:
    """Encrypt ``src`` to ``dst`` for the key in ``enc`` (blocking: run it in a thread)."""
    binary = gpg_binary()
    home = tempfile.mkdtemp(prefix="pmxgpg-")
    try:
        gpg = gnupg.GPG(gpgbinary=binary, gnupghome=home)
        imported = gpg.import_keys(enc.public_key)
        if not imported.fingerprints:
            raise EncryptionError("the provider's public key could not be imported (is it an armored key?)")
        recipient = imported.fingerprints[0]
        signer = None
        if enc.sign_key:
            own = gpg.import_keys(enc.sign_key)
            secret = [k["fingerprint"] for k in gpg.list_keys(secret=True)]
            if not secret:
                raise EncryptionError(
                    "the signing key could not be imported (an armored secret key is needed)"
                )
            signer = secret[0] if own.fingerprints else None
        dst.unlink(missing_ok=True)
        with src.open("rb") as f:
            result = gpg.encrypt_file(
                f,
                [recipient],
                sign=signer,
                passphrase=enc.sign_passphrase if signer else None,
                always_trust=True,
                armor=enc.armor,
                output=str(dst),
            )
        if not result.ok or not dst.exists():
            raise EncryptionError(f"gpg could not encrypt: {result.status or 'no status'}")
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=10, check=False
            )
        shutil.rmtree(home, ignore_errors=True)
