"""The ISO 8583 (1987) listener: ATMs and POS terminals pay bills through the hub over TCP.

Each connection carries frames (a length header, then one message: ``framing.py``), answered in
order. The messages:

- 0800 network management (sign-on 001, sign-off 002, echo test 301) → 0810, field 39 ``00``;
- 0100 authorization request: the account is checked at the routed provider, nothing is paid → 0110;
- 0200 financial request: a bill payment → 0210. It goes through the hub's payment service
  (:func:`paymux.payments.service.accept`), exactly as the JSON channel API's ``POST
  /api/v1/payments``: validation, pricing, limits, routing, the ledger and delivery by the workers;
- 0400 reversal request and 0420 reversal advice (and their repeats 0401/0421) → 0410/0430: the
  original payment is cancelled while no provider has it yet (as the channel API's cancel).

A terminal (field 41, and field 42 when its entry names a merchant) pays through the channel its
entry names (``config.py``). A payment's idempotency key, its ``external_id`` in the channel, is
``iso8583:{terminal}:{local date}:{STAN}``: a repeated 0200 answers the payment already made.

Nothing a terminal sends can stop the listener: a message that cannot be decoded is answered with
``30`` (format error) when its message type can be read, the connection is closed when the frame
itself cannot be read (bad or oversized length header, the stream cut), and an unexpected failure
is answered ``96``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select

from paymux.catalog.snapshot import ChannelView, Snapshot
from paymux.errors import Problem
from paymux.gateways.base import InboundRequest
from paymux.gateways.machinery import difference
from paymux.iso8583 import codes
from paymux.iso8583.config import Iso8583Config, Terminal
from paymux.iso8583.framing import (
    Bitmap,
    FrameError,
    LengthHeader,
    Message,
    decode,
    encode,
    frame,
    read_frame,
    response_mti,
)
from paymux.money import MoneyError, format_amount
from paymux.payments import service as payments
from paymux.payments.checks import check_account
from paymux.payments.models import Payment
from paymux.payments.schemas import CheckIn, PaymentIn
from paymux.runtime import Hub

log = logging.getLogger("paymux.iso8583")

_DIGITS = {n: re.compile(rf"[0-9]{{{n}}}") for n in (2, 3, 4, 6, 10, 12)}
# data elements an answer repeats from its request (never a card number, track or PIN block)
_ECHOED = ("3", "4", "7", "11", "12", "13", "15", "32", "37", "41", "42", "49", "70", "90")


def _digits(value: str | None, n: int) -> bool:
    return value is not None and _DIGITS[n].fullmatch(value) is not None


class Declined(Exception):
    """A request answered with a response code other than 00."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class Answer:
    code: str
    reason: str = ""
    payment: Payment | payments.PaymentRecord | None = None


def local_date(mmdd: str, today: dt.date) -> dt.date:
    """The date of a terminal's MMDD (field 13, or the start of field 7): this year's, or last
    year's when this year's is more than a day ahead (a message sent before the new year)."""
    month, day = int(mmdd[:2]), int(mmdd[2:])
    for year in (today.year, today.year - 1):
        try:
            d = dt.date(year, month, day)
        except ValueError:
            continue
        if d <= today + dt.timedelta(days=1):
            return d
    raise Declined(codes.FORMAT_ERROR, f"{mmdd} is not a date (MMDD)")


def payment_key(terminal_id: str, date: dt.date, stan: str) -> str:
    """The payment's ``external_id`` in its channel: terminal, local date and STAN."""
    return f"iso8583:{terminal_id.rstrip()}:{date:%Y%m%d}:{stan}"


