"""iPriv signed documents and key files: the signature layer of the real Cyberplat dealer protocol.

The Cyberplat service signs every message with its iPriv library. Its byte layout, as published
with the dealer kit and read back by independent implementations, is a text *document*::

    0000027201SM000000110000001100000125\\r\\n    length, engine, type, body size, data length, signature size
    api17032            00017033\\r\\n            subject: key name (20, left-aligned) + key serial (8 digits)
                        00000000\\r\\n            certifying key (none for a signed message)
    BEGIN\\r\\n
    <body: exactly "body size" bytes>\\r\\n
    END\\r\\n
    BEGIN SIGNATURE\\r\\n
    <ASCII-armoured PGP 2.x packets: base64, 64 a line, then "=" + CRC-24>\\r\\n
    END SIGNATURE

The first field is the number of bytes after it, less the line break that ends it, counted as if the
document ended with CRLF (documents are written without the last one). Documents of type ``SM`` are
signed messages; ``NM`` holds a secret key, ``NS`` a public key certified by a key (itself, or a CA key
in the same file).

The packets are PGP 2.x ("old format", RFC 1991): a signature (type 2, version 3) over the body followed
by nine bytes of metadata (signature type, the signer's key serial, a Unix time), RSA PKCS#1 v1.5 over
MD5; key packets (types 5 and 6, version 3) carry the key serial before the creation time; the secret
parts are IDEA-CFB encrypted with the MD5 of the passphrase, resynchronised before each integer, and
followed by a 16-bit sum of the plain integers. A trust packet (type 12, ``0xC7``) ends a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CRLF = b"\r\n"
MAX_DOCUMENT_BYTES = 256 * 1024
HEADER_LENGTH = 36
KEY_ID_LENGTH = 28
ENGINE = 1  # the library's "OpenSSL" engine; every document the dealer kit writes says 01

SIGNED_MESSAGE = "SM"
SECRET_KEY = "NM"
PUBLIC_KEY = "NS"

PKT_SIGNATURE = 2
PKT_SECRET_KEY = 5
PKT_PUBLIC_KEY = 6
PKT_TRUST = 12
PKT_USER_ID = 13

ALG_RSA = 1
HASH_MD5 = 1
CIPHER_IDEA = 1
SIG_MESSAGE = 0x01
SIG_KEY = 0x10
TRUST = b"\xc7"
MIN_KEY_BITS = 512  # the service issued 512-bit keys; docs/protocols.md says why they are still taken

_NAME = re.compile(r"^[\x21-\x7e]{0,20}$")
_DIGITS = re.compile(rb"^[0-9]+$")


class IprivError(ValueError):
    """A document, packet or key file that cannot be read (the library's CRYPT_ERR_* cases)."""


# -- armour ---------------------------------------------------------------------------------------


def crc24(data: bytes) -> int:
    """The OpenPGP CRC-24 (RFC 4880 §6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armour(data: bytes) -> bytes:
    """Base64 in lines of 64, CRLF after each, then ``=`` and the CRC-24 (no CRLF after it)."""
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return b"".join(line + CRLF for line in lines) + b"=" + base64.b64encode(crc24(data).to_bytes(3, "big"))


def dearmour(block: bytes) -> bytes:
    """The bytes of an armoured block; the CRC, when present, must match."""
    data: list[bytes] = []
    crc: int | None = None
    for line in block.split(CRLF):
        line = line.strip()
        if line.startswith(b"="):
            try:
                crc = int.from_bytes(base64.b64decode(line[1:], validate=True), "big")
            except (binascii.Error, ValueError):
                raise IprivError("RADIX_DECODE: the checksum line is not base64") from None
        elif line:
            data.append(line)
    try:
        decoded = base64.b64decode(b"".join(data), validate=True)
    except (binascii.Error, ValueError):
        raise IprivError("RADIX_DECODE: the block is not base64") from None
    if crc is not None and crc != crc24(decoded):
        raise IprivError("RADIX_DECODE: the block's CRC-24 does not match")
    return decoded


# -- documents ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyId:
    name: str
    serial: int

    def line(self) -> bytes:
        if not _NAME.match(self.name):
            raise IprivError(f"a key name is up to 20 printable ASCII characters, not {self.name!r}")
        if not 0 <= self.serial <= 99_999_999:
            raise IprivError(f"a key serial has at most 8 digits, not {self.serial}")
        return f"{self.name:<20}{self.serial:08d}".encode("ascii")


NO_KEY = KeyId("", 0)


@dataclass(frozen=True, slots=True)
class Document:
    type: str
    subject: KeyId
    ca: KeyId
    body: bytes
    signature: bytes
    data_length: int
    engine: int = ENGINE


def _int(field: bytes, what: str) -> int:
    if not _DIGITS.match(field):
        raise IprivError(f"INVALID_FORMAT: {what} is not a number: {field[:20]!r}")
    return int(field)


def _key_id(line: bytes) -> KeyId:
    if len(line) != KEY_ID_LENGTH:
        raise IprivError(f"INVALID_FORMAT: a key line has {KEY_ID_LENGTH} characters, not {len(line)}")
    try:
        name = line[:20].decode("ascii").rstrip(" ")
    except UnicodeDecodeError:
        raise IprivError("INVALID_FORMAT: a key name is not ASCII") from None
    return KeyId(name, _int(line[20:], "a key serial"))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def line(self) -> bytes:
        end = self.data.find(CRLF, self.pos)
        if end < 0:
            raise IprivError("INVALID_FORMAT: unexpected end of document")
        line = self.data[self.pos : end]
        self.pos = end + 2
        return line

    def block(self, header: bytes, trailer: bytes, size: int) -> bytes:
        if self.line() != header:
            raise IprivError(f"INVALID_FORMAT: expected {header.decode()}")
        body = self.data[self.pos : self.pos + size]
        if len(body) != size:
            raise IprivError("INVALID_FORMAT: unexpected end of document")
        self.pos += size
        if self.line() != b"":
            raise IprivError(
                f"INVALID_FORMAT: the block before {trailer.decode()} is longer than its header says"
            )
        end = self.data.find(CRLF, self.pos)
        last = self.data[self.pos :] if end < 0 else self.data[self.pos : end]
        if last != trailer:
            raise IprivError(f"INVALID_FORMAT: expected {trailer.decode()}")
        self.pos = len(self.data) if end < 0 else end + 2
        return body


def read_documents(data: bytes) -> list[Document]:
    """Every document in ``data`` (a key file holds several; a message one)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise IprivError(f"INVALID_FORMAT: larger than {MAX_DOCUMENT_BYTES} bytes")
    data = data.lstrip(b" \t\r\n")
    documents: list[Document] = []
    reader = _Reader(data if data.endswith(CRLF) else data + CRLF)
    while reader.pos < len(reader.data) and reader.data[reader.pos :].strip():
        start = reader.pos
        header = reader.line()
        if len(header) != HEADER_LENGTH:
            raise IprivError(
                f"INVALID_FORMAT: a document header has {HEADER_LENGTH} characters, not {len(header)}"
            )
        length = _int(header[0:8], "the document length")
        engine = _int(header[8:10], "the engine")
        try:
            doc_type = header[10:12].decode("ascii")
        except UnicodeDecodeError:
            raise IprivError("INVALID_FORMAT: the document type is not ASCII") from None
        body_size = _int(header[12:20], "the body size")
        data_length = _int(header[20:28], "the data length")
        signature_size = _int(header[28:36], "the signature size")
        subject = _key_id(reader.line())
        ca = _key_id(reader.line())
        body = reader.block(b"BEGIN", b"END", body_size)
        signature = reader.block(b"BEGIN SIGNATURE", b"END SIGNATURE", signature_size)
        if reader.pos != start + 8 + length + 2:
            raise IprivError("INVALID_FORMAT: the document length does not match its content")
        documents.append(Document(doc_type, subject, ca, body, signature, data_length, engine))
        while reader.data.startswith(CRLF, reader.pos):
            reader.pos += 2
    if not documents:
        raise IprivError("INVALID_FORMAT: no document")
    return documents


def write_document(doc: Document) -> bytes:
    """One document, ending with CRLF (a file or a message drops the last one)."""
    rest = (
        doc.subject.line() + CRLF + doc.ca.line() + CRLF
        + b"BEGIN" + CRLF + doc.body + CRLF + b"END" + CRLF
        + b"BEGIN SIGNATURE" + CRLF + doc.signature + CRLF + b"END SIGNATURE" + CRLF
    )  # fmt: skip
    header = f"{doc.engine:02d}{doc.type}{len(doc.body):08d}{doc.data_length:08d}{len(doc.signature):08d}"
    head = header.encode("ascii") + CRLF
    return f"{len(head) + len(rest) - 2:08d}".encode("ascii") + head + rest


def write_documents(docs: list[Document]) -> bytes:
    return b"".join(write_document(d) for d in docs)[:-2]


# -- packets --------------------------------------------------------------------------------------


def read_packets(data: bytes) -> list[tuple[int, bytes]]:
    """``(type, payload)`` of each old-format packet in ``data``."""
    packets: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        ctb = data[pos]
        if ctb & 0xC0 != 0x80:
            raise IprivError("INVALID_PACKET_FORMAT: not a packet header")
        size = {0: 1, 1: 2, 2: 4}.get(ctb & 3)
        if size is None:
            raise IprivError("INVALID_PACKET_FORMAT: packets of indefinite length are not used")
        length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
        start = pos + 1 + size
        if start + length > len(data):
            raise IprivError("INVALID_PACKET_FORMAT: unexpected end of packet")
        packets.append(((ctb >> 2) & 0x0F, data[start : start + length]))
        pos = start + length
    return packets


def write_packet(packet_type: int, payload: bytes) -> bytes:
    ctb = 0x80 | (packet_type << 2)
    if len(payload) <= 0xFF:
        return bytes([ctb, len(payload)]) + payload
    if len(payload) <= 0xFFFF:
        return bytes([ctb | 1]) + len(payload).to_bytes(2, "big") + payload
    return bytes([ctb | 2]) + len(payload).to_bytes(4, "big") + payload


def _mpi(value: int) -> tuple[bytes, bytes]:
    """The two-byte bit count and the big-endian bytes of an integer (PGP's MPI)."""
    bits = value.bit_length()
    return bits.to_bytes(2, "big"), value.to_bytes((bits + 7) // 8, "big")


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise IprivError("INVALID_PACKET_FORMAT: unexpected end of packet")
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def mpi(self) -> tuple[bytes, bytes]:
        header = self.take(2)
        return header, self.take((int.from_bytes(header, "big") + 7) // 8)


class _IdeaCfb:
    """IDEA in PGP 2.x's 64-bit CFB, with its resynchronisation before each integer."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.decrepit.ciphers.algorithms import IDEA
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        self._ecb = Cipher(IDEA(key), modes.ECB()).encryptor()
        self._prev = bytes(8)
        self._cur = bytearray()
        self._stream = self._ecb.update(self._prev)

    def _next_block(self, register: bytes) -> None:
        self._prev = register
        self._cur = bytearray()
        self._stream = self._ecb.update(register)

    def _run(self, data: bytes, decrypt: bool) -> bytes:
        out = bytearray()
        for byte in data:
            if len(self._cur) == 8:
                self._next_block(bytes(self._cur))
            result = byte ^ self._stream[len(self._cur)]
            self._cur.append(byte if decrypt else result)
            out.append(result)
        return bytes(out)

    def encrypt(self, data: bytes) -> bytes:
        return self._run(data, decrypt=False)

    def decrypt(self, data: bytes) -> bytes:
        return self._run(data, decrypt=True)

    def sync(self) -> None:
        """Start a new block whose register is the last eight bytes of cipher text."""
        if 0 < len(self._cur) < 8:
            self._next_block((self._prev + bytes(self._cur))[-8:])


def _idea_key(passphrase: str) -> bytes:
    return hashlib.md5(passphrase.encode("cp1251", errors="strict")).digest()


@dataclass(frozen=True, slots=True)
class _KeyFields:
    serial: int
    created: int
    valid_days: int
    n: int
    e: int


def _key_payload(f: _KeyFields) -> bytes:
    out = bytes([3]) + f.serial.to_bytes(4, "big") + f.created.to_bytes(4, "big")
    out += f.valid_days.to_bytes(2, "big") + bytes([ALG_RSA])
    for value in (f.n, f.e):
        out += b"".join(_mpi(value))
    return out


def _read_key_fields(cur: _Cursor) -> _KeyFields:
    if cur.byte() != 3:
        raise IprivError("INVALID_PACKET_FORMAT: unsupported key version")
    serial, created, valid_days = cur.number(4), cur.number(4), cur.number(2)
    if cur.byte() != ALG_RSA:
        raise IprivError("UNKNOWN_ALG: only RSA keys are used")
    n = int.from_bytes(cur.mpi()[1], "big")
    e = int.from_bytes(cur.mpi()[1], "big")
    return _KeyFields(serial, created, valid_days, n, e)


@dataclass(frozen=True, slots=True)
class _Signature:
    metadata: bytes
    hash_start: bytes
    value: bytes

    @property
    def serial(self) -> int:
        return int.from_bytes(self.metadata[1:5], "big") if len(self.metadata) >= 5 else -1


def _read_signature(payload: bytes) -> _Signature:
    cur = _Cursor(payload)
    if cur.byte() != 3:
        raise IprivError("INVALID_PACKET_FORMAT: unsupported signature version")
    size = cur.byte()
    if size > 32:
        raise IprivError("INVALID_PACKET_FORMAT: signature metadata too long")
    metadata = cur.take(size)
    if cur.byte() != ALG_RSA or cur.byte() != HASH_MD5:
        raise IprivError("UNKNOWN_ALG: signatures are RSA over MD5")
    hash_start = cur.take(2)
    return _Signature(metadata, hash_start, cur.mpi()[1])


def _signature_packets(key: rsa.RSAPrivateKey, serial: int, data: bytes, sig_type: int, at: int) -> bytes:
    metadata = bytes([sig_type]) + serial.to_bytes(4, "big") + at.to_bytes(4, "big")
    value = key.sign(data + metadata, padding.PKCS1v15(), hashes.MD5())
    digest = hashlib.md5(data + metadata).digest()
    number = int.from_bytes(value, "big")
    payload = (
        bytes([3, len(metadata)])
        + metadata
        + bytes([ALG_RSA, HASH_MD5])
        + digest[:2]
        + b"".join(_mpi(number))
    )
    return write_packet(PKT_SIGNATURE, payload) + write_packet(PKT_TRUST, TRUST)


def _verify(public: rsa.RSAPublicKey, sig: _Signature, data: bytes) -> bool:
    size = (public.key_size + 7) // 8
    if len(sig.value) > size:
        return False
    try:
        public.verify(sig.value.rjust(size, b"\0"), data + sig.metadata, padding.PKCS1v15(), hashes.MD5())
    except InvalidSignature:
        return False
    return True


# -- keys -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IprivPublicKey:
    """A public key from an iPriv key file, by its serial."""

    name: str
    serial: int
    key: rsa.RSAPublicKey

    @property
    def key_size(self) -> int:
        return self.key.key_size


@dataclass(frozen=True, slots=True)
class IprivSecretKey:
    """A secret key opened from an iPriv key file with its passphrase."""

    name: str
    serial: int
    key: rsa.RSAPrivateKey

    @property
    def key_size(self) -> int:
        return self.key.key_size

    def public(self) -> IprivPublicKey:
        return IprivPublicKey(self.name, self.serial, self.key.public_key())

    def sign(self, body: bytes, at: int | None = None) -> bytes:
        """The signed-message document (type SM) around ``body``."""
        when = int(time.time()) if at is None else at
        block = armour(_signature_packets(self.key, self.serial, body, SIG_MESSAGE, when))
        doc = Document(SIGNED_MESSAGE, KeyId(self.name, self.serial), NO_KEY, body, block, len(body))
        return write_documents([doc])


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """An opened SM document: the body, who signed it and the signature to check."""

    body: bytes
    signer_name: str
    signer_serial: int
    _signature: _Signature

    def verify(self, key: IprivPublicKey) -> bool:
        if key.serial != self.signer_serial or self._signature.serial != key.serial:
            return False
        return _verify(key.key, self._signature, self.body)


def looks_like_document(data: bytes) -> bool:
    """Whether ``data`` starts like an iPriv document (8 digits, an engine and a type)."""
    head = data.lstrip(b" \t\r\n")[:12]
    return len(head) == 12 and head[:10].isdigit() and head[10:12].isalpha()


def open_message(data: bytes) -> SignedMessage:
    docs = read_documents(data)
    if len(docs) != 1 or docs[0].type != SIGNED_MESSAGE:
        raise IprivError("DOCTYPE: expected one signed message (SM)")
    doc = docs[0]
    packets = read_packets(dearmour(doc.signature))
    signatures = [p for t, p in packets if t == PKT_SIGNATURE]
    if len(signatures) != 1:
        raise IprivError("INVALID_PACKET_FORMAT: a signed message carries one signature")
    if doc.data_length != len(doc.body):
        raise IprivError("INVALID_FORMAT: the data length does not match the body")
    return SignedMessage(doc.body, doc.subject.name, doc.subject.serial, _read_signature(signatures[0]))


def _certified(key_payload: bytes, user_id: bytes, sig: _Signature, ca: rsa.RSAPublicKey) -> bool:
    prefix = bytes([0x99]) + len(key_payload).to_bytes(2, "big")
    return _verify(ca, sig, prefix + key_payload + user_id)


def _parts(doc: Document) -> tuple[int, bytes, bytes, _Signature]:
    body = read_packets(dearmour(doc.body))
    key = [(t, p) for t, p in body if t in (PKT_PUBLIC_KEY, PKT_SECRET_KEY)]
    user = [p for t, p in body if t == PKT_USER_ID]
    sigs = [p for t, p in read_packets(dearmour(doc.signature)) if t == PKT_SIGNATURE]
    if len(key) != 1 or len(user) != 1 or len(sigs) != 1:
        raise IprivError("INVALID_PACKET_FORMAT: a key document holds one key, one user id and one signature")
    return key[0][0], key[0][1], user[0], _read_signature(sigs[0])


def _rsa_public(f: _KeyFields) -> rsa.RSAPublicKey:
    try:
        return rsa.RSAPublicNumbers(f.e, f.n).public_key()
    except ValueError as e:
        raise IprivError(f"INVALID_KEY: {e}") from None


def load_public_key(data: bytes, serial: int) -> IprivPublicKey:
    """The public key ``serial`` from a public key file, its certificate checked.

    A key certified by itself stands alone; a key certified by another key (a CA) needs that key in
    the same file, itself self-certified.
    """
    docs = [d for d in read_documents(data) if d.type == PUBLIC_KEY]
    by_serial = {d.subject.serial: d for d in docs}
    doc = by_serial.get(serial)
    if doc is None:
        raise IprivError(f"PUB_KEY_NOT_FOUND: no public key with serial {serial} in the file")
    _, payload, user_id, sig = _parts(doc)
    fields = _read_key_fields(_Cursor(payload))
    public = _rsa_public(fields)
    if doc.ca.serial in (0, serial):
        ca_key = public
    else:
        ca_doc = by_serial.get(doc.ca.serial)
        if ca_doc is None:
            raise IprivError(f"PUB_KEY_NOT_FOUND: the certifying key {doc.ca.serial} is not in the file")
        _, ca_payload, ca_user, ca_sig = _parts(ca_doc)
        ca_key = _rsa_public(_read_key_fields(_Cursor(ca_payload)))
        if not _certified(ca_payload, ca_user, ca_sig, ca_key):
            raise IprivError("INVALID_KEY: the certifying key's own signature does not verify")
    if not _certified(payload, user_id, sig, ca_key):
        raise IprivError("INVALID_KEY: the key's certificate does not verify")
    if public.key_size < MIN_KEY_BITS:
        raise IprivError(f"INVALID_KEYLEN: {public.key_size} bits; at least {MIN_KEY_BITS}")
    return IprivPublicKey(doc.subject.name, serial, public)


def load_secret_key(data: bytes, passphrase: str) -> IprivSecretKey:
    """The secret key of a secret key file, decrypted with ``passphrase``."""
    docs = [d for d in read_documents(data) if d.type == SECRET_KEY]
    if not docs:
        raise IprivError("PUB_KEY_NOT_FOUND: no secret key (NM) in the file")
    doc = docs[0]
    _, payload, _, _ = _parts(doc)
    cur = _Cursor(payload)
    fields = _read_key_fields(cur)
    if cur.byte() != CIPHER_IDEA:
        raise IprivError("UNKNOWN_ALG: the secret key is not IDEA-encrypted")
    cfb = _IdeaCfb(_idea_key(passphrase))
    cfb.decrypt(cur.take(8))
    checksum = 0
    values: list[int] = []
    for _ in range(4):
        header, enc = cur.mpi()
        cfb.sync()
        plain = cfb.decrypt(enc)
        checksum = (checksum + sum(header) + sum(plain)) & 0xFFFF
        values.append(int.from_bytes(plain, "big"))
    if cur.number(2) != checksum:
        raise IprivError("INVALID_PASSWD: the passphrase does not open the key")
    d, p, q, _u = values
    try:
        private = rsa.RSAPrivateNumbers(
            p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(fields.e, fields.n)
        ).private_key()
    except ValueError as e:
        raise IprivError(f"INVALID_KEY: {e}") from None
    if private.key_size < MIN_KEY_BITS:
        raise IprivError(f"INVALID_KEYLEN: {private.key_size} bits; at least {MIN_KEY_BITS}")
    return IprivSecretKey(doc.subject.name, fields.serial, private)


# -- writing key files (for the emulators, tests and `paymux emulator cyberplat-keys --ipriv`) -----


def _cert_block(ca: rsa.RSAPrivateKey, ca_serial: int, payload: bytes, user_id: bytes, at: int) -> bytes:
    prefix = bytes([0x99]) + len(payload).to_bytes(2, "big")
    return armour(_signature_packets(ca, ca_serial, prefix + payload + user_id, SIG_KEY, at))


def secret_key_file(
    key: rsa.RSAPrivateKey, name: str, serial: int, passphrase: str, at: int | None = None
) -> bytes:
    """A secret key file (one NM document) as the library writes it, encrypted with ``passphrase``."""
    when = int(time.time()) if at is None else at
    nums = key.private_numbers()
    fields = _KeyFields(serial, when, 0, nums.public_numbers.n, nums.public_numbers.e)
    public_payload = _key_payload(fields)
    p, q = sorted((nums.p, nums.q))
    cfb = _IdeaCfb(_idea_key(passphrase))
    secret = bytes([CIPHER_IDEA]) + cfb.encrypt(secrets.token_bytes(8))
    checksum = 0
    for value in (nums.d, p, q, pow(p, -1, q)):
        header, plain = _mpi(value)
        cfb.sync()
        secret += header + cfb.encrypt(plain)
        checksum = (checksum + sum(header) + sum(plain)) & 0xFFFF
    secret += checksum.to_bytes(2, "big")
    user_id = name.encode("ascii")
    body = armour(write_packet(PKT_SECRET_KEY, public_payload + secret) + write_packet(PKT_USER_ID, user_id))
    subject = KeyId(name, serial)
    cert = _cert_block(key, serial, public_payload, user_id, when)
    return write_documents([Document(SECRET_KEY, subject, subject, body, cert, 0)])


def public_key_document(
    key: rsa.RSAPublicKey, name: str, serial: int, ca: IprivSecretKey, at: int | None = None
) -> Document:
    """An NS document for ``key``, certified by ``ca`` (the key itself for a self-certified one)."""
    when = int(time.time()) if at is None else at
    nums = key.public_numbers()
    payload = _key_payload(_KeyFields(serial, when, 0, nums.n, nums.e))
    user_id = name.encode("ascii")
    body = armour(write_packet(PKT_PUBLIC_KEY, payload) + write_packet(PKT_USER_ID, user_id))
    cert = _cert_block(ca.key, ca.serial, payload, user_id, when)
    return Document(PUBLIC_KEY, KeyId(name, serial), KeyId(ca.name, ca.serial), body, cert, 0)


def public_key_file(docs: list[Document]) -> bytes:
    return write_documents(docs)
