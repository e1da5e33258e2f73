"""``paymux bench --invoices N``: invoice intake, the hosted payment page and the billers' webhooks, each
next to the HTTP ceiling measured in the same run with the same client at the same concurrency.

The hub runs as a user runs it (``paymux serve`` on a scratch database: a SQLite file, or a PostgreSQL
database whose schema is recreated); the no-op app (:mod:`paymux.bench.noop_app`) is the ceiling.

1. a biller (``POST /api/v1/admin/billers``) whose webhook URL is a receiver on 127.0.0.1 in this
   process: it verifies every delivery with the biller's secret (``standardwebhooks``) and counts;
2. intake: N invoices in batches of ``--invoices-batch`` (10,000) ``POST /api/v1/invoices`` with the
   biller's key, built batch by batch (never N in memory; a sample of payment links is kept for the
   page); the hub's resident memory at 10 % and 90 % of the intake (flat: within a few MiB);
3. the hosted page: ``--invoices-page-clients`` (100) connections ``GET /pay/{token}`` of random
   invoices of the sample, ``--invoices-page-requests`` in all: requests/s, p50/p99;
4. webhooks: ``--invoices-webhooks`` K invoices (every (N/K)-th) paid in full through
   :func:`paymux.invoices.service.record_payment` (status ``paid``: history, feed, webhook); the hub's
   notification worker delivers: deliveries/s from the payments' commit to the last verified delivery;
5. the ceiling: the same batches posted to the no-op app's ``/api/v1/invoices`` (parsed and validated
   with the intake's own item check, nothing stored) and ``GET /health`` by the same client at the
   page's concurrency. Every rate is also given as a share of its ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from paymux.bench import procs
from paymux.bench.load import HttpError, percentile, read_response

MIB = 2**20
SAMPLE = 20_000  # payment links kept for the page (whatever N is)
BILLER = "bench-power"


@dataclass
class InvoiceBenchOptions:
    invoices: int = 1_000_000
    batch: int = 10_000
    intake_clients: int = 1
    page_clients: int = 100
    page_requests: int = 20_000
    webhooks: int | None = None  # default min(5,000, N)
    ceiling_invoices: int | None = None  # invoices posted to the no-op; default min(N, 100,000)
    timeout: float = 600.0
    progress: bool = True

    def resolve(self) -> None:
        if self.invoices < 1:
            raise ValueError("--invoices must be the number of invoices (at least 1)")
        if not 1 <= self.batch <= 10_000:
            raise ValueError("--invoices-batch must be 1..10000 (the intake's limit)")
        if self.intake_clients < 1 or self.page_clients < 1 or self.page_requests < 1:
            raise ValueError("--invoices-intake-clients, -page-clients and -page-requests must be >= 1")
        if self.webhooks is None:
            self.webhooks = min(5_000, self.invoices)
        if not 0 <= self.webhooks <= self.invoices:
            raise ValueError("--invoices-webhooks must be between 0 and the number of invoices")
        if self.ceiling_invoices is None:
            self.ceiling_invoices = min(self.invoices, 100_000)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def number(i: int) -> str:
    return f"B{i:09d}"


def batch_body(lo: int, hi: int) -> bytes:
    """The JSON of the batch of invoices ``lo`` .. ``hi - 1`` (built when sent)."""
    items = [
        {
            "number": number(i),
            "amount": f"{10 + i % 90}.{i % 100:02d}",
            "currency": "EUR",
            "due_date": "2030-01-31",
            "payer": {"name": f"Payer {i}", "email": f"p{i}@example.com", "language": "en"},
            "description": "Electricity, December",
        }
        for i in range(lo, hi)
    ]
    return orjson.dumps({"invoices": items})


# --- a minimal keep-alive client (the load generator's parser) ---------------------------------------
@dataclass
class Stats:
    ok: int = 0
    errors: int = 0
    samples: list[str] | None = None
    latencies_ns: list[int] | None = None
    seconds: float = 0.0

    def sample(self, text: str) -> None:
        if self.samples is None:
            self.samples = []
        if len(self.samples) < 5:
            self.samples.append(text[:300])


async def drive(
    port: int,
    requests: Iterator[tuple[bytes, Any]],
    concurrency: int,
    expect: int,
    on_answer: Callable[[Any, bytes], None] | None = None,
) -> Stats:
    """Send the requests (raw bytes with a tag) over ``concurrency`` kept-alive connections to
    127.0.0.1:port, one after another on each; every connection is open before the clock starts."""
    stats = Stats(latencies_ns=[])
    assert stats.latencies_ns is not None
    lat = stats.latencies_ns
    start = asyncio.Event()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await start.wait()
        for request, tag in requests:
            t0 = time.perf_counter_ns()
            try:
                writer.write(request)
                status, body, close = await read_response(reader)
            except (
                OSError,
                EOFError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                HttpError,
            ) as e:
                stats.errors += 1
                stats.sample(f"transport: {type(e).__name__}: {e}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            lat.append(time.perf_counter_ns() - t0)
            if status == expect:
                stats.ok += 1
                if on_answer is not None:
                    on_answer(tag, body)
            else:
                stats.errors += 1
                stats.sample(f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*(one(r, w) for r, w in conns))
    stats.seconds = time.perf_counter() - t0
    lat.sort()
    return stats


def post(path: str, port: int, key: str | None, body: bytes) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def get(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode("ascii")


def latency(stats: Stats) -> dict[str, float]:
    lat = stats.latencies_ns or []
    return {"p50": round(percentile(lat, 0.5) / 1e6, 2), "p99": round(percentile(lat, 0.99) / 1e6, 2)}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# --- the webhook receiver ----------------------------------------------------------------------------
class Receiver:
    """Verifies every delivery with the biller's secret and counts the verified ones (distinct ids)."""

    def __init__(self) -> None:
        self.secret = ""
        self.ids: set[str] = set()
        self.deliveries = 0
        self.refused = 0
        self.paid: set[str] = set()
        self.last = 0.0
        self.target = 0  # invoice.paid webhooks awaited
        self.all_paid = asyncio.Event()

    def app(self) -> Any:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            self.deliveries += 1
            try:
                payload = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                self.refused += 1
                return JSONResponse({"error": "bad signature"}, status_code=400)
            self.ids.add(request.headers["webhook-id"])
            if payload.get("type") == "invoice.paid":
                self.paid.add(payload["data"]["number"])
                if len(self.paid) >= self.target:
                    self.all_paid.set()
            self.last = time.monotonic()
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


