"""A lean HTTP/1.1 load generator for ``paymux bench`` (run it as its own process).

``python -m paymux.bench.load --port 8000 --concurrency 64 --payments 5000 --prefix c64-`` opens
``concurrency`` connections (spread over the given ports), then every connection sends
``POST /api/v1/payments`` requests one after the other until ``payments`` requests have been sent in
all. Each body is a valid payment for the bench catalog (``paymux/bench/catalog.yaml``) with a unique
``external_id`` (``prefix`` + a counter). Channel API keys come from the environment variable
``PAYMUX_BENCH_KEYS`` (comma separated; connection ``j`` uses key ``j // ports % keys``).

The result is one JSON object on stdout: counts, errors (any status other than ``--expect`` or a
transport error) with the first few error bodies, the rate, latency percentiles, the smallest and
largest payment id seen in the answers, the wall clock time of the first request and the CPU this
process used (if it is close to the duration, the generator, not the server, was the limit).

The client is deliberately minimal: pre-built request heads, ``asyncio`` streams (on uvloop when it
is installed), a status line and headers parsed by hand, bodies read by ``Content-Length`` (or
chunked, or until the connection closes). A connection that fails or is closed by the server is
opened again.

Connections are kept alive; with ``--new-connections`` every request goes on a connection of its own
(``Connection: close``), opened inside the request's measured time, as clients that do not keep
connections alive behave.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from paymux import event_loop

MAX_ERROR_SAMPLES = 5
KEYS_ENV = "PAYMUX_BENCH_KEYS"

# (service code, first digit of the account): services of paymux/bench/catalog.yaml, 10-digit accounts
BENCH_SERVICES: tuple[tuple[bytes, bytes], ...] = (
    (b"bench-mobile", b"9"),
    (b"bench-utility", b"1"),
    (b"bench-internet", b"2"),
)


class HttpError(Exception):
    """An answer that is not valid HTTP/1.x."""


@dataclass(slots=True)
class Head:
    status: int
    content_length: int | None
    chunked: bool
    close: bool


def parse_head(head: bytes) -> Head:
    """Parse a status line and headers (up to and including the blank line)."""
    end = head.find(b"\r\n")
    status_line = head if end < 0 else head[:end]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError(f"bad status line {status_line[:80]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise HttpError(f"bad status code in {status_line[:80]!r}") from None
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"  # 1.0 closes unless it says keep-alive
    if end >= 0:
        for line in head[end + 2 :].split(b"\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpError(f"bad header line {line[:80]!r}")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise HttpError(f"bad Content-Length {value[:40]!r}") from None
                if length < 0:
                    raise HttpError(f"bad Content-Length {length}")
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                v = value.lower()
                if b"close" in v:
                    close = True
                elif b"keep-alive" in v:
                    close = False
    return Head(status, length, chunked, close)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the blank line
                pass
            return bytes(out)
        data = await reader.readexactly(size + 2)
        if data[-2:] != b"\r\n":
            raise HttpError("chunk not followed by CRLF")
        out += data[:-2]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one response; returns (status, body, whether the server closes the connection)."""
    head = parse_head(await reader.readuntil(b"\r\n\r\n"))
    if head.chunked:
        body = await _read_chunked(reader)
    elif head.content_length is not None:
        body = await reader.readexactly(head.content_length) if head.content_length else b""
    elif head.status in (204, 304) or head.status < 200:
        body = b""
    else:  # no length: the body ends when the connection does
        body = await reader.read()
        return head.status, body, True
    return head.status, body, head.close


def payment_body(prefix: bytes, i: int) -> bytes:
    """A valid payment for the bench catalog; ``external_id`` = prefix + i."""
    service, first = BENCH_SERVICES[i % len(BENCH_SERVICES)]
    return b'{"external_id":"%s%d","service":"%s","account":"%s%09d","amount":"%d.00","currency":"RUB"}' % (
        prefix,
        i,
        service,
        first,
        i % 1_000_000_000,
        100 + (i * 7) % 900,
    )