class Iso8583Handler:
    """Answers messages: the protocol without the transport (used by the server and tests)."""

    def __init__(self, hub: Hub, config: Iso8583Config) -> None:
        self.hub = hub
        self.config = config

    # -- the parts every request shares ---------------------------------------------------------

    def _today(self) -> dt.date:
        return dt.datetime.now(self.hub.settings.business_tz).date()

    def _dates(self, doc: Message) -> list[dt.date]:
        """The local dates the message gives: field 13, else the date of field 7."""
        today = self._today()
        if "13" in doc:
            if not _digits(doc["13"], 4):
                raise Declined(codes.FORMAT_ERROR, "field 13 is not MMDD")
            return [local_date(doc["13"], today)]
        if "7" in doc:
            if not _digits(doc["7"], 10):
                raise Declined(codes.FORMAT_ERROR, "field 7 is not MMDDhhmmss")
            return [local_date(doc["7"][:4], today)]
        raise Declined(codes.FORMAT_ERROR, "neither field 13 nor field 7 gives the local date")

    async def _terminal(self, doc: Message) -> tuple[Terminal, ChannelView, Snapshot]:
        tid = doc.get("41")
        if tid is None or not tid.strip():
            raise Declined(codes.FORMAT_ERROR, "field 41 (terminal id) is missing")
        term = self.config.terminal(tid)
        if term is None:
            raise Declined(codes.NOT_PERMITTED_TO_TERMINAL, f"unknown terminal {tid.rstrip()!r}")
        if term.merchant is not None and (doc.get("42") or "").rstrip() != term.merchant:
            raise Declined(codes.INVALID_MERCHANT, f"terminal {term.terminal} is not of this merchant")
        snap = await self.hub.catalog.get()
        channel = snap.channels_by_code.get(term.channel)
        if channel is None or not channel.enabled:
            raise Declined(
                codes.NOT_PERMITTED_TO_TERMINAL, f"channel {term.channel} of the terminal is not open"
            )
        return term, channel, snap

    def _stan(self, doc: Message) -> str:
        if not _digits(doc.get("11"), 6):
            raise Declined(codes.FORMAT_ERROR, "field 11 (STAN) is not 6 digits")
        return doc["11"]

    def _payment_fields(
        self, doc: Message, term: Terminal, snap: Snapshot
    ) -> tuple[str, str, str, int, dict[str, str]]:
        """service code, account, currency, amount (minor units) and extra fields of a request."""
        fm = self.config.fields
        code = doc.get("3")
        if not _digits(code, 6):
            raise Declined(codes.FORMAT_ERROR, "field 3 (processing code) is not 6 digits")
        assert code is not None
        if not any(code.startswith(p) for p in self.config.processing_codes):
            raise Declined(codes.INVALID_TRANSACTION, f"processing code {code} is not a bill payment here")
        raw_service = doc.get(str(fm.service), "").strip() if fm.service is not None else ""
        service_code = (
            self.config.service_codes.get(raw_service, raw_service)
            if raw_service
            else (term.service or self.config.default_service or "")
        )
        service = snap.services.get(service_code) if service_code else None
        if service is None:
            what = f"service {service_code!r}" if service_code else "no service"
            raise Declined(codes.INVALID_TRANSACTION, f"{what} is not a service of the hub")
        account = doc.get(str(fm.account), "").strip()
        if not account:
            raise Declined(codes.INVALID_ACCOUNT, f"field {fm.account} (account) is missing")
        if not _digits(doc.get("4"), 12):
            raise Declined(codes.FORMAT_ERROR, "field 4 (amount) is not 12 digits")
        amount = int(doc["4"])
        if amount == 0:
            raise Declined(codes.INVALID_AMOUNT, "the amount is zero")
        currency = service.currency
        if "49" in doc:
            if not _digits(doc["49"], 3):
                raise Declined(codes.FORMAT_ERROR, "field 49 (currency) is not 3 digits")
            given = codes.NUMERIC.get(doc["49"])
            if given != currency:
                raise Declined(
                    codes.INVALID_AMOUNT,
                    f"service {service.code} is paid in {currency}, not in currency {doc['49']}",
                )
        extra: dict[str, str] = {}
        for name, number in fm.extra.items():
            value = doc.get(str(number), "").strip()
            if value:
                extra[name] = value
        return service.code, account, currency, amount, extra

    # -- the messages --------------------------------------------------------------------------

    async def answer(self, doc: Message) -> Message | None:
        """The answer to one decoded message (None: a message that gets none, such as an answer)."""
        mti = doc.get("t", "")
        rmti = response_mti(mti)
        if rmti is None:
            return None
        try:
            if mti in ("0800", "0801"):
                result = await self._network(doc)
            elif mti in ("0200", "0201"):
                result = await self._financial(doc)
            elif mti in ("0100", "0101"):
                result = await self._authorization(doc)
            elif mti in ("0400", "0401", "0420", "0421"):
                result = await self._reversal(doc)
            else:
                result = Answer(codes.INVALID_TRANSACTION, f"message type {mti} is not served")
        except Declined as d:
            result = Answer(d.code, d.reason)
        except Exception:
            log.exception("ISO 8583 %s from terminal %s failed", mti, doc.get("41", "-"))
            result = Answer(codes.SYSTEM_MALFUNCTION, "internal error")
        out = self.respond(doc, rmti, result)
        log.info(
            "ISO 8583 %s stan=%s terminal=%s -> %s %s%s",
            mti,
            doc.get("11", "-"),
            doc.get("41", "-"),
            rmti,
            result.code,
            f" ({result.reason})" if result.reason and result.code != codes.APPROVED else "",
        )
        return out

    def respond(self, doc: Message, rmti: str, result: Answer) -> Message:
        out: Message = {"t": rmti}
        mapped = {str(self.config.fields.account)}
        if self.config.fields.service is not None:
            mapped.add(str(self.config.fields.service))
        for key in (*_ECHOED, *sorted(mapped)):
            if key in doc:
                out[key] = doc[key]
        out["39"] = result.code
        if result.payment is not None:
            pid = result.payment.id
            out["37"] = f"{pid:012d}"[-12:]  # retrieval reference number: the hub's payment id
            if result.code == codes.APPROVED:
                out["38"] = f"{pid % 1_000_000:06d}"  # authorization id response
        return out

    async def _network(self, doc: Message) -> Answer:
        if "41" in doc:  # a terminal signing on: it must be known
            await self._terminal(doc)
        code = doc.get("70")
        if code is not None and not _digits(code, 3):
            raise Declined(codes.FORMAT_ERROR, "field 70 is not 3 digits")
        return Answer(codes.APPROVED)

    async def _authorization(self, doc: Message) -> Answer:
        """An account check at the routed provider: nothing is registered or paid."""
        term, channel, snap = await self._terminal(doc)
        self._stan(doc)
        service, account, currency, amount, extra = self._payment_fields(doc, term, snap)
        try:
            body = CheckIn(
                service=service,
                account=account,
                amount=format_amount(amount, currency),
                currency=currency,
                fields=extra,
            )
            out = await check_account(self.hub, channel, body)
        except ValidationError:
            raise Declined(codes.FORMAT_ERROR, "a field holds characters the hub does not take") from None
        except Problem as p:
            raise Declined(_code_of(p), p.detail or p.title) from None
        if out.result != "ok":
            return Answer(codes.DO_NOT_HONOUR, out.message or "the provider refused the account")
        return Answer(codes.APPROVED)

    async def _financial(self, doc: Message) -> Answer:
        """A bill payment: accepted by the hub's payment service, idempotent by its key."""
        term, channel, snap = await self._terminal(doc)
        stan = self._stan(doc)
        (date,) = self._dates(doc)
        key = payment_key(term.terminal, date, stan)
        service, account, currency, amount, extra = self._payment_fields(doc, term, snap)
        try:
            body = PaymentIn(
                external_id=key,
                service=service,
                account=account,
                amount=format_amount(amount, currency),
                currency=currency,
                fields=extra,
            )
        except (ValidationError, MoneyError):
            raise Declined(codes.FORMAT_ERROR, "a field holds characters the hub does not take") from None
        try:
            payment, _created = await payments.accept(self.hub, channel, body)
        except Problem as p:
            # refused now: a repeat of a payment made earlier (before a catalog change) keeps its
            # outcome, a STAN reused for another payment is a duplicate
            earlier = await self._find(channel.id, [key])
            if earlier is None:
                raise Declined(_code_of(p), p.detail or p.title) from None
            req = InboundRequest(
                "pay", key, account=account, amount=body.amount, service=service, fields=extra
            )
            if difference(earlier, snap, req, body.amount) is not None:
                raise Declined(codes.DUPLICATE, f"STAN {stan} was used for another payment") from None
            payment = earlier
        return Answer(codes.APPROVED, payment=payment)

    async def _reversal(self, doc: Message) -> Answer:
        """Cancels the original 0200's payment while no provider has it (a failed or cancelled one
        has nothing to back out: approved); one sent to a provider cannot be: 21, no action taken."""
        term, channel, _snap = await self._terminal(doc)
        stan = self._stan(doc)
        original = doc.get("90")
        dates: list[dt.date] = []
        if original is not None:
            # original data elements: MTI (4), STAN (6), transmission date and time (10), ...
            if not (_digits(original[:4], 4) and _digits(original[4:10], 6) and _digits(original[10:20], 10)):
                raise Declined(codes.FORMAT_ERROR, "field 90 (original data elements) is malformed")
            stan = original[4:10]
            dates.append(local_date(original[10:14], self._today()))
        with contextlib.suppress(Declined):
            dates[:0] = self._dates(doc)
        if not dates:
            raise Declined(codes.FORMAT_ERROR, "the reversal gives no date of the original")
        keys = list(dict.fromkeys(payment_key(term.terminal, d, stan) for d in dates))
        payment = await self._find(channel.id, keys)
        if payment is None:
            raise Declined(codes.ORIGINAL_NOT_FOUND, f"no payment of STAN {stan} from this terminal")
        if "4" in doc:
            if not _digits(doc["4"], 12):
                raise Declined(codes.FORMAT_ERROR, "field 4 (amount) is not 12 digits")
            if int(doc["4"]) != payment.amount:
                raise Declined(codes.INVALID_AMOUNT, "a partial reversal is not supported")
        if payment.status in ("cancelled", "failed"):
            return Answer(codes.APPROVED, payment=payment)
        if not payments.cancellable(payment):
            return Answer(
                codes.NO_ACTION_TAKEN,
                f"payment {payment.id} is {payment.status}: sent to a provider, it cannot be reversed",
                payment,
            )
        async with self.hub.sessions() as session:
            try:
                done = await payments.cancel(self.hub, session, channel.id, payment.id)
            except Problem as p:
                if p.slug == "cannot-cancel":
                    return Answer(codes.NO_ACTION_TAKEN, p.detail or p.title, payment)
                raise
            await session.commit()
        return Answer(codes.APPROVED, payment=done)

    async def _find(self, channel_id: int, keys: list[str]) -> Payment | None:
        async with self.hub.read_sessions() as session:
            rows = (
                await session.scalars(
                    select(Payment).where(Payment.channel_id == channel_id, Payment.external_id.in_(keys))
                )
            ).all()
        by_key = {p.external_id: p for p in rows}
        return next((by_key[k] for k in keys if k in by_key), None)