# --- the run -----------------------------------------------------------------------------------------
async def run_invoice_bench(
    url: str, opts: InvoiceBenchOptions, backend: str, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """The invoice benchmark against ``paymux serve`` on the (scratch) database at ``url``."""
    from paymux.providers.emulators.server import run_emulator

    opts.resolve()
    result: dict[str, Any] = {
        "backend": backend,
        "invoices": opts.invoices,
        "batch": opts.batch,
        "intake_clients": opts.intake_clients,
        "page_clients": opts.page_clients,
        "page_requests": opts.page_requests,
        "webhooks": opts.webhooks,
    }
    env = {**env, "PAYMUX_DATABASE_URL": url}
    started: list[procs.Proc] = []

    def start(name: str, argv: list[str], e: dict[str, str]) -> procs.Proc:
        p = procs.start(name, argv, e, work)
        started.append(p)
        return p

    try:
        await asyncio.to_thread(procs.run_cli, ["migrate"], env, work)
        out = await asyncio.to_thread(procs.run_cli, ["admin", "issue-token", "--name", "bench"], env, work)
        admin = out.strip().splitlines()[-1]
        receiver = Receiver()
        async with run_emulator(receiver.app()) as hook_base:
            port = procs.free_port()
            hub = start(f"{backend}-hub", [*procs.paymux_command(), "serve", "--port", str(port)], env)
            await procs.wait_http(hub, port, "/health")
            key = await _biller(port, admin, f"{hook_base}/hook", receiver)
            say(f"invoices ({backend}): `paymux serve` up on port {port}; {opts.invoices:,} invoices")
            tokens = await _intake(port, key, opts, hub, result)
            await _page(port, tokens, opts, result)
            await _webhooks(url, opts, receiver, result)
            result["hub_rss_mib_end"] = round(hub.memory().get("VmRSS", 0) / 1024, 1)
            errors = [
                line for line in hub.log_tail(10**9).splitlines() if " ERROR " in line or "Traceback" in line
            ]
            result["hub_log_errors"] = len(errors)
            hub.stop()
        await _ceiling(work, env, opts, result, start)
    finally:
        for p in started:
            p.stop()
    _ratios(result)
    result["ok"] = bool(
        result.get("intake", {}).get("errors") == 0
        and result.get("intake", {}).get("created") == opts.invoices
        and result.get("page", {}).get("errors") == 0
        and result.get("webhook", {}).get("verified") == opts.webhooks
        and result.get("webhook", {}).get("refused") == 0
        and result.get("hub_log_errors") == 0
    )
    return result


async def _biller(port: int, admin: str, hook_url: str, receiver: Receiver) -> str:
    import httpx

    h = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        r = await http.post(
            "/api/v1/admin/billers",
            json={"code": BILLER, "name": "Bench Power", "webhook_url": hook_url},
            headers=h,
        )
        if r.status_code != 201:
            raise RuntimeError(f"creating the biller: {r.status_code} {r.text[:500]}")
        receiver.secret = r.json()["webhook_secret"]
        r = await http.post(f"/api/v1/admin/billers/{BILLER}/keys", json={"name": "bench"}, headers=h)
        if r.status_code != 201:
            raise RuntimeError(f"issuing the biller's key: {r.status_code} {r.text[:500]}")
        return str(r.json()["key"])


def _batches(n: int, size: int, build: Callable[[bytes], bytes]) -> Iterator[tuple[bytes, Any]]:
    for lo in range(0, n, size):
        hi = min(lo + size, n)
        yield build(batch_body(lo, hi)), (lo, hi)


async def _intake(
    port: int, key: str, opts: InvoiceBenchOptions, hub: procs.Proc, result: dict[str, Any]
) -> list[str]:
    n = opts.invoices
    per_batch = max(1, -(-SAMPLE * opts.batch // n))
    tokens: list[str] = []
    counts = {"created": 0, "existing": 0, "conflicts": 0, "invalid": 0}
    rss: dict[str, float] = {}
    done = 0
    t0 = time.monotonic()
    tenth = -1

    def on_answer(tag: Any, body: bytes) -> None:
        nonlocal done, tenth
        answer = orjson.loads(body)
        for k in counts:
            counts[k] += answer.get(k, 0)
        results = answer["results"]
        for r in random.sample(results, min(per_batch, len(results))):
            if "invoice" in r:
                tokens.append(r["invoice"]["payment_link"].rsplit("/", 1)[-1])
        done += tag[1] - tag[0]
        for mark, share in (("at_10", 0.1), ("at_90", 0.9)):
            if mark not in rss and done >= n * share:
                rss[mark] = round(hub.memory().get("VmRSS", 0) / 1024, 1)
        if opts.progress and int(10 * done / n) > tenth:
            tenth = int(10 * done / n)
            rate = done / max(time.monotonic() - t0, 1e-9)
            mib = hub.memory().get("VmRSS", 0) // 1024
            say(f"  intake: {done:,}/{n:,} ({rate:,.0f} invoices/s, hub RSS {mib} MiB)")

    rss["before"] = round(hub.memory().get("VmRSS", 0) / 1024, 1)
    stats = await drive(
        port,
        _batches(n, opts.batch, lambda b: post("/api/v1/invoices", port, key, b)),
        opts.intake_clients,
        200,
        on_answer,
    )
    rss["after"] = round(hub.memory().get("VmRSS", 0) / 1024, 1)
    result["intake"] = {
        **counts,
        "errors": stats.errors,
        "error_samples": stats.samples or [],
        "seconds": round(stats.seconds, 2),
        "per_s": round(done / stats.seconds, 1) if stats.seconds else 0.0,
        "batch_ms": latency(stats),
    }
    result["hub_rss_mib"] = rss
    if "at_10" in rss and "at_90" in rss:
        result["hub_rss_growth_mib"] = round(rss["at_90"] - rss["at_10"], 1)
    return tokens


def _page_requests(tokens: list[str], total: int, port: int) -> Iterator[tuple[bytes, Any]]:
    rnd = random.Random(7)
    for _ in range(total):
        yield get(f"/pay/{rnd.choice(tokens)}", port), None


async def _page(port: int, tokens: list[str], opts: InvoiceBenchOptions, result: dict[str, Any]) -> None:
    if not tokens:
        raise RuntimeError("no payment links came back from the intake")
    say(f"  page: {opts.page_requests:,} GET /pay/{{token}} over {opts.page_clients} connections")
    stats = await drive(port, _page_requests(tokens, opts.page_requests, port), opts.page_clients, 200)
    result["page"] = {
        "requests": opts.page_requests,
        "errors": stats.errors,
        "error_samples": stats.samples or [],
        "per_s": round(stats.ok / stats.seconds, 1) if stats.seconds else 0.0,
        "latency_ms": latency(stats),
        "links_sampled": len(tokens),
    }


async def _webhooks(url: str, opts: InvoiceBenchOptions, receiver: Receiver, result: dict[str, Any]) -> None:
    """Pay K invoices in full (record_payment, in this process on the hub's database) and wait for every
    ``invoice.paid`` webhook to be received and verified."""
    from sqlalchemy import select

    from paymux.invoices import service
    from paymux.invoices.models import Invoice
    from paymux.runtime import Hub
    from paymux.settings import Settings

    k = opts.webhooks or 0
    if k == 0:
        return
    stride = max(1, opts.invoices // k)
    wanted = [number(i * stride) for i in range(k)]
    say(f"  webhooks: paying {k:,} invoices (record_payment); the hub's notification worker delivers")
    receiver.target = k
    hub = Hub(Settings().model_copy(update={"database_url": url}))
    t0 = time.monotonic()
    try:
        for lo in range(0, k, 500):
            async with hub.sessions() as session:
                rows = (
                    await session.scalars(select(Invoice).where(Invoice.number.in_(wanted[lo : lo + 500])))
                ).all()
                for inv in rows:
                    await service.record_payment(
                        session, inv, inv.amount, "bank_transfer", f"bench-{inv.number}"
                    )
                await session.commit()
    finally:
        await hub.close()
    marked = time.monotonic() - t0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receiver.all_paid.wait(), opts.timeout)
    span = (receiver.last - t0) if receiver.last else 0.0
    result["webhook"] = {
        "paid": k,
        "pay_seconds": round(marked, 2),
        "verified": len(receiver.paid),
        "deliveries": receiver.deliveries,
        "refused": receiver.refused,
        "seconds": round(span, 2),
        "per_s": round(len(receiver.paid) / span, 1) if span > 0 else 0.0,
    }


async def _ceiling(
    work: Path,
    env: dict[str, str],
    opts: InvoiceBenchOptions,
    result: dict[str, Any],
    start: Callable[[str, list[str], dict[str, str]], procs.Proc],
) -> None:
    """The no-op app: the same batches (intake ceiling) and GETs (page ceiling), same client and
    concurrency."""
    assert opts.ceiling_invoices is not None
    port = procs.free_port()
    noop = start(
        "noop",
        [sys.executable, "-m", "paymux.bench.noop_app", "--host", "127.0.0.1", "--port", str(port)],
        env,
    )
    try:
        await procs.wait_http(noop, port, "/health")
        say(f"  ceiling: {opts.ceiling_invoices:,} invoices and {opts.page_requests:,} GETs to the no-op app")
        n = opts.ceiling_invoices
        intake = await drive(
            port,
            _batches(n, opts.batch, lambda b: post("/api/v1/invoices", port, "x", b)),
            opts.intake_clients,
            200,
        )
        reqs = ((get("/health", port), None) for _ in range(opts.page_requests))
        page = await drive(port, reqs, opts.page_clients, 200)
        result["ceiling"] = {
            "intake_invoices": n,
            "intake_per_s": round(n / intake.seconds, 1) if intake.seconds and not intake.errors else None,
            "intake_errors": intake.errors,
            "error_samples": (intake.samples or []) + (page.samples or []),
            "http_per_s": round(page.ok / page.seconds, 1) if page.seconds else None,
            "http_latency_ms": latency(page),
            "http_errors": page.errors,
        }
    finally:
        noop.stop()


def _ratios(r: dict[str, Any]) -> None:
    c = r.get("ceiling", {})
    http = c.get("http_per_s")
    r["ratios"] = {
        "intake_vs_ceiling": ratio(r.get("intake", {}).get("per_s"), c.get("intake_per_s")),
        "page_vs_http": ratio(r.get("page", {}).get("per_s"), http),
        "webhooks_vs_http": ratio(r.get("webhook", {}).get("per_s"), http),
    }


def table(r: dict[str, Any]) -> list[str]:
    """The invoices section of the bench's table."""
    i, p, w, c = r.get("intake", {}), r.get("page", {}), r.get("webhook", {}), r.get("ceiling", {})
    q, mem = r.get("ratios", {}), r.get("hub_rss_mib", {})
    plat, clat = p.get("latency_ms", {}), c.get("http_latency_ms", {})
    return [
        f"invoices ({r['backend']}, {r['invoices']:,} invoices in batches of {r['batch']:,},"
        f" 1 x `paymux serve`):",
        f"  intake            {i.get('per_s', 0):,} invoices/s ({i.get('created', 0):,} created in"
        f" {i.get('seconds', 0)} s, errors {i.get('errors')});"
        f" batch p50 {i.get('batch_ms', {}).get('p50')} ms;"
        f" no-op ceiling {c.get('intake_per_s')} invoices/s: ratio {q.get('intake_vs_ceiling')}",
        f"  hosted page       {p.get('per_s', 0):,} req/s at {r['page_clients']} clients,"
        f" p50 {plat.get('p50')} ms,"
        f" p99 {plat.get('p99')} ms (errors {p.get('errors')}); HTTP ceiling {c.get('http_per_s')} req/s"
        f" (p99 {clat.get('p99')} ms): ratio {q.get('page_vs_http')}",
        f"  webhooks          {w.get('per_s', 0):,} verified deliveries/s ({w.get('verified', 0):,} of"
        f" {w.get('paid', 0):,} in {w.get('seconds', 0)} s, refused {w.get('refused')});"
        f" ratio to the HTTP ceiling {q.get('webhooks_vs_http')}",
        f"  hub memory (RSS)  intake 10 % {mem.get('at_10')} MiB -> 90 % {mem.get('at_90')} MiB"
        f" (growth {r.get('hub_rss_growth_mib')} MiB); before {mem.get('before')}, after {mem.get('after')}",
        f"  hub log errors    {r.get('hub_log_errors')}",
    ]


def env_for_hub() -> dict[str, str]:
    """The caller's environment without what would point the hub elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PAYMUX_DATABASE_URL", "PAYMUX_HOST", "PAYMUX_PORT") and not k.startswith("PAYMUX_SSL_")
    }