def request_head(method: str, path: str, host: str, port: int, key: str | None, close: bool = False) -> bytes:
    """Everything of a request before the Content-Length value."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    if close:
        auth += "Connection: close\r\n"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode("ascii")


def payment_id(body: bytes) -> int | None:
    """The ``id`` of a payment answer (``{"id":123,...}``), cheaply; None if there is none."""
    if body.startswith(b'{"id":'):
        end = body.find(b",", 6)
        try:
            return int(body[6 : end if end > 0 else len(body) - 1])
        except ValueError:
            pass
    try:
        value = json.loads(body)
    except ValueError:
        return None
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, int) else None


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadState:
    total: int
    expect: int
    next_index: int = 0
    done: int = 0
    ok: int = 0
    errors: int = 0
    reconnects: int = 0
    connected: int = 0
    opened: int = 0  # connections opened in all
    statuses: dict[int, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    latencies_ns: list[int] = field(default_factory=list)
    min_id: int | None = None
    max_id: int | None = None
    last_ns: int = 0

    def error(self, text: str) -> None:
        self.errors += 1
        self.samples(text)

    def samples(self, text: str) -> None:
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text[:500])


async def _connection(
    state: LoadState,
    start: asyncio.Event,
    host: str,
    port: int,
    head: bytes,
    make_body: Callable[[int], bytes],
    want_ids: bool,
    fresh: bool = False,
) -> None:
    """One client: requests one after the other; ``fresh``: each on a new connection."""
    reader, writer = await asyncio.open_connection(host, port)
    state.connected += 1
    state.opened += 1
    is_open = True
    await start.wait()
    perf = time.perf_counter_ns
    latencies = state.latencies_ns
    try:
        while state.next_index < state.total:
            i = state.next_index
            state.next_index = i + 1
            body = make_body(i)
            request = b"%s%d\r\n\r\n%s" % (head, len(body), body)
            t0 = perf()
            try:
                if not is_open:  # a new connection for this request, within its time
                    reader, writer = await asyncio.open_connection(host, port)
                    state.opened += 1
                    is_open = True
                writer.write(request)
                status, answer, close = await read_response(reader)
            except (
                OSError,
                EOFError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                HttpError,
            ) as e:
                state.done += 1
                state.error(f"transport: {type(e).__name__}: {e}")
                writer.close()
                state.reconnects += 1
                is_open = False
                continue
            t1 = perf()
            latencies.append(t1 - t0)
            state.last_ns = t1
            state.done += 1
            state.statuses[status] = state.statuses.get(status, 0) + 1
            if status == state.expect:
                state.ok += 1
                if want_ids:
                    pid = payment_id(answer)
                    if pid is not None:
                        if state.min_id is None or pid < state.min_id:
                            state.min_id = pid
                        if state.max_id is None or pid > state.max_id:
                            state.max_id = pid
            else:
                state.error(f"HTTP {status}: {answer[:400].decode('utf-8', 'replace')}")
            if close or fresh:
                writer.close()
                is_open = False
                if not fresh:  # the server closed a connection meant to stay open
                    state.reconnects += 1
    finally:
        writer.close()


async def run_load(
    *,
    host: str,
    ports: Sequence[int],
    concurrency: int,
    total: int,
    keys: Sequence[str],
    prefix: str,
    path: str = "/api/v1/payments",
    expect: int = 201,
    within: float = 600.0,
    want_ids: bool = True,
    new_connections: bool = False,
) -> dict[str, Any]:
    """Send ``total`` payment requests over ``concurrency`` connections; returns the result dict."""
    state = LoadState(total=total, expect=expect)
    start = asyncio.Event()
    pfx = prefix.encode("ascii")

    def make_body(i: int) -> bytes:
        return payment_body(pfx, i)

    tasks = []
    for j in range(max(1, concurrency)):
        port = ports[j % len(ports)]
        key = keys[(j // len(ports)) % len(keys)] if keys else None
        head = request_head("POST", path, host, port, key, close=new_connections)
        tasks.append(
            asyncio.ensure_future(
                _connection(state, start, host, port, head, make_body, want_ids, fresh=new_connections)
            )
        )
    # every connection is open before the clock starts (each waits for `start` once connected)
    while state.connected < len(tasks):
        failed = [t for t in tasks if t.done()]
        if failed:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            exc = failed[0].exception() if not failed[0].cancelled() else None
            raise RuntimeError(f"cannot connect to {host}:{list(ports)}: {exc!r}")
        await asyncio.sleep(0.002)
    cpu0 = _cpu()
    wall0 = time.time()
    t0 = time.perf_counter_ns()
    start.set()
    timed_out = False
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), within)
    except TimeoutError:
        timed_out = True
        results = []
    for r in results:
        if isinstance(r, BaseException):  # its request in flight, if any, was counted already
            state.samples(f"connection lost: {type(r).__name__}: {r}")
    missing = total - state.done  # never sent or never answered: each is an error
    if missing > 0:
        reason = f"timeout after {within} s" if timed_out else "every connection was lost"
        state.samples(f"{reason}: {missing} requests unanswered")
        state.errors += missing
    t_end = state.last_ns or time.perf_counter_ns()
    duration = max(t_end - t0, 1) / 1e9
    lat = sorted(state.latencies_ns)
    ms = 1e6
    return {
        "requests": state.done,
        "ok": state.ok,
        "errors": state.errors,
        "error_samples": state.error_samples,
        "statuses": {str(k): v for k, v in sorted(state.statuses.items())},
        "reconnects": state.reconnects,
        "new_connections": new_connections,
        "connections_opened": state.opened,
        "concurrency": concurrency,
        "duration_s": round(duration, 6),
        "rate_per_s": round(state.ok / duration, 3),
        "latency_ms": {
            "p50": round(percentile(lat, 0.50) / ms, 3),
            "p95": round(percentile(lat, 0.95) / ms, 3),
            "p99": round(percentile(lat, 0.99) / ms, 3),
            "max": round((lat[-1] if lat else 0) / ms, 3),
            "mean": round((sum(lat) / len(lat) if lat else 0) / ms, 3),
        },
        "min_id": state.min_id,
        "max_id": state.max_id,
        "start_wall": wall0,
        "end_wall": wall0 + duration,
        "client_cpu_s": round(_cpu() - cpu0, 3),
    }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run(coro_factory: Callable[[], Any]) -> Any:
    return event_loop.run(coro_factory())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paymux.bench.load", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, action="append", required=True, help="repeat to spread over ports")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--payments", type=int, default=1000, help="requests to send in all")
    ap.add_argument("--prefix", default="b-", help="external_id prefix (unique per run)")
    ap.add_argument("--path", default="/api/v1/payments")
    ap.add_argument("--expect", type=int, default=201, help="the status counted as success")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    ap.add_argument("--no-ids", action="store_true", help="do not look for payment ids in the answers")
    ap.add_argument("--new-connections", action="store_true", help="every request on a connection of its own")
    args = ap.parse_args(argv)
    keys = [k for k in os.environ.get(KEYS_ENV, "").split(",") if k]
    result = _run(
        lambda: run_load(
            host=args.host,
            ports=args.port,
            concurrency=args.concurrency,
            total=args.payments,
            keys=keys,
            prefix=args.prefix,
            path=args.path,
            expect=args.expect,
            within=args.timeout,
            want_ids=not args.no_ids,
            new_connections=args.new_connections,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