def _code_of(p: Problem) -> str:
    code = codes.BY_SLUG.get(p.slug)
    if code is not None:
        return code
    return codes.ISSUER_UNAVAILABLE if p.status >= 500 else codes.DO_NOT_HONOUR


# -- the TCP server -------------------------------------------------------------------------------


def format_error(payload: bytes, bitmap: Bitmap, exc: Exception) -> Message | None:
    """The answer to a message that cannot be decoded: 30 (format error) under its answer's type, the
    STAN and terminal repeated when they could be read; None when not even the type can be read."""
    head = payload[:4].decode("ascii", "replace")
    rmti = response_mti(head)
    if rmti is None:
        return None
    out: Message = {"t": rmti}
    partial = getattr(exc, "doc_dec", None) or {}
    if _digits(partial.get("11"), 6):
        out["11"] = partial["11"]
    tid = partial.get("41")
    if isinstance(tid, str) and len(tid) == 8 and tid.isascii() and tid.isprintable():
        out["41"] = tid
    out["39"] = codes.FORMAT_ERROR
    return out


class Iso8583Server:
    """The asyncio TCP server: frames in, one answer per request, in order, per connection."""

    def __init__(
        self,
        hub: Hub,
        config: Iso8583Config,
        *,
        length_header: LengthHeader | None = None,
        bitmap: Bitmap | None = None,
        max_frame: int | None = None,
        idle_timeout: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        s = hub.settings
        self.handler = Iso8583Handler(hub, config)
        self.length_header: LengthHeader = length_header or s.iso8583_length_header
        self.bitmap: Bitmap = bitmap or s.iso8583_bitmap
        self.max_frame = max_frame or s.iso8583_max_frame
        self.idle_timeout = idle_timeout or s.iso8583_idle_timeout_seconds
        self.max_connections = max_connections or s.iso8583_max_connections
        self.connections = 0
        self.address: tuple[str, int] = ("", 0)  # where it listens, once started
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], sock[1])
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            if self.connections > self.max_connections:
                log.warning("ISO 8583: too many connections, refusing one")
                return
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except FrameError as e:
            log.warning("ISO 8583: closing a connection: %s", e)
        except asyncio.CancelledError:
            pass
        except Exception:  # never the listener's end
            log.exception("ISO 8583: connection failed")
        finally:
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            async with asyncio.timeout(self.idle_timeout):
                payload = await read_frame(reader, self.length_header, self.max_frame)
            if payload is None:
                return
            if not payload:  # an empty frame: a keep-alive
                continue
            try:
                doc = decode(payload, self.bitmap)
            except ValueError as e:  # iso8583.DecodeError and bad text
                answer = format_error(payload, self.bitmap, e)
                if answer is None:
                    log.warning("ISO 8583: closing a connection after an unreadable message: %s", e)
                    return
            else:
                answer = await self.handler.answer(doc)
            if answer is None:
                continue
            writer.write(frame(encode(answer, self.bitmap), self.length_header))
            await writer.drain()


@contextlib.asynccontextmanager
async def running_iso8583(
    hub: Hub,
    config: Iso8583Config,
    host: str | None = None,
    port: int | None = None,
    *,
    length_header: LengthHeader | None = None,
    bitmap: Bitmap | None = None,
    max_frame: int | None = None,
    idle_timeout: float | None = None,
) -> AsyncIterator[Iso8583Server]:
    """The listener on ``host:port`` (the settings' by default; port 0: any free one) for the block;
    the server's ``address`` is where it listens."""
    server = Iso8583Server(
        hub,
        config,
        length_header=length_header,
        bitmap=bitmap,
        max_frame=max_frame,
        idle_timeout=idle_timeout,
    )
    bound = await server.start(
        host if host is not None else hub.settings.iso8583_host,
        port if port is not None else hub.settings.iso8583_port,
    )
    log.info("ISO 8583 listener on %s:%s", *bound)
    try:
        yield server
    finally:
        await server.close()
