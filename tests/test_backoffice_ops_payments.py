"""Payment search, details, queues and the dashboard over the real app, with real payments through
emulated providers, for users of different roles (agent users scoped to their channels)."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook
from sqlalchemy import select, update

from paymux.backoffice.sections.ops import money
from paymux.payments.models import Payment
from test_backoffice_ops_support import agent_org, ops_env, pay_all
from test_backoffice_support import login

FAIL_ALL = {"accounts": {"9000000009": {"pay": "fatal:77:account closed"}}}


def ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="payment-link">(\d+)<', html)]


async def test_payment_search_filters_sort_pages_export_and_details(db_url: str) -> None:
    emulators = {"p1": FAIL_ALL, "p2": FAIL_ALL, "p3": FAIL_ALL}
    async with ops_env(db_url, emulators=emulators) as (env, bo):
        specs = [{"amount": f"{10 + i}.00", "account": f"90012345{i:02d}"} for i in range(27)]
        specs += [{"channel": "web", "amount": "1500.50", "account": "9007654321"}]
        specs += [{"amount": "42.00", "account": "9000000009"}]
        done = await pay_all(env, specs)
        assert [d["status"] for d in done].count("succeeded") == 28 and done[-1]["status"] == "failed"
        await bo.user("sup", "support", timezone="Asia/Tokyo")
        await login(bo.http, "sup")

        r = await bo.http.get("/backoffice/payments")
        assert r.status_code == 200 and "29 found" in r.text
        assert ids(r.text) == sorted(ids(r.text), reverse=True) and len(ids(r.text)) == 25
        r2 = await bo.http.get("/backoffice/payments?page=2")
        assert len(ids(r2.text)) == 4 and not set(ids(r2.text)) & set(ids(r.text))

        r = await bo.http.get("/backoffice/payments?status=failed")
        assert ids(r.text) == [done[-1]["id"]] and "1 found" in r.text
        r = await bo.http.get("/backoffice/payments?channel=web")
        assert ids(r.text) == [done[27]["id"]]
        r = await bo.http.get("/backoffice/payments?provider=p1&status=succeeded")
        assert "28 found" in r.text
        r = await bo.http.get("/backoffice/payments?service=topup&account=9001234503")
        assert ids(r.text) == [done[3]["id"]]
        r = await bo.http.get("/backoffice/payments?amount_min=20&amount_max=22.50")
        assert sorted(ids(r.text)) == sorted(d["id"] for d in done[10:13])
        r = await bo.http.get(f"/backoffice/payments?id={done[5]['id']}")
        assert ids(r.text) == [done[5]["id"]]
        r = await bo.http.get(f"/backoffice/payments?external_id={done[6]['external_id']}")
        assert ids(r.text) == [done[6]["id"]]
        async with bo.hub.read_sessions() as s:
            txn = await s.scalar(select(Payment.provider_txn_id).where(Payment.id == done[7]["id"]))
        r = await bo.http.get(f"/backoffice/payments?txn={txn}")
        assert ids(r.text) == [done[7]["id"]]
        r = await bo.http.get(f"/backoffice/payments?q={txn}")
        assert ids(r.text) == [done[7]["id"]]
        r = await bo.http.get("/backoffice/payments?sort=amount&dir=asc")
        assert ids(r.text)[:3] == [done[0]["id"], done[1]["id"], done[2]["id"]]
        r = await bo.http.get("/backoffice/payments?sort=amount&dir=desc")
        assert ids(r.text)[0] == done[27]["id"]
        assert ">1,500.50<" in r.text  # in the user's language (English)
        r = await bo.http.get("/backoffice/payments?from=2000-01-01&to=2000-01-02")
        assert "0 found" in r.text

        x = await bo.http.get("/backoffice/payments?status=succeeded&sort=amount&dir=asc&export=xlsx")
        assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
        rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
        assert rows[0][:4] == ("ID", "Created", "Status", "Service")
        assert len(rows) == 29 and rows[1][7] == "10.00" and rows[-1][7] == "1500.50"
        assert {r[2] for r in rows[1:]} == {"succeeded"}

        # details: attempts with the exchange, postings, route reason
        failed = done[-1]["id"]
        page = await bo.http.get(f"/backoffice/payments/{failed}")
        assert page.status_code == 200
        assert page.text.count('class="card wide attempt"') == 3  # p1, p2, p3 all refused it
        assert "account closed" in page.text and "&#34;url&#34;" in page.text  # the exchange, escaped JSON
        ok = await bo.http.get(f"/backoffice/payments/{done[0]['id']}")
        assert 'id="postings"' in ok.text and "channel_collected:term" in ok.text
        assert "provider_deposit:p1" in ok.text
        async with bo.hub.read_sessions() as s:
            reason = await s.scalar(select(Payment.route_reason).where(Payment.id == done[0]["id"]))
        assert reason and reason.splitlines()[0] in ok.text
        assert (await bo.http.get("/backoffice/payments/999999")).status_code == 404


async def test_amounts_follow_the_users_language() -> None:
    assert money(123456789, "RUB", "en") == "1,234,567.89 RUB"
    assert money(123456789, "RUB", "ru") == "1\u00a0234\u00a0567,89 RUB"
    assert money(123456789, "RUB", "ro") == "1.234.567,89 RUB"
    assert money(-5, "JPY", "en") == "-5 JPY" and money(1000, "KWD", "ro", code=False) == "1,000"


async def test_agent_users_see_only_their_channels_payments(db_url: str) -> None:
    async with ops_env(db_url) as (env, bo):
        done = await pay_all(env, [{"channel": "term"}, {"channel": "web"}, {"channel": "term"}])
        org = await agent_org(bo)
        await bo.user("dealer.kim", "agent", org=org)
        await login(bo.http, "dealer.kim")
        r = await bo.http.get("/backoffice/payments")
        assert sorted(ids(r.text)) == sorted([done[0]["id"], done[2]["id"]])
        assert 'value="web"' not in r.text  # the channel filter offers only its channels
        assert (await bo.http.get(f"/backoffice/payments/{done[1]['id']}")).status_code == 404
        assert (await bo.http.get(f"/backoffice/payments/{done[0]['id']}")).status_code == 200
        x = await bo.http.get("/backoffice/payments?export=xlsx")
        rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
        assert sorted(r[0] for r in rows[1:]) == sorted([done[0]["id"], done[2]["id"]])
        q = await bo.http.get("/backoffice/queues?live=0")
        assert q.status_code == 200
        dash = await bo.http.get("/backoffice/dashboard")
        assert dash.status_code == 200 and '<span class="big" id="today-total">2</span>' in dash.text
        assert 'id="providers"' not in dash.text  # no provider information for agents
        assert (await bo.http.get("/backoffice/routing")).status_code == 403


async def test_queues_group_unfinished_payments_and_refresh_live(db_url: str) -> None:
    async with ops_env(db_url, run_workers=False) as (env, bo):
        for _ in range(3):
            assert (await env.pay("term")).status_code in (200, 201, 202)
        assert (await env.pay("web")).status_code in (200, 201, 202)
        async with bo.hub.sessions() as s:
            first = await s.scalar(select(Payment.id).order_by(Payment.id).limit(1))
            await s.execute(update(Payment).where(Payment.id == first).values(needs_attention=True))
            await s.commit()
        await bo.user("op", "operator")
        await login(bo.http, "op")
        r = await bo.http.get("/backoffice/queues")
        assert r.status_code == 200 and r.headers["refresh"] == "5"
        svc = re.search(r'id="queue-service">.*?</table>', r.text, re.S)
        assert svc and re.search(r">topup</a></td>\s*<td class=\"num\">4</td>", svc.group(0))
        prov = re.search(r'id="queue-provider">.*?</table>', r.text, re.S)
        assert prov and re.search(r">p1</a></td>\s*<td class=\"num\">4</td>", prov.group(0))
        assert "1 payments need attention" in r.text
        assert "refresh" not in (await bo.http.get("/backoffice/queues?live=0")).headers
        x = await bo.http.get("/backoffice/queues?export=xlsx")
        wb = load_workbook(io.BytesIO(x.content))
        assert wb.sheetnames == ["By service", "By provider", "By status"]
        by_status = list(wb["By status"].iter_rows(values_only=True))
        assert by_status[0][:2] == ("Group", "Unfinished") and by_status[1][:2] == ("accepted", 4)
        dash = await bo.http.get("/backoffice/dashboard")
        assert "1 payments need attention" in dash.text and 'id="today-total">4<' in dash.text
        mon = await bo.http.get("/backoffice/monitoring")
        assert re.search(r'id="q-due">4<', mon.text) and re.search(r'id="q-attention">1<', mon.text)


async def test_dashboard_today_success_rate_turnover_alerts(db_url: str) -> None:
    emulators = {"p1": FAIL_ALL, "p2": FAIL_ALL, "p3": FAIL_ALL}
    async with ops_env(db_url, emulators=emulators, deposits={"p1": 2500_00}) as (env, bo):
        specs = [{"amount": "1000.00"}, {"amount": "1000.00"}, {"amount": "1.00", "account": "9000000009"}]
        await pay_all(env, specs)
        await bo.user("cfo", "cfo", language="ru")
        await login(bo.http, "cfo")
        r = await bo.http.get("/backoffice/dashboard")
        assert r.status_code == 200
        assert 'id="today-total">3<' in r.text and 'id="success-rate">66%<' in r.text
        assert "2\u00a0000,00 RUB" in r.text  # turnover, in Russian conventions
        # p1 (prepaid): 2500.00 minus 2000.00 delivered = 500.00 left, below the last 24 hours' 2000.00
        alerts = re.search(r'id="alerts">.*?</section>', r.text, re.S)
        assert alerts and "p1" in alerts.group(0) and "500,00 RUB" in alerts.group(0)
        assert 'id="providers"' in r.text


async def test_monitoring_health_queues_and_database_size(db_url: str) -> None:
    from paymux import __version__

    async with ops_env(db_url) as (env, bo):
        await pay_all(env, [{}])
        await bo.user("op", "operator")
        await bo.user("cash", "cashier")
        await login(bo.http, "op")
        r = await bo.http.get("/backoffice/monitoring")
        assert r.status_code == 200 and r.headers["refresh"] == "15"
        assert f'id="version">{__version__}<' in r.text and "reachable" in r.text
        size = re.search(r'id="db-size" data-bytes="(\d+)"', r.text)
        assert size and int(size.group(1)) > 10_000
        assert re.search(r'id="q-due">0<', r.text) and 'id="register-tasks"' in r.text
        x = await bo.http.get("/backoffice/monitoring?export=xlsx")
        rows = dict(list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))[1:])
        assert rows["version"] == __version__ and rows["database_size_bytes"] == int(size.group(1))
        async with bo.client() as cash:
            await login(cash, "cash")
            assert (await cash.get("/backoffice/monitoring")).status_code == 403
