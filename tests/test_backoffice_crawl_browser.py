"""Every back-office page each role can reach, at phone width (390x844) in headless Chromium: a crawler
signs in as the role, follows every back-office link from the home page, and on each page checks that
nothing widens the page past the screen (wide tables scroll inside their own box) and that every
checkbox sits on its label's line. The catalog has long names, as real ones are (a long option widens
a select, and with it a filter, unless the layout stops it). A screenshot of each page is kept."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from browser_support import chromium, login, needs_chromium, screenshot, serving_backoffice
from harness import BASE_CATALOG, Env, hub_env
from test_backoffice_ops_support import agent_org, pay_all
from test_backoffice_ops_tariffs import FEE_2PCT, _propose
from test_backoffice_support import ROLE_CODES, Bo, add_user
from test_backoffice_support import login as http_login

pytestmark = needs_chromium

PHONE = {"width": 390, "height": 844}
MAX_PAGES = 150  # per role
SAME_KIND = 2  # pages of one kind visited (two channels' pages, not every channel's)
IGNORED_QUERY = {"page", "sort", "dir", "msg", "error"}
DOWNLOADS = re.compile(r"export=|\.xlsx|/file$|/report$|/logout")

WIDTH = "() => document.scrollingElement.scrollWidth"
# the elements that reach past the screen's right edge (for the failure message)
WIDE = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 5)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))"""
# checkboxes (and radio buttons) whose middle is not on the first line of their label's text
CHECKBOXES_OFF_THEIR_LINE = """() => {
  const bad = [];
  for (const box of document.querySelectorAll('label input[type=checkbox], label input[type=radio]')) {
    if (!box.offsetParent) continue;
    const label = box.closest('label');
    const walker = document.createTreeWalker(label, NodeFilter.SHOW_TEXT);
    let text = null;
    while (walker.nextNode()) {
      const n = walker.currentNode;
      if (n.textContent.trim() && (box.compareDocumentPosition(n) & Node.DOCUMENT_POSITION_FOLLOWING)) {
        text = n;
        break;
      }
    }
    if (!text) continue;
    const range = document.createRange();
    range.selectNodeContents(text);
    const line = range.getClientRects()[0], b = box.getBoundingClientRect(), mid = b.top + b.height / 2;
    if (line && (mid < line.top || mid > line.bottom || b.left > line.left)) {
      bad.push(label.textContent.trim().replace(/\\s+/g, ' ').slice(0, 50));
    }
  }
  return bad;
}"""


def long_names() -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    for p in cat["providers"]:
        p["name"] = f"{p['name']} — Federal Settlement and Clearing Company for Payments, LLC"
    for s in cat["services"]:
        s["name"] = f"{s['name']} for every mobile operator of the Russian Federation"
    for c in cat["channels"]:
        c["name"] = f"{c['name']} at the central branch on Bolshaya Nikitskaya street"
    return cat


@contextlib.asynccontextmanager
async def busy_backoffice(db_url: str) -> AsyncIterator[tuple[Env, str]]:
    """The back office over HTTP on a hub with long catalog names, payments (succeeded, failed) and a
    tariff proposal waiting for approval."""
    async with hub_env(db_url, catalog=long_names()) as env, serving_backoffice(env.hub) as base:
        await pay_all(env, [{"account": "9001111111"}, {"account": "9002222222", "amount": "250.00"}])
        await add_user(env.hub, "maker", "financial_specialist")
        async with httpx.AsyncClient(base_url=base) as http:
            await http_login(http, "maker")
            await _propose(http, FEE_2PCT)
        yield env, base


def kind_of(url: str) -> tuple[str, str]:
    """(the path's kind: numbers and the last segment of deep paths left out, the query's keys)."""
    parts = urlsplit(url)
    path = re.sub(r"/\d+(?=/|$)", "/N", parts.path)
    keys = ",".join(sorted({k for k, _ in parse_qsl(parts.query)} - IGNORED_QUERY))
    return path, keys


async def crawl(page: Any, base: str, role: str) -> tuple[int, list[str]]:
    """Visit what ``role`` reaches from the home page; returns the pages seen and the problems found."""
    problems: list[str] = []
    todo, seen, kinds = [f"{base}/backoffice/"], set(), {}
    visited = 0
    while todo and visited < MAX_PAGES:
        url = todo.pop(0)
        path, keys = kind_of(url)
        parent = path.rsplit("/", 1)[0] if path.count("/") > 3 else path
        if (path, keys) in seen or kinds.get((parent, keys), 0) >= SAME_KIND:
            continue
        seen.add((path, keys))
        kinds[(parent, keys)] = kinds.get((parent, keys), 0) + 1
        try:
            response = await page.goto(url)
        except Exception as e:  # a download that no pattern foresaw
            if "Download is starting" in str(e):
                continue
            raise
        visited += 1
        assert response is not None
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        where = url[len(base) :]
        if response.status >= 500:
            problems.append(f"{where}: {response.status}")
        width = await page.evaluate(WIDTH)
        if width > PHONE["width"]:
            problems.append(f"{where} is {width}px wide: {await page.evaluate(WIDE)}")
        off = await page.evaluate(CHECKBOXES_OFF_THEIR_LINE)
        if off:
            problems.append(f"{where}: checkboxes off their label's line: {off}")
        await screenshot(page, f"phone-{role}-{path.strip('/').replace('/', '-')}-{keys}")
        for href in await page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            href = href.split("#")[0]
            if href.startswith(f"{base}/backoffice/") and not DOWNLOADS.search(href):
                todo.append(href)
    return visited, problems


@pytest.mark.parametrize("role", ROLE_CODES)
async def test_every_page_of_every_role_fits_a_phone(db_url: str, role: str) -> None:
    async with busy_backoffice(db_url) as (env, base):
        org = await agent_org(Bo(None, env.hub, None), "dealer") if role == "agent" else None  # type: ignore[arg-type]
        await add_user(env.hub, "someone", role, org=org)
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            await login(page, base, "someone")
            visited, problems = await crawl(page, base, role)
        assert visited >= 3, f"{role} reached only {visited} pages"
        assert not problems, "\n".join(problems)
