"""No back-office page links a user to a page their role cannot open: for every predefined role, a
crawler (plain HTTP, no browser) signs in, follows every back-office link each page shows, redirects
included, and fails on any link that answers 403 (or breaks). One world with something on most pages:
payments (succeeded and failed), a tariff proposal waiting, a route switch, an agent's organization."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest

from paymux.auth.principal import Principal
from paymux.backoffice.framework import may_open, unlink_forbidden
from paymux.backoffice.sections import load
from paymux.routing.switch import switch_provider
from test_backoffice_ops_support import agent_org, ops_env, pay_all
from test_backoffice_ops_tariffs import FEE_2PCT, _propose
from test_backoffice_support import ROLE_CODES, Bo, login

FAIL_ALL = {"accounts": {"9000000009": {"pay": "fatal:77:account closed"}}}
MAX_PAGES = 120  # per role
SAME_KIND = 2  # pages of one kind opened (two payments' pages, not every payment's)
IGNORED_QUERY = {"page", "sort", "dir", "q"}
SKIPPED = re.compile(r"export=|\.xlsx|/file$|/report$|/logout|/static/")
LINK = re.compile(r'<a\b[^>]*\bhref="([^"#]*)')


def kind_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    path = re.sub(r"/\d+(?=/|$)", "/N", parts.path)
    return path, ",".join(sorted({k for k, _ in parse_qsl(parts.query)} - IGNORED_QUERY))


async def crawl(http: httpx.AsyncClient) -> tuple[int, list[str]]:
    """Open what the signed-in user reaches from the home page; (pages opened, problems found)."""
    problems: list[str] = []
    todo: list[tuple[str, str]] = [("/backoffice/", "start")]
    seen: set[tuple[str, str]] = set()
    kinds: dict[tuple[str, str], int] = {}
    opened = 0
    while todo and opened < MAX_PAGES:
        url, came_from = todo.pop(0)
        path, keys = kind_of(url)
        parent = path.rsplit("/", 1)[0] if path.count("/") > 2 else path
        if (path, keys) in seen or kinds.get((parent, keys), 0) >= SAME_KIND:
            continue
        seen.add((path, keys))
        kinds[(parent, keys)] = kinds.get((parent, keys), 0) + 1
        r = await http.get(url, follow_redirects=True)
        opened += 1
        if r.status_code == 403 or r.status_code >= 500 or r.status_code == 404:
            hops = " -> ".join(str(h.headers.get("location")) for h in r.history)
            problems.append(
                f"{url} (linked from {came_from}){' -> ' + hops if hops else ''}: {r.status_code}"
            )
            continue
        if "text/html" not in r.headers.get("content-type", ""):
            continue
        for href in LINK.findall(r.text):
            target = urljoin(str(r.url.path) + ("?" + r.url.query.decode() if r.url.query else ""), href)
            target = target.replace("&amp;", "&")
            if target.startswith("/backoffice/") and not SKIPPED.search(target):
                todo.append((target, url))
    return opened, problems


@pytest.mark.parametrize("roles", [ROLE_CODES])
async def test_no_page_links_a_role_to_a_page_it_cannot_open(db_url: str, roles: list[str]) -> None:
    emulators = {"p1": FAIL_ALL, "p2": FAIL_ALL, "p3": FAIL_ALL}
    async with ops_env(db_url, emulators=emulators) as (env, bo):
        await pay_all(env, [{"account": "9001111111"}, {"amount": "250.00", "account": "9000000009"}])
        await bo.user("maker", "financial_specialist")
        await login(bo.http, "maker")
        await _propose(bo.http, FEE_2PCT)
        async with bo.hub.sessions() as s:
            await switch_provider(s, "p3", None, None, "test")
            await s.commit()
        org = await agent_org(Bo(bo.app, env.hub, bo.http), "dealer")
        report: list[str] = []
        for role in roles:
            await bo.user(f"u-{role}", role, org=org if role == "agent" else None)
            async with bo.client() as http:
                assert (await login(http, f"u-{role}")).status_code == 303
                opened, problems = await crawl(http)
            assert opened >= 3, f"{role} reached only {opened} pages"
            report += [f"{role}: {p}" for p in problems]
        assert not report, "\n".join(report)


def test_links_to_pages_the_user_cannot_open_are_taken_out() -> None:
    load()
    cfo = Principal(
        kind="user", name="cfo", permissions=frozenset({"orgs.read"}), language="en", timezone="UTC"
    )
    assert may_open(cfo, "/backoffice/organizations/2")
    assert not may_open(cfo, "/backoffice/users?org=2")
    assert not may_open(None, "/backoffice/users")
    assert may_open(None, "/backoffice/login")
    assert may_open(cfo, "https://example.com/") and may_open(cfo, "?page=2")
    page = (
        '<a href="/backoffice/users?org=2&amp;x=1">7 users</a>'
        ' <a class="button" href="/backoffice/users/new">New</a>'
        ' <a href="/backoffice/organizations">Organizations</a>'
    )
    assert unlink_forbidden(page, cfo) == (
        '<span class="unlinked">7 users</span>  <a href="/backoffice/organizations">Organizations</a>'
    )
