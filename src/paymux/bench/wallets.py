"""``paymux bench --wallets N``: P2P transfers over the wallet customer API, and one merchant's wallet
receiving from many payers at once, next to the HTTP ceiling measured in the same run with the same
client at the same concurrency.

The hub runs as a user runs it (``paymux serve`` on a scratch database: a SQLite file, or a PostgreSQL
database whose schema is recreated); the no-op app (:mod:`paymux.bench.noop_app`) is the ceiling.

1. a channel (``catalog apply``, ``channels issue-key``), an e-money issuer ``rub`` without fees;
   ``--wallets-clients`` C payers signed up, each with a customer token and a wallet topped up with
   what it will send, and one merchant;
2. P2P: N ``POST /api/v1/wallet/transfers`` of 1.00 over C kept-alive connections, client ``i`` from
   payer ``i`` to payer ``i + 1`` (so every wallet both sends and receives): transfers/s, p50/p99;
3. hot wallet: ``--wallets-hot`` H ``POST /api/v1/wallet/payments`` (merchant payments of 1.00) from
   ``--wallets-hot-payers`` P payers at once to the ONE merchant wallet (every one updates its balance
   row): payments/s, p50/p99, and the check: the merchant's balance equals the sum of the payments
   done, every payer's balance what it was less what it paid, the ledger balanced;
4. the ceiling: ``GET /health`` on the no-op app, same client and concurrency as the P2P run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson

from paymux.bench import procs
from paymux.bench.invoices import Stats, drive, get, latency, ratio, say

CHANNEL = "wallet-app"
AMOUNT = "1.00"

CATALOG = f"""\
channel_groups:
  - {{code: online, name: Internet and mobile bank}}
channels:
  - {{code: {CHANNEL}, name: Wallet app, kind: internet_bank, group: online}}
