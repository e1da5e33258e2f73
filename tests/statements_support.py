"""Bank statement files built for the invoice collection tests (no tests here): camt.053, camt.054 and
MT940, with credit (and debit) entries as a bank would send them."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

OUR_IBAN = "MD24AG000225100013104168"


@dataclass
class Entry:
    amount: str  # "120.50"
    bank_ref: str
    payer: str = ""
    rf: str = ""  # structured creditor reference (RmtInf/Strd/CdtrRefInf/Ref)
    text: str = ""  # unstructured remittance (Ustrd, MT940 :86:)
    currency: str = "EUR"
    credit: bool = True
    booked: dt.date = dt.date(2030, 1, 10)


def _ntry(e: Entry) -> str:
    strd = (
        "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO</Issr></Tp>"
        f"<Ref>{escape(e.rf)}</Ref></CdtrRefInf></Strd>"
        if e.rf
        else ""
    )
    ustrd = f"<Ustrd>{escape(e.text)}</Ustrd>" if e.text else ""
    party = "Dbtr" if e.credit else "Cdtr"
    return f"""
      <Ntry>
        <NtryRef>{escape(e.bank_ref)}</NtryRef>
        <Amt Ccy="{e.currency}">{e.amount}</Amt>
        <CdtDbtInd>{"CRDT" if e.credit else "DBIT"}</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>{e.booked.isoformat()}</Dt></BookgDt>
        <ValDt><Dt>{e.booked.isoformat()}</Dt></ValDt>
        <AcctSvcrRef>{escape(e.bank_ref)}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
          <RltdPties><{party}><Pty><Nm>{escape(e.payer)}</Nm></Pty></{party}>
            <{party}Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></{party}Acct></RltdPties>
          <RmtInf>{ustrd}{strd}</RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>"""


def camt(entries: list[Entry], kind: str = "053", msg: str = "MSG1", account: str = OUR_IBAN) -> bytes:
    """A camt.053.001.08 statement or a camt.054.001.08 notification of ``entries``."""
    body, part = ("BkToCstmrStmt", "Stmt") if kind == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    ntries = "".join(_ntry(e) for e in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.08">
  <{body}>
    <GrpHdr><MsgId>{msg}</MsgId><CreDtTm>2030-01-10T18:00:00+02:00</CreDtTm></GrpHdr>
    <{part}>
      <Id>{msg}-1</Id>
      <CreDtTm>2030-01-10T18:00:00+02:00</CreDtTm>
      <Acct><Id><IBAN>{account}</IBAN></Id><Ccy>EUR</Ccy></Acct>{ntries}
    </{part}>
  </{body}>
</Document>
""".encode()


def _mt_amount(amount: str) -> str:
    return amount.replace(".", ",")


def mt940(entries: list[Entry], number: str = "00001/001", account: str = OUR_IBAN) -> bytes:
    """An MT940 statement (with its SWIFT headers) of ``entries`` in EUR."""
    lines = [
        "{1:F01AGRNMD2XAXXX0000000000}{2:I940AGRNMD2XXXXXN}{4:",
        ":20:STMT" + number.replace("/", ""),
        f":25:{account}",
        f":28C:{number}",
        ":60F:C300109EUR1000,00",
    ]
    for e in entries:
        d = e.booked
        lines.append(
            f":61:{d:%y%m%d}{d:%m%d}{'C' if e.credit else 'D'}{_mt_amount(e.amount)}NTRFNONREF//{e.bank_ref}"
        )
        info = ""
        if e.payer:
            info += f"/NAME/{e.payer}"
        if e.rf or e.text:
            info += f"/REMI/{e.rf or e.text}"
        if info:
            # :86: lines are at most 65 characters: a long text goes on in continuation lines
            lines.append(":86:" + info[:61])
            rest = info[61:]
            while rest:
                lines.append(rest[:65])
                rest = rest[65:]
    lines += [":62F:C300110EUR1000,00", "-}"]
    return ("\r\n".join(lines) + "\r\n").encode()


async def cli(monkeypatch: Any, db_url: str, *args: str, env: dict[str, str | None] | None = None) -> Any:
    """``paymux ARGS`` in this process (a thread: the command runs its own event loop) on ``db_url``;
    ``env`` sets (or, with None, removes) environment variables for it. Returns the click result."""
    from typer.testing import CliRunner

    from paymux.cli import app
    from paymux.settings import get_settings

    monkeypatch.setenv("PAYMUX_DATABASE_URL", db_url)
    for k, v in (env or {}).items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        return await asyncio.to_thread(CliRunner().invoke, app, list(args))
    finally:
        get_settings.cache_clear()
