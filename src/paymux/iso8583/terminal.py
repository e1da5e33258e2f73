"""A terminal emulator: an ATM or POS terminal speaking ISO 8583 (1987) to the hub over TCP.

Used by the tests, the demo and ``paymux emulator terminal``::

    async with TerminalEmulator("127.0.0.1", 8583, "ATM00001", "MERCHANT000001") as t:
        await t.sign_on()                                   # 0800 → 0810
        answer = await t.pay("9001234567", 10000, service="topup")  # 0200 → 0210
        answer["39"]                                        # "00": approved
        await t.reverse(answer)                             # 0400 → 0410
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from types import TracebackType

from paymux.iso8583.framing import (
    Bitmap,
    FrameError,
    LengthHeader,
    Message,
    decode,
    encode,
    frame,
    read_frame,
)


class TerminalEmulator:
    """One connection of one terminal; one message at a time, each waiting for its answer."""

    def __init__(
        self,
        host: str,
        port: int,
        terminal_id: str,
        merchant_id: str = "",
        *,
        length_header: LengthHeader = "binary2",
        bitmap: Bitmap = "binary",
        account_field: int = 103,
        service_field: int | None = 48,
        currency: str = "643",
        timeout: float = 15,
        first_stan: int = 1,
    ) -> None:
        self.host, self.port = host, port
        self.terminal_id = terminal_id.ljust(8)[:8]
        self.merchant_id = merchant_id.ljust(15)[:15] if merchant_id else ""
        self.length_header: LengthHeader = length_header
        self.bitmap: Bitmap = bitmap
        self.account_field = account_field
        self.service_field = service_field
        self.currency = currency
        self.timeout = timeout
        self._stans = itertools.count(first_stan)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> TerminalEmulator:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self._writer = self._reader = None

    def next_stan(self) -> str:
        return f"{next(self._stans) % 1_000_000:06d}"

    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    # -- the wire -------------------------------------------------------------------------------

    async def send_payload(self, payload: bytes) -> Message | None:
        """Send one message's bytes (framed); the decoded answer, or None when the hub closed the
        connection instead of answering."""
        return await self.send_frame(frame(payload, self.length_header))

    async def send_frame(self, data: bytes) -> Message | None:
        """Send raw bytes (header included); the next answer, or None if the connection closed."""
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        self._writer.write(data)
        await self._writer.drain()
        try:
            payload = await asyncio.wait_for(
                read_frame(self._reader, self.length_header, 65535), self.timeout
            )
        except (asyncio.IncompleteReadError, ConnectionError, FrameError):
            return None
        if payload is None:
            return None
        return decode(payload, self.bitmap)

    async def exchange(self, doc: Message) -> Message:
        """Send a message; its answer (raises ConnectionError when the hub closed instead)."""
        answer = await self.send_payload(encode(doc, self.bitmap))
        if answer is None:
            raise ConnectionError("the hub closed the connection without answering")
        return answer

    # -- the messages ---------------------------------------------------------------------------

    def _base(self, mti: str, stan: str | None = None, at: dt.datetime | None = None) -> Message:
        at = at or self.now()
        doc: Message = {
            "t": mti,
            "7": at.strftime("%m%d%H%M%S"),
            "11": stan or self.next_stan(),
            "41": self.terminal_id,
        }
        if self.merchant_id:
            doc["42"] = self.merchant_id
        return doc

    async def network(self, code: str = "301") -> Message:
        """0800 network management: 001 sign-on, 002 sign-off, 301 echo test."""
        doc = self._base("0800")
        doc["70"] = code
        return await self.exchange(doc)

    async def sign_on(self) -> Message:
        return await self.network("001")

    async def echo(self) -> Message:
        return await self.network("301")

    def payment(
        self,
        account: str,
        amount: int,
        *,
        service: str | None = None,
        mti: str = "0200",
        stan: str | None = None,
        at: dt.datetime | None = None,
        processing_code: str = "500000",
        currency: str | None = None,
    ) -> Message:
        """A 0200 (financial request: a bill payment) of ``amount`` minor units, not sent."""
        at = at or self.now()
        doc = self._base(mti, stan, at)
        doc.update(
            {
                "3": processing_code,
                "4": f"{amount:012d}",
                "12": at.strftime("%H%M%S"),
                "13": at.strftime("%m%d"),
                "49": currency or self.currency,
                str(self.account_field): account,
            }
        )
        if service is not None and self.service_field is not None:
            doc[str(self.service_field)] = service
        return doc

    async def pay(self, account: str, amount: int, **options: str | dt.datetime | None) -> Message:
        """0200 → 0210. ``options``: service, stan, at, processing_code, currency."""
        return await self.exchange(self.payment(account, amount, **options))  # type: ignore[arg-type]

    async def authorize(self, account: str, amount: int, *, service: str | None = None) -> Message:
        """0100 → 0110: the hub checks the account; nothing is paid."""
        return await self.exchange(self.payment(account, amount, service=service, mti="0100"))

    async def reverse(self, original: Message, *, advice: bool = False) -> Message:
        """0400 (or 0420, an advice) reversing ``original`` (a request sent, or its answer)."""
        doc = self._base("0420" if advice else "0400")
        for key in ("3", "4", "12", "13", "49", str(self.account_field)):
            if key in original:
                doc[key] = original[key]
        orig_mti = "0200" if original["t"] in ("0200", "0210") else original["t"]
        doc["90"] = f"{orig_mti}{original['11']}{original['7']}".ljust(42, "0")
        return await self.exchange(doc)
