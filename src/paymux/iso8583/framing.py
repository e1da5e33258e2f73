"""Frames on the wire: a length header, then one ISO 8583 message (pyiso8583 encodes and decodes it).

Two length headers are common on TCP links to ATMs and POS terminals: two bytes, binary, big-endian
(``binary2``), or four ASCII digits (``ascii4``); both count the message's bytes, not the header's.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Literal

import iso8583
from iso8583 import specs

LengthHeader = Literal["binary2", "ascii4"]
Bitmap = Literal["binary", "ascii"]

Message = dict[str, str]


class FrameError(Exception):
    """The stream cannot be read as frames any more (bad header, too large): the connection closes."""


def _spec(bitmap: Bitmap) -> dict[str, Any]:
    spec = copy.deepcopy(specs.default if bitmap == "binary" else specs.default_ascii)
    return spec


SPECS: dict[Bitmap, dict[str, Any]] = {"binary": _spec("binary"), "ascii": _spec("ascii")}


def header_size(header: LengthHeader) -> int:
    return 2 if header == "binary2" else 4


def frame(payload: bytes, header: LengthHeader) -> bytes:
    """``payload`` with its length header."""
    n = len(payload)
    if header == "binary2":
        if n > 0xFFFF:
            raise FrameError(f"a message of {n} bytes does not fit a 2-byte length header")
        return n.to_bytes(2, "big") + payload
    if n > 9999:
        raise FrameError(f"a message of {n} bytes does not fit a 4-digit length header")
    return f"{n:04d}".encode("ascii") + payload


def parse_header(raw: bytes, header: LengthHeader) -> int:
    if header == "binary2":
        return int.from_bytes(raw, "big")
    if not (raw.isdigit() and raw.isascii()):
        raise FrameError(f"length header {raw!r} is not 4 ASCII digits")
    return int(raw)


async def read_frame(reader: asyncio.StreamReader, header: LengthHeader, max_size: int) -> bytes | None:
    """The next message, or None at the end of the stream (before a header). Raises
    :class:`FrameError` for a header that cannot be read or announces more than ``max_size``
    bytes, and ``asyncio.IncompleteReadError`` when the stream ends inside a frame."""
    size = header_size(header)
    try:
        raw = await reader.readexactly(size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    n = parse_header(raw, header)
    if n > max_size:
        raise FrameError(f"a frame of {n} bytes is larger than the limit of {max_size}")
    return await reader.readexactly(n)


def encode(doc: Message, bitmap: Bitmap) -> bytes:
    """The message's bytes (``doc``: ``"t"`` the MTI, ``"2"``..``"128"`` the data elements)."""
    raw, _ = iso8583.encode(dict(doc), SPECS[bitmap])
    return bytes(raw)


def decode(payload: bytes, bitmap: Bitmap) -> Message:
    """The message's fields; raises ``iso8583.DecodeError`` (a ValueError) for a malformed one."""
    doc, _ = iso8583.decode(payload, SPECS[bitmap])
    doc.pop("p", None)
    doc.pop("1", None)
    doc.pop("h", None)
    return doc


def response_mti(mti: str) -> str | None:
    """The answer's message type of a request (0200 → 0210, 0421 → 0430), None for a message that is
    no request (an answer, an advice answer, an unknown class)."""
    if len(mti) != 4 or not (mti.isdigit() and mti.isascii()):
        return None
    function = int(mti[2])
    if function not in (0, 2):  # 0: request, 2: advice (1987); 1 and 3 are their answers
        return None
    return f"{mti[:2]}{function + 1}0"
