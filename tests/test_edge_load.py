"""The API keeps answering while a large request is worked on: ``paymux serve`` as a real process,
``/health`` asked every 10 ms over HTTP while a large catalog document is validated.

These run on SQLite whatever ``PAYMUX_TEST_DATABASE_URL`` says: the work measured happens before the
database is touched. The machine the suite runs on may be busy with other work, which delays any
answer now and then whatever the hub does; so a measurement is repeated (three times at most) until
one is clean. Without the work off the event loop, no measurement can be: /health waits seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PAYMUX = Path(sys.executable).parent / "paymux"
BUDGET = 0.100  # seconds /health may take
ATTEMPTS = 3


@dataclass
class Served:
    base: str
    admin: dict[str, str]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(tmp_path: Path) -> Iterator[Served]:
    """``paymux serve --no-workers`` on a fresh SQLite file, with an admin token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env.update(PAYMUX_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", PAYMUX_LOG_LEVEL="warning")
    subprocess.run([str(PAYMUX), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    issued = subprocess.run(
        [str(PAYMUX), "admin", "issue-token"], env=env, check=True, capture_output=True, text=True, timeout=60
    )
    token = issued.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(PAYMUX), "serve", "--no-workers", "--no-migrate", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "paymux serve did not start"
            time.sleep(0.1)
        yield Served(base, {"Authorization": f"Bearer {token}"})
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@dataclass
class Measured:
    answer: httpx.Response
    seconds: float  # how long the large request took
    health: list[float]  # /health's answer times meanwhile


async def while_probing(
    base: str, request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> Measured:
    """Run ``request`` and, on another connection, ask /health every 10 ms until it is answered."""
    async with (
        httpx.AsyncClient(base_url=base, timeout=120) as big,
        httpx.AsyncClient(base_url=base, timeout=120) as probe,
    ):
        assert (await probe.get("/health")).status_code == 200  # connected before the work starts
        times: list[float] = []
        finished = asyncio.Event()

        async def probing() -> None:
            while not finished.is_set():
                started = time.perf_counter()
                r = await probe.get("/health")
                times.append(time.perf_counter() - started)
                assert r.status_code == 200
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), 0.01)

        task = asyncio.create_task(probing())
        started = time.perf_counter()
        try:
            answer = await request(big)
        finally:
            seconds = time.perf_counter() - started
            finished.set()
            await task
        return Measured(answer, seconds, times)


def measure_until_clean(
    base: str,
    request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    check: Callable[[Measured], None],
) -> Measured:
    """Measure up to ATTEMPTS times; the first measurement whose every /health took under BUDGET."""
    seen = []
    for _ in range(ATTEMPTS):
        m = asyncio.run(while_probing(base, request))
        check(m)
        slowest = max(m.health)
        if slowest < BUDGET:
            return m
        seen.append(f"{slowest * 1000:.0f} ms (of {len(m.health)} answers in {m.seconds:.1f} s)")
    pytest.fail(f"/health took longer than {BUDGET * 1000:.0f} ms while the request ran: slowest {seen}")


SERVICE = """- code: s{i}
  name: Service number {i}
  currency: RUB
  account_pattern: '^\\d{{10}}$'
  min_amount: '1.00'
  max_amount: '15000.00'
  fields:
  - {{name: period, pattern: '^\\d{{4}}-\\d{{2}}$', required: false}}
  route:
    strategy: priority
    candidates:
    - {{provider: p1, code: 'T{i}'}}
    - {{provider: p2, code: 'U{i}', min_amount: '10.00'}}
"""


def test_health_answers_within_100_ms_while_a_large_catalog_is_validated(tmp_path: Path) -> None:
    n = 7000  # about 2 MB: seconds of parsing and validation
    document = "services:\n" + "".join(SERVICE.format(i=i) for i in range(n)) + "- {code: last}\n"
    assert len(document) > 1_500_000

    def validate(http: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return http.post("/api/v1/admin/catalog?dry_run=true", content=document, headers=admin)

    def check(m: Measured) -> None:
        # read and validated to the end: the last item is the one that is wrong
        assert m.answer.status_code == 422, m.answer.text[:500]
        assert f"services[{n}] (last).name: this field is required" in m.answer.json()["detail"]
        assert m.seconds > 0.5 and len(m.health) >= 5, (m.seconds, len(m.health))

    with served(tmp_path) as hub:
        admin = hub.admin
        measured = measure_until_clean(hub.base, validate, check)
        assert max(measured.health) < BUDGET


def test_health_answers_while_a_catalog_of_60000_empty_services_is_refused(tmp_path: Path) -> None:
    document = "services:\n" + "- {}\n" * 60_000  # 240 kB

    def post(http: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return http.post("/api/v1/admin/catalog?dry_run=true", content=document, headers=admin)

    def check(m: Measured) -> None:
        assert m.answer.status_code == 413, m.answer.text[:500]
        body = m.answer.json()
        assert body["type"].endswith("/catalog-too-large") and "60000 items" in body["detail"]

    with served(tmp_path) as hub:
        admin = hub.admin
        measured = measure_until_clean(hub.base, post, check)
        assert max(measured.health) < BUDGET
        # a 10 MB body is refused before it is read (the default limit is 4 MiB)
        r = httpx.post(
            f"{hub.base}/api/v1/admin/catalog?dry_run=true",
            content=b"#" * 10_000_000,
            headers=admin,
            timeout=60,
        )
        assert r.status_code == 413 and r.json()["type"].endswith("/body-too-large"), r.text
        assert r.json()["limit"] == 4 * 1024 * 1024


def test_health_answers_within_100_ms_while_a_large_bank_statement_is_read(tmp_path: Path) -> None:
    entry = (
        b'<Ntry><Amt Ccy="RUB">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
        b"<BookgDt><Dt>2026-01-01</Dt></BookgDt></Ntry>"
    )
    namespace = b"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
    # 15 MB of entries, but not inside a Stmt: read to the end, then refused, nothing stored
    statement = (
        b'<?xml version="1.0"?><Document xmlns="'
        + namespace
        + b'"><BkToCstmrStmt>'
        + entry * 130_000
        + b"</BkToCstmrStmt></Document>"
    )

    def upload(http: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return http.post("/api/v1/admin/bank-statements", content=statement, headers=admin)

    def check(m: Measured) -> None:
        assert m.answer.status_code == 422, m.answer.text[:500]
        assert "the document has no Stmt" in m.answer.json()["detail"]
        assert m.seconds > 0.5 and len(m.health) >= 5, (m.seconds, len(m.health))

    with served(tmp_path) as hub:
        admin = hub.admin
        measured = measure_until_clean(hub.base, upload, check)
        assert max(measured.health) < BUDGET
