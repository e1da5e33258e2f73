"""dBase (.dbf) registers, read record by record (fixed-width records after the field descriptors).

Header: version, date, record count (uint32 at 4), header length (uint16 at 8), record length (uint16
at 10), language driver (byte 29); then 32-byte field descriptors (name, type, width, decimals) up to
0x0D. Each record starts with a deletion flag ('*' = deleted, skipped). Types C, N, F, D, L, I are read;
others (memo fields) are returned as raw text. The code page comes from the mapping or the language
driver (0x65 cp866, 0xC9 cp1251, 0x57/0x03 cp1252, 0x26 cp866), cp866 when unknown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from paymux.reconciliation.mapping import MappingConfig
from paymux.reconciliation.readers import FileFormatError, Row, Table, shape

LANGUAGE_DRIVERS = {
    0x65: "cp866",
    0x26: "cp866",
    0xC9: "cp1251",
    0x57: "cp1252",
    0x03: "cp1252",
    0x01: "cp437",
}
RECORDS_PER_READ = 512


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    offset: int
    width: int
    decimals: int


def _fields(f: BinaryIO, header_len: int) -> list[Field]:
    out: list[Field] = []
    offset = 1  # after the deletion flag
    while f.tell() < header_len - 1:
        desc = f.read(32)
        if not desc or desc[0] == 0x0D:
            break
        if len(desc) < 32:
            raise FileFormatError("the DBF header is cut short")
        name = desc[:11].split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
        ftype = chr(desc[11])
        width, decimals = desc[16], desc[17]
        out.append(Field(name, ftype, offset, width, decimals))
        offset += width
    return out


def _value(raw: bytes, fld: Field, encoding: str, record_no: int) -> Any:
    t = fld.type
    if t == "C":
        return raw.decode(encoding, errors="replace").rstrip(" \x00")
    text = raw.decode("ascii", errors="replace").strip(" \x00")
    if t in ("N", "F"):
        if not text or set(text) <= {"*", "?"}:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise FileFormatError(
                f"record {record_no}: field {fld.name} holds {text!r}, not a number"
            ) from None
        return int(value) if fld.decimals == 0 and value == value.to_integral_value() else value
    if t == "D":
        if not text or text.strip("0") == "":
            return None
        try:
            return dt.datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            raise FileFormatError(
                f"record {record_no}: field {fld.name} holds {text!r}, not a date"
            ) from None
    if t == "L":
        return {"T": True, "Y": True, "F": False, "N": False}.get(text.upper()[:1])
    if t == "I":
        return int.from_bytes(raw, "little", signed=True)
    return raw.decode(encoding, errors="replace").strip()


@contextlib.contextmanager
def read_dbf(path: Path, cfg: MappingConfig) -> Iterator[Table]:
    with path.open("rb") as f:
        head = f.read(32)
        if len(head) < 32 or (
            head[0] & 0x07 not in (0x03, 0x04, 0x05) and head[0] not in (0x30, 0x31, 0x83, 0x8B)
        ):
            raise FileFormatError("the file is not a dBase (DBF) table")
        count, header_len, record_len = struct.unpack("<IHH", head[4:12])
        if header_len < 33 or record_len < 1:
            raise FileFormatError("the DBF header is damaged (header or record length)")
        encoding = cfg.dbf.encoding or LANGUAGE_DRIVERS.get(head[29], "cp866")
        fields = _fields(f, header_len)
        if not fields:
            raise FileFormatError("the DBF table has no fields")
        if 1 + sum(x.width for x in fields) > record_len:
            raise FileFormatError("the DBF header is damaged (fields wider than the record)")
        f.seek(header_len)

        def rows() -> Iterator[Row]:
            record_no = 0
            while record_no < count:
                want = min(RECORDS_PER_READ, count - record_no)
                block = f.read(record_len * want)
                got = len(block) // record_len
                if got == 0:
                    if block[:1] in (b"", b"\x1a"):
                        raise FileFormatError(f"the DBF file ends after {record_no} of {count} records")
                    raise FileFormatError(f"record {record_no + 1}: cut short")
                for i in range(got):
                    record_no += 1
                    rec = block[i * record_len : (i + 1) * record_len]
                    if rec[:1] == b"*":
                        continue  # deleted
                    yield (
                        record_no,
                        [_value(rec[x.offset : x.offset + x.width], x, encoding, record_no) for x in fields],
                    )
                if got < want:
                    raise FileFormatError(f"the DBF file ends after {record_no} of {count} records")

        table = shape(rows(), cfg.model_copy(update={"skip_rows": 0}), has_header=False)
        table.header = [x.name for x in fields]
        yield table
