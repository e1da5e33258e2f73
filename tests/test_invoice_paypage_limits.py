"""Starting a payment method on the hosted page is limited per payment link and per client address
(both databases, over HTTP): beyond the limit the payer gets a readable page in their language with
429 and Retry-After, and no attempt is made."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from paymux.invoices.models import InvoiceAttempt
from paymux.invoices.pagetext import TEXT
from paymux.invoices.startlimit import StartLimiter
from paypage_support import pay_env

LIMITS = {
    "paymethod_start_per_token": 3,
    "paymethod_start_per_address": 5,
    "paymethod_start_window_seconds": 120,
}


async def attempts(p: object) -> int:
    async with p.env.hub.read_sessions() as s:  # type: ignore[attr-defined]
        return int(await s.scalar(select(func.count()).select_from(InvoiceAttempt)) or 0)


async def test_method_starts_limited_per_link_and_per_address(db_url: str) -> None:
    async with pay_env(db_url, settings=LIMITS) as p:
        first = await p.invoice("INV-1")
        second = await p.invoice("INV-2")
        for _ in range(3):
            r = await p.browser.post(p.url(f"/pay/{first}/methods/bank_transfer"))
            assert r.status_code == 303, r.text
        # the fourth start of the same link: refused, readable, in the payer's language (ro)
        r = await p.browser.post(p.url(f"/pay/{first}/methods/bank_transfer"))
        assert r.status_code == 429 and r.headers["content-type"].startswith("text/html")
        wait = int(r.headers["retry-after"])
        assert 1 <= wait <= 120
        assert '<html lang="ro">' in r.text and 'role="alert"' in r.text
        assert TEXT["ro"]["too_many_starts"].format(minutes=2) in r.text
        assert await attempts(p) == 3
        # another link from the same address: two more starts, then the address's limit
        for _ in range(2):
            assert (await p.browser.post(p.url(f"/pay/{second}/methods/bank_transfer"))).status_code == 303
        r = await p.browser.post(p.url(f"/pay/{second}/methods/card?lang=en"))
        assert r.status_code == 429 and re.search(r"wait \d+ min", r.text)
        assert await attempts(p) == 5
        # reading the page is not limited
        assert (await p.browser.get(p.url(f"/pay/{second}"))).status_code == 200


def test_window_slides_and_zero_is_no_limit() -> None:
    lim = StartLimiter(2, 10, 60)
    assert lim.take("t", "a", now=0) == 0 and lim.take("t", "a", now=1) == 0
    assert lim.take("t", "a", now=2) == 58  # until the first start leaves the window
    assert lim.take("u", "a", now=2) == 0  # another link, same address: under 10
    assert lim.take("t", "a", now=60.5) == 0  # the first start left the window
    free = StartLimiter(0, 0, 60)
    assert all(free.take("t", "a", now=i) == 0 for i in range(100))