"""


@dataclass
class WalletBenchOptions:
    transfers: int = 20_000
    clients: int = 64
    hot: int | None = None  # merchant payments to the hot wallet; default min(N, 6,400)
    hot_payers: int = 64
    timeout: float = 600.0

    def resolve(self) -> None:
        if self.transfers < 1:
            raise ValueError("--wallets must be the number of P2P transfers (at least 1)")
        if not 2 <= self.clients <= 1_000 or not 1 <= self.hot_payers <= 1_000:
            raise ValueError("--wallets-clients must be 2..1000 and --wallets-hot-payers 1..1000")
        if self.hot is None:
            self.hot = min(self.transfers, 6_400)
        if self.hot < 0:
            raise ValueError("--wallets-hot must be 0 (skip) or the number of merchant payments")


def request(path: str, port: int, headers: dict[str, str], body: dict[str, Any]) -> bytes:
    raw = orjson.dumps(body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode("ascii") + raw


class Payer:
    def __init__(self, ref: str, token: str, wallet: int) -> None:
        self.ref, self.token, self.wallet = ref, token, wallet


class OwnQueues:
    """Requests for :func:`~paymux.bench.invoices.drive` where each connection sends only its own list:
    every connection iterates once, and each iteration takes the next list."""

    def __init__(self, per_client: list[list[tuple[bytes, Any]]]) -> None:
        self.lists = per_client
        self.taken = 0

    def __iter__(self) -> Iterator[tuple[bytes, Any]]:
        i, self.taken = self.taken, self.taken + 1
        return iter(self.lists[i])


async def drive_own(
    port: int, per_client: list[list[tuple[bytes, Any]]], expect: int, on_answer: Any = None
) -> Stats:
    """``drive`` with one connection per list, each sending its own list in order."""
    return await drive(
        port, cast(Iterator[tuple[bytes, Any]], OwnQueues(per_client)), len(per_client), expect, on_answer
    )


async def run_wallet_bench(
    url: str, opts: WalletBenchOptions, backend: str, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """The wallet benchmark against ``paymux serve`` on the (scratch) database at ``url``."""
    opts.resolve()
    assert opts.hot is not None
    result: dict[str, Any] = {
        "backend": backend,
        "transfers": opts.transfers,
        "clients": opts.clients,
        "hot": opts.hot,
        "hot_payers": opts.hot_payers,
    }
    env = {**env, "PAYMUX_DATABASE_URL": url}
    started: list[procs.Proc] = []

    def start(name: str, argv: list[str]) -> procs.Proc:
        p = procs.start(name, argv, env, work)
        started.append(p)
        return p

    try:
        admin, key = await _prepare(url)
        port = procs.free_port()
        hub = start(f"wallets-{backend}-hub", [*procs.paymux_command(), "serve", "--port", str(port)])
        await procs.wait_http(hub, port, "/health")
        say(f"wallets ({backend}): `paymux serve` up on port {port}; {opts.transfers:,} transfers")
        payers, merchant = await _setup(port, admin, key, opts)
        cpu = hub.cpu()
        await _p2p(port, payers, opts, result)
        result["p2p"]["hub_cpu_ms_each"] = _cpu_each(hub.cpu() - cpu, result["p2p"]["done"])
        cpu = hub.cpu()
        await _hot(port, payers, merchant, opts, result, admin)
        if "hot_wallet" in result:
            result["hot_wallet"]["hub_cpu_ms_each"] = _cpu_each(hub.cpu() - cpu, result["hot_wallet"]["done"])
        result["ledger_balanced"] = await _ledger(url)
        errors = [
            line for line in hub.log_tail(10**9).splitlines() if " ERROR " in line or "Traceback" in line
        ]
        result["hub_log_errors"] = len(errors)
        hub.stop()
        await _ceiling(opts, result, start)
    finally:
        for p in started:
            p.stop()
    c = result.get("ceiling", {})
    result["ratios"] = {
        "p2p_vs_http": ratio(result.get("p2p", {}).get("per_s"), c.get("http_per_s")),
        "hot_vs_http": ratio(result.get("hot_wallet", {}).get("per_s"), c.get("http_per_s")),
    }
    p2p, hot = result.get("p2p", {}), result.get("hot_wallet", {})
    result["ok"] = bool(
        p2p.get("errors") == 0
        and p2p.get("done") == opts.transfers
        and hot.get("errors") == 0
        and hot.get("correct")
        and result.get("ledger_balanced")
        and result.get("hub_log_errors") == 0
    )
    return result


def _cpu_each(seconds: float, n: int) -> float | None:
    """The hub's CPU per operation, in ms (its process's user + system time over the phase)."""
    return round(seconds * 1000 / n, 2) if n else None


async def _prepare(url: str) -> tuple[str, str]:
    """The schema, the channel, an admin token and the channel's key, in this process (what
    ``paymux migrate``, ``catalog apply``, ``admin issue-token`` and ``channels issue-key`` do)."""
    import yaml

    from paymux.auth.keys import issue_admin_token, issue_channel_key
    from paymux.catalog.file import apply_catalog
    from paymux.db.migrate import upgrade
    from paymux.runtime import Hub
    from paymux.settings import Settings

    await asyncio.to_thread(upgrade, url)
    hub = Hub(Settings().model_copy(update={"database_url": url}))
    try:
        async with hub.sessions() as session:
            await apply_catalog(session, yaml.safe_load(CATALOG), actor="bench")
            key = await issue_channel_key(session, CHANNEL)
            admin = await issue_admin_token(session, "bench")
            await session.commit()
    finally:
        await hub.close()
    return admin, key


async def _setup(
    port: int, admin: str, key: str, opts: WalletBenchOptions
) -> tuple[list[Payer], tuple[str, int]]:
    """The issuer, the payers (each topped up with all it will send) and the merchant."""
    import httpx

    assert opts.hot is not None
    n_payers = max(opts.clients, opts.hot_payers)
    per_p2p = -(-opts.transfers // opts.clients)
    per_hot = -(-opts.hot // opts.hot_payers) if opts.hot else 0
    ch = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        issuer = {"code": "rub", "name": "RUB e-money", "kind": "emoney", "currency": "RUB"}
        r = await http.post(
            "/api/v1/admin/wallets/issuers", json=issuer, headers={"Authorization": f"Bearer {admin}"}
        )
        if r.status_code != 201:
            raise RuntimeError(f"creating the issuer: {r.status_code} {r.text[:500]}")

        async def signup(ref: str, kind: str, topup: int) -> Payer:
            body = {"external_ref": ref, "kind": kind, "identification": "identified"}
            r = await http.post("/api/v1/wallet/customers", json=body, headers=ch)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"signing {ref} up: {r.status_code} {r.text[:300]}")
            r = await http.post(f"/api/v1/wallet/customers/{ref}/tokens", headers=ch)
            token = r.json()["token"]
            if topup:
                r = await http.post(
                    "/api/v1/wallet/topups",
                    json={"customer": ref, "issuer": "rub", "amount": f"{topup}.00"},
                    headers={**ch, "Idempotency-Key": f"topup-{ref}"},
                )
                if r.status_code != 201:
                    raise RuntimeError(f"topping {ref} up: {r.status_code} {r.text[:300]}")
                wallet = int(r.json()["to_wallet"])
            else:
                r = await http.post(
                    "/api/v1/wallet/wallets",
                    json={"issuer": "rub"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                wallet = int(r.json()["id"])
            return Payer(ref, token, wallet)

        payers = list(
            await asyncio.gather(
                *(signup(f"payer-{i}", "individual", per_p2p + per_hot + 1) for i in range(n_payers))
            )
        )
        shop = await signup("merchant-1", "merchant", 0)
    return payers, (shop.token, shop.wallet)


async def _p2p(port: int, payers: list[Payer], opts: WalletBenchOptions, result: dict[str, Any]) -> None:
    c = opts.clients
    per_client: list[list[tuple[bytes, Any]]] = [[] for _ in range(c)]
    for i in range(opts.transfers):
        k = i % c
        src, dst = payers[k], payers[(k + 1) % c]
        per_client[k].append(
            (
                request(
                    "/api/v1/wallet/transfers",
                    port,
                    {"Authorization": f"Bearer {src.token}", "Idempotency-Key": f"p2p-{i}"},
                    {"from_wallet": src.wallet, "to_wallet": dst.wallet, "amount": AMOUNT},
                ),
                i,
            )
        )
    say(f"  p2p: {opts.transfers:,} transfers over {c} connections")
    stats = await drive_own(port, per_client, 201)
    result["p2p"] = {
        "done": stats.ok,
        "errors": stats.errors,
        "error_samples": stats.samples or [],
        "seconds": round(stats.seconds, 2),
        "per_s": round(stats.ok / stats.seconds, 1) if stats.seconds else 0.0,
        "latency_ms": latency(stats),
    }


async def _hot(
    port: int,
    payers: list[Payer],
    merchant: tuple[str, int],
    opts: WalletBenchOptions,
    result: dict[str, Any],
    admin: str,
) -> None:
    import httpx

    assert opts.hot is not None
    if not opts.hot:
        return
    token, shop_wallet = merchant
    p = opts.hot_payers
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:

        async def balance(tok: str, wallet: int) -> str:
            r = await http.get(f"/api/v1/wallet/wallets/{wallet}", headers={"Authorization": f"Bearer {tok}"})
            return str(r.json()["balance"])

        before = [await balance(x.token, x.wallet) for x in payers[:p]]
        per_client: list[list[tuple[bytes, Any]]] = [[] for _ in range(p)]
        for i in range(opts.hot):
            k = i % p
            per_client[k].append(
                (
                    request(
                        "/api/v1/wallet/payments",
                        port,
                        {"Authorization": f"Bearer {payers[k].token}", "Idempotency-Key": f"hot-{i}"},
                        {"from_wallet": payers[k].wallet, "to_wallet": shop_wallet, "amount": AMOUNT},
                    ),
                    k,
                )
            )
        paid = [0] * p

        def on_answer(k: Any, body: bytes) -> None:
            paid[k] += 100 if orjson.loads(body).get("state") == "done" else 0

        say(f"  hot wallet: {opts.hot:,} merchant payments from {p} payers at once to one wallet")
        stats = await drive_own(port, per_client, 201, on_answer)
        shop = await balance(token, shop_wallet)
        after = [await balance(x.token, x.wallet) for x in payers[:p]]
    minor = int(shop.replace(".", ""))
    payers_ok = all(
        int(b.replace(".", "")) - int(a.replace(".", "")) == paid[k]
        for k, (b, a) in enumerate(zip(before, after, strict=True))
    )
    result["hot_wallet"] = {
        "payments": opts.hot,
        "done": stats.ok,
        "errors": stats.errors,
        "error_samples": stats.samples or [],
        "seconds": round(stats.seconds, 2),
        "per_s": round(stats.ok / stats.seconds, 1) if stats.seconds else 0.0,
        "latency_ms": latency(stats),
        "merchant_balance": shop,
        "sum_paid": f"{sum(paid) // 100}.{sum(paid) % 100:02d}",
        "correct": minor == sum(paid) == 100 * stats.ok and payers_ok,
    }


async def _ledger(url: str) -> bool:
    from paymux.ledger.service import verify_ledger
    from paymux.runtime import Hub
    from paymux.settings import Settings

    hub = Hub(Settings().model_copy(update={"database_url": url}))
    try:
        async with hub.read_sessions() as session:
            return bool((await verify_ledger(session)).balanced)
    finally:
        await hub.close()


async def _ceiling(opts: WalletBenchOptions, result: dict[str, Any], start: Any) -> None:
    """``GET /health`` on the no-op app: same client, same concurrency, as many requests as transfers."""
    port = procs.free_port()
    noop = start(
        "noop", [sys.executable, "-m", "paymux.bench.noop_app", "--host", "127.0.0.1", "--port", str(port)]
    )
    try:
        await procs.wait_http(noop, port, "/health")
        say(f"  ceiling: {opts.transfers:,} GETs to the no-op app over {opts.clients} connections")
        reqs = ((get("/health", port), None) for _ in range(opts.transfers))
        stats = await drive(port, reqs, opts.clients, 200)
        result["ceiling"] = {
            "http_per_s": round(stats.ok / stats.seconds, 1) if stats.seconds else None,
            "http_latency_ms": latency(stats),
            "http_errors": stats.errors,
        }
    finally:
        with contextlib.suppress(Exception):
            noop.stop()


def table(r: dict[str, Any]) -> list[str]:
    """The wallets section of the bench's table."""
    p, h, c, q = r.get("p2p", {}), r.get("hot_wallet", {}), r.get("ceiling", {}), r.get("ratios", {})
    pl, hl, cl = p.get("latency_ms", {}), h.get("latency_ms", {}), c.get("http_latency_ms", {})
    return [
        f"wallets ({r['backend']}, 1 x `paymux serve`):",
        f"  P2P transfers     {p.get('per_s', 0):,} transfers/s at {r['clients']} clients"
        f" ({p.get('done', 0):,} in {p.get('seconds', 0)} s, errors {p.get('errors')}),"
        f" p50 {pl.get('p50')} ms, p99 {pl.get('p99')} ms, hub CPU {p.get('hub_cpu_ms_each')} ms each;"
        f" HTTP ceiling {c.get('http_per_s')} req/s (p99 {cl.get('p99')} ms): ratio {q.get('p2p_vs_http')}",
        f"  hot wallet        {h.get('per_s', 0):,} payments/s into one merchant wallet from"
        f" {r['hot_payers']} payers ({h.get('done', 0):,} in {h.get('seconds', 0)} s,"
        f" errors {h.get('errors')}),"
        f" p50 {hl.get('p50')} ms, p99 {hl.get('p99')} ms; merchant balance {h.get('merchant_balance')}"
        f" = sum paid {h.get('sum_paid')}: {'correct' if h.get('correct') else 'WRONG'}",
        f"  ledger balanced   {r.get('ledger_balanced')}; hub log errors {r.get('hub_log_errors')}",
    ]
