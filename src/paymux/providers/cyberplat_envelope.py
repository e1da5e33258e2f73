"""Wire format of the Cyberplat protocol: key=value messages, RSA keys and the signed envelope.

Messages are lines ``KEY=value`` joined by CRLF and encoded in cp1251. Every message travels inside
a signed envelope of one of two layouts, chosen by the key files configured:

* iPriv key files (the ones the real service issues): the real service's signed document, byte for
  byte (:mod:`paymux.providers.ipriv`);
* PEM key files: paymux's own layout below, RSA PKCS#1 v1.5 over SHA-256 (or SHA-1 where a
  counterparty requires it)::

    BEGIN SIGNED MESSAGE\\r\\n
    Version: 1\\r\\n
    Signer-Key: 17031\\r\\n            serial of the key that signed (the receiver picks the public key)
    Recipient-Key: 64182\\r\\n         serial of the receiver's key it is meant for (optional)
    Algorithm: RSA-SHA256\\r\\n         PKCS#1 v1.5 over SHA-256 (RSA-SHA1: over SHA-1)
    Body-Length: 118\\r\\n              bytes of the body below
    \\r\\n
    SD=17031\\r\\nAP=17032\\r\\n...\\r\\n    the message, exactly Body-Length bytes
    END SIGNED MESSAGE\\r\\n
    BEGIN SIGNATURE\\r\\n
    <base64 of the RSA signature, 64 characters a line>\\r\\n
    END SIGNATURE\\r\\n

The signature covers every byte from ``BEGIN SIGNED MESSAGE`` through the CRLF after
``END SIGNED MESSAGE``, so the key serials in the header are signed too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paymux.providers import ipriv
from paymux.providers.ipriv import IprivError, IprivPublicKey, IprivSecretKey, SignedMessage

ENCODING = "cp1251"
CRLF = b"\r\n"
BEGIN = b"BEGIN SIGNED MESSAGE"
END = b"END SIGNED MESSAGE"
BEGIN_SIGNATURE = b"BEGIN SIGNATURE"
END_SIGNATURE = b"END SIGNATURE"
VERSION = "1"
ALGORITHM = "RSA-SHA256"
ALGORITHMS: dict[str, hashes.HashAlgorithm] = {"RSA-SHA256": hashes.SHA256(), "RSA-SHA1": hashes.SHA1()}
MAX_ENVELOPE_BYTES = 64 * 1024
MIN_KEY_BITS = 1024

_KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_SERIAL = re.compile(r"^[A-Za-z0-9-]{1,20}$")


class EnvelopeError(ValueError):
    """A message or envelope that cannot be read (malformed, not signed, wrong layout)."""


class KeyProblem(ValueError):
    """A key that cannot be used (unreadable PEM, wrong passphrase, not RSA, too short)."""


# -- key=value messages ---------------------------------------------------------------------------


def clean_value(value: str) -> str:
    """A value fit for one message line: no CR/LF, characters outside cp1251 replaced by ``?``."""
    one_line = value.replace("\r", " ").replace("\n", " ")
    return one_line.encode(ENCODING, errors="replace").decode(ENCODING)


def encode_message(fields: Iterable[tuple[str, str]]) -> bytes:
    """``KEY=value`` lines joined by CRLF (with a final CRLF), in cp1251."""
    lines: list[bytes] = []
    for key, value in fields:
        if not _KEY_NAME.match(key):
            raise EnvelopeError(f"invalid field name {key!r}")
        lines.append(f"{key}={clean_value(value)}".encode(ENCODING))
    return CRLF.join(lines) + CRLF if lines else b""


def decode_message(body: bytes) -> dict[str, str]:
    """The fields of a message body; :class:`EnvelopeError` if a line is not ``KEY=value``."""
    text = body.decode(ENCODING)
    fields: dict[str, str] = {}
    for line in text.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_NAME.match(key):
            raise EnvelopeError(f"not a KEY=value line: {line[:60]!r}")
        if key in fields:
            raise EnvelopeError(f"field {key} appears twice")
        fields[key] = value
    return fields


# -- keys -----------------------------------------------------------------------------------------


def _pem_bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem


SigningKey = rsa.RSAPrivateKey | IprivSecretKey
VerifyingKey = rsa.RSAPublicKey | IprivPublicKey


def is_key_text(text: str | bytes) -> bool:
    """Whether ``text`` looks like a PEM block or an iPriv key file."""
    data = _pem_bytes(text)
    return b"-----BEGIN" in data or ipriv.looks_like_document(data)


def load_private_key(pem: str | bytes, passphrase: str | None = None) -> SigningKey:
    """Our key: an iPriv secret key file, or RSA from PEM (PKCS#1 or PKCS#8, encrypted with a passphrase)."""
    if ipriv.looks_like_document(_pem_bytes(pem)):
        if not passphrase:
            raise KeyProblem("an iPriv secret key is always encrypted: a passphrase is needed")
        try:
            return ipriv.load_secret_key(_pem_bytes(pem), passphrase)
        except IprivError as exc:
            raise KeyProblem(f"cannot open the iPriv secret key: {exc}") from None
        except UnicodeEncodeError:
            raise KeyProblem("the passphrase of an iPriv key must be cp1251 text") from None
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        key = serialization.load_pem_private_key(_pem_bytes(pem), password=password)
    except TypeError as exc:
        if password is None:
            raise KeyProblem("the private key is encrypted: a passphrase is needed") from None
        raise KeyProblem(f"the private key is not encrypted: leave the passphrase out ({exc})") from None
    except ValueError:
        if password is not None:
            raise KeyProblem(
                "cannot read the private key: not a PEM private key or a wrong passphrase"
            ) from None
        raise KeyProblem("cannot read the private key: not a PEM private key") from None
    except UnsupportedAlgorithm as exc:
        raise KeyProblem(f"unsupported private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyProblem(f"the private key must be an RSA key (got {type(key).__name__})")
    if key.key_size < MIN_KEY_BITS:
        raise KeyProblem(f"the private key has {key.key_size} bits; at least {MIN_KEY_BITS} are needed")
    return key


def load_public_key(pem: str | bytes, serial: str | None = None) -> VerifyingKey:
    """The peer's key: key ``serial`` of an iPriv public key file, or RSA from PEM
    (``PUBLIC KEY`` / ``RSA PUBLIC KEY``, or an X.509 certificate)."""
    data = _pem_bytes(pem)
    if ipriv.looks_like_document(data):
        if serial is None or not serial.isdigit() or len(serial) > 8:
            raise KeyProblem("an iPriv public key file is read by key serial (up to 8 digits)")
        try:
            return ipriv.load_public_key(data, int(serial))
        except IprivError as exc:
            raise KeyProblem(f"cannot read the iPriv public key {serial}: {exc}") from None
    key: object
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem("cannot read the public key: not a PEM public key or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyProblem(f"the public key must be an RSA key (got {type(key).__name__})")
    if key.key_size < MIN_KEY_BITS:
        raise KeyProblem(f"the public key has {key.key_size} bits; at least {MIN_KEY_BITS} are needed")
    return key


def key_pair_problems(private: SigningKey, own_serial: str, public: VerifyingKey) -> list[str]:
    """What is wrong in a pair of configured keys: both must be iPriv files or both PEM, and an
    iPriv secret key must be the key whose serial is configured."""
    problems: list[str] = []
    if isinstance(private, IprivSecretKey) != isinstance(public, IprivPublicKey):
        problems.append("the two keys must both be iPriv key files or both PEM")
    if isinstance(private, IprivSecretKey) and str(private.serial) != own_serial.lstrip("0"):
        problems.append(
            f"the iPriv secret key has serial {private.serial}, not the configured {own_serial!r}"
        )
    return problems


def algorithm_problem(value: object) -> str | None:
    """A problem with a configured ``signature_algorithm`` (PEM keys only), or None."""
    if value is None or value in ALGORITHMS:
        return None
    return f"signature_algorithm must be one of {', '.join(sorted(ALGORITHMS))} (got {value!r})"


def valid_serial(serial: str) -> bool:
    return bool(_SERIAL.match(serial))


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A freshly generated key pair as PEM text (the private key encrypted when a passphrase is set)."""

    private_pem: str
    public_pem: str


def generate_key_pair(bits: int = 2048, passphrase: str | None = None) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private_pem.decode("ascii"), public_pem.decode("ascii"))


def write_key_pair(directory: Path, name: str, pair: KeyPair) -> tuple[Path, Path]:
    """Write ``<name>.key`` (mode 0600) and ``<name>.pub`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    private_path.touch(mode=0o600, exist_ok=True)
    private_path.chmod(0o600)
    private_path.write_text(pair.private_pem, encoding="ascii")
    public_path.write_text(pair.public_pem, encoding="ascii")
    return private_path, public_path


# -- the signed envelope --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """An opened envelope: its header, body, signature and the bytes the signature covers."""

    header: dict[str, str]
    body: bytes
    signature: bytes
    signed: bytes
    ipriv: SignedMessage | None = None

    @property
    def signer_key(self) -> str:
        return self.header.get("Signer-Key", "")

    @property
    def recipient_key(self) -> str | None:
        return self.header.get("Recipient-Key")

    def verify(self, public_key: VerifyingKey, algorithm: str = ALGORITHM) -> bool:
        """Whether the signature is valid for ``public_key`` (in the layout the key belongs to)."""
        if isinstance(public_key, IprivPublicKey):
            return self.ipriv is not None and self.ipriv.verify(public_key)
        if self.ipriv is not None or self.header.get("Algorithm") != algorithm or algorithm not in ALGORITHMS:
            return False
        try:
            public_key.verify(self.signature, self.signed, padding.PKCS1v15(), ALGORITHMS[algorithm])
        except InvalidSignature:
            return False
        return True


def seal(
    body: bytes,
    key: SigningKey,
    signer_key: str,
    recipient_key: str | None = None,
    algorithm: str = ALGORITHM,
) -> bytes:
    """The signed envelope around ``body`` (a cp1251 message): an iPriv document for an iPriv key."""
    if isinstance(key, IprivSecretKey):
        return key.sign(body)
    header = [f"Version: {VERSION}", f"Signer-Key: {signer_key}"]
    if recipient_key:
        header.append(f"Recipient-Key: {recipient_key}")
    header += [f"Algorithm: {algorithm}", f"Body-Length: {len(body)}"]
    signed = BEGIN + CRLF + CRLF.join(h.encode("ascii") for h in header) + CRLF + CRLF + body + END + CRLF
    signature = key.sign(signed, padding.PKCS1v15(), ALGORITHMS[algorithm])
    encoded = base64.b64encode(signature)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return signed + BEGIN_SIGNATURE + CRLF + CRLF.join(lines) + CRLF + END_SIGNATURE + CRLF


def open_envelope(data: bytes) -> Envelope:
    """Parse an envelope (surrounding whitespace is ignored); :class:`EnvelopeError` if malformed."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"the message is larger than {MAX_ENVELOPE_BYTES} bytes")
    if ipriv.looks_like_document(data):
        try:
            message = ipriv.open_message(data)
        except IprivError as exc:
            raise EnvelopeError(f"not a signed iPriv message: {exc}") from None
        seen = {"Signer-Key": str(message.signer_serial), "Format": "ipriv"}
        return Envelope(seen, message.body, b"", b"", message)
    data = data.strip(b" \t\r\n") + CRLF
    if not data.startswith(BEGIN + CRLF):
        raise EnvelopeError("not a signed message (no BEGIN SIGNED MESSAGE line)")
    header_end = data.find(CRLF + CRLF, len(BEGIN))
    if header_end < 0:
        raise EnvelopeError("the header does not end with an empty line")
    header: dict[str, str] = {}
    for raw in data[len(BEGIN) + 2 : header_end].split(CRLF):
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            raise EnvelopeError("the header is not ASCII") from None
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise EnvelopeError(f"not a header line: {line[:60]!r}")
        header[name.strip()] = value.strip()
    if header.get("Version") != VERSION:
        raise EnvelopeError(f"unsupported envelope version {header.get('Version')!r}")
    if not valid_serial(header.get("Signer-Key", "")):
        raise EnvelopeError("the header has no valid Signer-Key")
    try:
        length = int(header.get("Body-Length", ""))
    except ValueError:
        raise EnvelopeError("the header has no valid Body-Length") from None
    body_start = header_end + 4
    body_end = body_start + length
    if length < 0 or not data.startswith(END + CRLF, body_end):
        raise EnvelopeError("the body is not followed by END SIGNED MESSAGE (wrong Body-Length?)")
    signed_end = body_end + len(END) + 2
    rest = data[signed_end:]
    if not rest.startswith(BEGIN_SIGNATURE + CRLF):
        raise EnvelopeError("the message is not signed (no BEGIN SIGNATURE)")
    sig_end = rest.find(CRLF + END_SIGNATURE + CRLF)
    if sig_end < 0 or rest[sig_end + len(END_SIGNATURE) + 4 :].strip():
        raise EnvelopeError("the signature block does not end with END SIGNATURE")
    encoded = b"".join(rest[len(BEGIN_SIGNATURE) + 2 : sig_end].split())
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("the signature is not valid base64") from None
    if not signature:
        raise EnvelopeError("the signature is empty")
    return Envelope(header, data[body_start:body_end], signature, data[:signed_end])
