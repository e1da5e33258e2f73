"""``paymux demo`` and invoice collection, as a user meets them: the demo (a real subprocess on a fresh
SQLite file) prints a biller's API key and pay links; a printed link is paid by card through the
acquirer emulator the demo started, over real HTTP; seeding the demo again adds nothing."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx

PAYMUX = Path(sys.executable).parent / "paymux"
LINK = re.compile(r"^\s+(CP-\d{4}-\d{4})\s+(\w+)\s+(http://\S+/pay/(\S+))$", re.M)
KEY = re.compile(r"biller citypower API key:\s+(pmx_bl_\S+)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env["PAYMUX_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    env["PAYMUX_LOG_LEVEL"] = "warning"
    if env.get("PYTHONPATH"):  # the subprocess runs elsewhere: a relative path would miss this tree
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep)
        )
    return env


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


@contextlib.contextmanager
def _serving_demo(tmp: Path, port: int) -> Iterator[str]:
    """``paymux demo --port PORT`` until it says it serves; its output so far. Stopped with SIGINT."""
    out_path = tmp / "demo.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [str(PAYMUX), "demo", "--port", str(port)],
            cwd=tmp,
            env=_env(tmp / "paymux.db"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 150
            while "serving; press Ctrl-C" not in out_path.read_text():
                assert proc.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, out_path.read_text()
                time.sleep(0.1)
            yield out_path.read_text()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait()


def _form_action(html: str) -> str:
    m = re.search(r'<form method="post" action="([^"]+)"', html)
    assert m, html
    return m.group(1).replace("&amp;", "&")


def _pay_by_card(link: str) -> str:
    """Open the link, choose card, fill the acquirer's checkout, confirm 3-D Secure: the result page."""
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(link, headers={"Accept": "text/html"})
        assert page.status_code == 200 and 'data-method="card"' in page.text, page.text
        r = browser.post(f"{link}/methods/card")
        assert r.status_code == 303, r.text
        checkout_url = r.headers["location"]
        assert checkout_url.startswith("http://127.0.0.1:") and "/checkout/" in checkout_url
        checkout = browser.get(checkout_url)
        assert 'name="number"' in checkout.text
        r = browser.post(
            urljoin(checkout_url, _form_action(checkout.text)),
            data={"number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"},
        )
        assert r.status_code == 303, r.text
        acs_url = urljoin(checkout_url, r.headers["location"])
        acs = browser.get(acs_url)
        assert "3-D Secure" in acs.text
        r = browser.post(urljoin(acs_url, _form_action(acs.text)), data={"action": "confirm"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"{link}/return/"), r.headers
        result = browser.get(r.headers["location"])
        deadline = time.monotonic() + 10
        while 'data-attempt="approved"' not in result.text:  # the callback may come a moment later
            assert time.monotonic() < deadline, result.text
            time.sleep(0.2)
            result = browser.get(str(result.request.url))
        return result.text


def test_demo_invoice_is_paid_by_card_through_its_emulators_and_seeding_again_adds_nothing(
    tmp_path: Path,
) -> None:
    port = _free_port()
    with _serving_demo(tmp_path, port) as out:
        assert "emulated acquirer" in out and "emulated openbank" in out, out
        [key] = KEY.findall(out)
        links = {number: (status, url, token) for number, status, url, token in LINK.findall(out)}
        # the payable invoices are printed (open, partially paid, overdue); paid and cancelled are not
        assert {s for s, _, _ in links.values()} == {"open", "partially_paid", "overdue"}, out
        assert len(links) == 4
        status, link, _token = links["CP-2026-0001"]
        assert status == "open" and link.startswith(f"http://127.0.0.1:{port}/pay/")
        api = f"http://127.0.0.1:{port}/api/v1/invoices"
        h = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{api}/CP-2026-0001", headers=h).json()["status"] == "open"

        result = _pay_by_card(link)
        assert "City Power" in result  # the result page in the biller's brand

        got = httpx.get(f"{api}/CP-2026-0001", headers=h).json()
        assert got["status"] == "paid" and got["paid_amount"] == "120.50"
        # the brand and the other states the demo seeded
        biller_page = httpx.get(links["CP-2026-0003"][1], headers={"Accept": "text/html"}).text
        assert "City Power" in biller_page and "#0b5394" in biller_page
        states = {
            n: httpx.get(f"{api}/{n}", headers=h).json()["status"] for n in ("CP-2026-0004", "CP-2026-0006")
        }
        assert states == {"CP-2026-0004": "paid", "CP-2026-0006": "cancelled"}

    db = tmp_path / "paymux.db"
    before = [
        _query(db, "SELECT number, status, paid_amount, link_token FROM invoices ORDER BY number"),
        _query(db, "SELECT COUNT(*) FROM billers"),
        _query(db, "SELECT COUNT(*) FROM invoice_payments"),
        _query(db, "SELECT COUNT(*) FROM invoice_changes"),
        _query(db, "SELECT COUNT(*) FROM postings"),
    ]
    assert before[2] == [(3,)]  # the card payment beside the demo's two bank transfers
    again = subprocess.run(
        [str(PAYMUX), "demo", "--seed-only"],
        cwd=tmp_path,
        env=_env(db),
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    new_key = KEY.findall(again.stdout)
    assert len(new_key) == 1 and new_key != [key]  # a new key, printed once
    # the invoice paid by card is not printed as payable any more; nothing else changed
    assert "CP-2026-0001" not in again.stdout and "CP-2026-0002" in again.stdout
    after = [
        _query(db, "SELECT number, status, paid_amount, link_token FROM invoices ORDER BY number"),
        _query(db, "SELECT COUNT(*) FROM billers"),
        _query(db, "SELECT COUNT(*) FROM invoice_payments"),
        _query(db, "SELECT COUNT(*) FROM invoice_changes"),
        _query(db, "SELECT COUNT(*) FROM postings"),
    ]
    assert after == before
    verify = subprocess.run(
        [str(PAYMUX), "ledger", "verify"],
        cwd=tmp_path,
        env=_env(db),
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert "ledger balanced: yes" in verify.stdout, verify.stdout + verify.stderr
