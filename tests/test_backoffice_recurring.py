"""The back office's Recurring section: dashboard, subscribers found by reference / phone / account,
a subscriber's subscriptions and templates, a subscription's runs, the runs list, exports, scope."""

from __future__ import annotations

import datetime as dt
import io
import re

import openpyxl
import pytest
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.catalog.models import Agent, Service
from paymux.db.base import utcnow
from paymux.recurring.models import Customer, Run, Subscription, Template
from paymux.recurring.reminder_models import Reminder
from paymux.runtime import Hub
from test_backoffice_ops_support import agent_org, ops_env, pay_all
from test_backoffice_support import login, post_form


@pytest.fixture(autouse=True)
def _engine_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's own recurring engine stays off: these tests read the book they wrote."""
    monkeypatch.setenv("PAYMUX_RECURRING_ENABLED", "false")


async def _book(hub: Hub) -> dict[str, int]:
    """Two customers of the harness's agent and one of another agent, subscriptions of every kind
    and runs in several states."""
    now = utcnow()
    async with hub.sessions() as s:
        dealer = await s.scalar(select(Agent).where(Agent.code == "dealer"))
        service = await s.scalar(select(Service).where(Service.code == "topup"))
        assert dealer and service
        other = Agent(code="other-bank", name="Other bank")
        s.add(other)
        await s.flush()
        anna = Customer(
            agent_id=dealer.id,
            reference="C-1001",
            name="Anna",
            phone="+37369000001",
            currency="RUB",
            timezone="Europe/Chisinau",
            email="anna@example.org",
            month_limit=500000,
        )
        boris = Customer(
            agent_id=dealer.id, reference="C-1002", name="Boris", phone="+37369000002", currency="RUB"
        )
        stranger = Customer(agent_id=other.id, reference="X-1", name="Stranger", currency="RUB")
        s.add_all([anna, boris, stranger])
        await s.flush()
        t_anna = Template(
            customer_id=anna.id,
            key="t1",
            name="Phone",
            service_id=service.id,
            account="9001234567",
            amount=30000,
            currency="RUB",
        )
        t_boris = Template(
            customer_id=boris.id,
            key="t1",
            name="Home",
            service_id=service.id,
            account="5550001",
            amount=None,
            currency="RUB",
        )
        t_stranger = Template(
            customer_id=stranger.id,
            key="t1",
            name="Other",
            service_id=service.id,
            account="7770001",
            amount=1000,
            currency="RUB",
        )
        s.add_all([t_anna, t_boris, t_stranger])
        await s.flush()
        soon = now + dt.timedelta(hours=30)
        monthly = Subscription(
            customer_id=anna.id,
            template_id=t_anna.id,
            key="s1",
            kind="scheduled",
            currency="RUB",
            amount=30000,
            period="days",
            every_days=7,
            start_date=now.date(),
            next_due_at=soon,
        )
        threshold = Subscription(
            customer_id=anna.id,
            template_id=t_anna.id,
            key="s2",
            kind="threshold",
            currency="RUB",
            amount=10000,
            threshold=5000,
            poll_seconds=3600,
            start_date=now.date(),
            next_due_at=now,
        )
        debt = Subscription(
            customer_id=boris.id,
            template_id=t_boris.id,
            key="s1",
            kind="debt",
            currency="RUB",
            period="monthly",
            day_of_month=31,
            debt_limit=200000,
            start_date=now.date(),
            next_due_at=now + dt.timedelta(days=3),
        )
        paused = Subscription(
            customer_id=stranger.id,
            template_id=t_stranger.id,
            key="s1",
            kind="scheduled",
            currency="RUB",
            amount=1000,
            period="monthly",
            day_of_month=1,
            start_date=now.date(),
            status="active",
            next_due_at=soon,
        )
        s.add_all([monthly, threshold, debt, paused])
        await s.flush()
        runs = [
            Run(
                subscription_id=monthly.id,
                period_key="2026-11-30",
                scheduled_at=now,
                state="paid",
                currency="RUB",
                amount=30000,
                debit_key="d1",
                debit_reference="BANK-1",
                status="done",
                due_at=now,
            ),
            Run(
                subscription_id=monthly.id,
                period_key="2026-12-07",
                scheduled_at=now,
                state="refunded",
                currency="RUB",
                amount=30000,
                debit_key="d2",
                refund_key="r2",
                refund_reference="BANK-3",
                error_message="provider refused",
                status="done",
                due_at=now,
            ),
            Run(
                subscription_id=debt.id,
                period_key="2026-11-30",
                scheduled_at=now,
                state="failed",
                currency="RUB",
                amount=120000,
                debit_key="d3",
                error_message="insufficient funds",
                status="done",
                due_at=now,
            ),
            Run(
                subscription_id=paused.id,
                period_key="2026-12-01",
                scheduled_at=now,
                state="failed",
                currency="RUB",
                amount=1000,
                debit_key="d4",
                error_message="stranger's failure",
                status="done",
                due_at=now,
            ),
        ]
        s.add_all(runs)
        await s.commit()
        return {
            "anna": anna.id,
            "boris": boris.id,
            "stranger": stranger.id,
            "monthly": monthly.id,
            "stranger_sub": paused.id,
        }


async def test_support_finds_a_subscriber_and_reads_subscriptions_and_runs(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        ids = await _book(bo.hub)
        await bo.user("sam.support", "support")
        assert (await login(bo.http, "sam.support")).status_code in (200, 303)

        r = await bo.http.get("/backoffice/recurring")
        assert r.status_code == 200, r.text
        assert re.search(r'id="active-scheduled">2<', r.text) and re.search(r'id="active-debt">1<', r.text)
        assert re.search(r'id="active-threshold">1<', r.text)
        assert re.search(r'id="runs-failed">2<', r.text) and re.search(r'id="runs-paid">1<', r.text)
        assert "Failed runs: 3" in r.text
        # the upcoming charges chart covers 30 days and has a legend entry per kind it forecasts
        svg = r.text[r.text.index('id="charts"') :]
        assert svg.count("<svg") >= 2 and "scheduled" in svg and "debt" in svg

        for term, found in (("C-1001", "Anna"), ("+37369000002", "Boris"), ("anna@example", "Anna")):
            r = await bo.http.get("/backoffice/recurring/customers", params={"q": term})
            assert r.status_code == 200 and found in r.text and "1 found" in r.text, term
        r = await bo.http.get("/backoffice/recurring/customers", params={"account": "5550001"})
        assert "Boris" in r.text and "Anna" not in r.text

        r = await bo.http.get(f"/backoffice/recurring/customers/{ids['anna']}")
        assert r.status_code == 200
        assert "Europe/Chisinau" in r.text and r.text.count('class="subscription-link"') == 2
        assert "9001234567" in r.text

        r = await bo.http.get(f"/backoffice/recurring/subscriptions/{ids['monthly']}")
        assert r.status_code == 200 and "every 7 days" in r.text
        assert "BANK-3" in r.text and "provider refused" in r.text and "2 found" in r.text

        r = await bo.http.get("/backoffice/recurring/runs", params={"state": "failed"})
        assert "insufficient funds" in r.text and "stranger&#39;s failure" in r.text and "2 found" in r.text
        x = await bo.http.get("/backoffice/recurring/runs", params={"state": "failed", "export": "xlsx"})
        assert x.status_code == 200
        sheet = openpyxl.load_workbook(io.BytesIO(x.content)).active
        assert sheet is not None
        cells = [[c.value for c in row] for row in sheet.iter_rows()]
        assert len(cells) == 3 and any("insufficient funds" in map(str, row) for row in cells)

        assert (await bo.http.get("/backoffice/recurring/customers/999999")).status_code == 404
        assert (await bo.http.get("/backoffice/recurring/subscriptions/0")).status_code in (404, 422)


async def test_an_agents_user_sees_no_subscribers(db_url: str) -> None:
    """Agents' users hold no recurring.read (the admin API's customer search is not scoped to an
    agent), whatever role they were given; the section refuses them."""
    async with ops_env(db_url) as (_env, bo):
        await _book(bo.hub)
        org = await agent_org(bo)
        await bo.user("dealer.kim", "operator", org=org)
        await login(bo.http, "dealer.kim")
        for url in ("/backoffice/recurring", "/backoffice/recurring/customers", "/backoffice/recurring/runs"):
            assert (await bo.http.get(url)).status_code == 403, url


async def test_roles_without_recurring_read_are_refused(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        await bo.user("cas.cashier", "cashier")
        await login(bo.http, "cas.cashier")
        for url in ("/backoffice/recurring", "/backoffice/recurring/customers", "/backoffice/recurring/runs"):
            assert (await bo.http.get(url)).status_code == 403, url
        home = await bo.http.get("/backoffice/")
        assert "/backoffice/recurring" not in home.text


async def test_support_pauses_resumes_and_cancels_with_a_reason_audited(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        ids = await _book(bo.hub)
        await bo.user("sam.support", "support")
        await login(bo.http, "sam.support")
        page = f"/backoffice/recurring/subscriptions/{ids['monthly']}"
        r = await post_form(bo.http, page, f"{page}/pause", {"reason": ""})
        assert r.status_code == 303
        r = await bo.http.get(page)
        assert "Give a reason." in r.text and 'id="sub-status" class="state-active"' in r.text
        r = await post_form(bo.http, page, f"{page}/pause", {"reason": "customer called: on holiday"})
        r = await bo.http.get(page)
        assert "The subscription is paused." in r.text and "on holiday" in r.text
        async with bo.hub.read_sessions() as s:
            sub = await s.get(Subscription, ids["monthly"])
            assert sub is not None and sub.status == "paused"
        r = await post_form(bo.http, page, f"{page}/resume", {"reason": ""})
        r = await bo.http.get(page)
        assert "The subscription is resumed." in r.text
        r = await post_form(bo.http, page, f"{page}/cancel", {"reason": "moved abroad"})
        r = await bo.http.get(page)
        assert "The subscription is cancelled." in r.text and 'id="subscription-actions"' not in r.text
        # a cancelled subscription cannot come back: the page says why, nothing changes
        r = await post_form(bo.http, page, f"{page}/resume", {"reason": ""})
        assert "cannot be resumed" in (await bo.http.get(page)).text
        async with bo.hub.read_sessions() as s:
            events = (
                await s.scalars(
                    select(AuditEvent.action).where(AuditEvent.action.like("recurring.subscription.%"))
                )
            ).all()
        assert sorted(events) == [
            "recurring.subscription.cancel",
            "recurring.subscription.pause",
            "recurring.subscription.resume",
        ]
        assert (await bo.http.post(f"{page}/explode", data={})).status_code in (403, 404)


async def test_a_reader_cannot_act(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        ids = await _book(bo.hub)
        await bo.user("cfo", "cfo")
        await login(bo.http, "cfo")
        page = f"/backoffice/recurring/subscriptions/{ids['monthly']}"
        r = await bo.http.get(page)
        assert r.status_code == 200 and 'id="subscription-actions"' not in r.text
        r = await post_form(bo.http, page, f"{page}/pause", {"reason": "no"})
        assert r.status_code == 403


async def test_the_dashboard_counts_reminders_and_their_conversion(db_url: str) -> None:
    async with ops_env(db_url) as (env, bo):
        done = await pay_all(env, [{"account": f"900000000{i}"} for i in range(3)])
        now = utcnow()
        async with bo.hub.sessions() as s:
            dealer = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            service = await s.scalar(select(Service.id).where(Service.code == "topup"))
            assert dealer and service
            for i, p in enumerate(done):
                s.add(
                    Reminder(
                        agent_id=dealer,
                        reference=f"C-{i}",
                        service_id=service,
                        account=p["account"],
                        amount=10000,
                        currency="RUB",
                        payment_id=p["id"],
                        paid_at=now,
                        due_at=now,
                        status="sent",
                        sent_at=now,
                        repeated_at=now if i == 0 else None,
                        subscribed_at=now if i == 1 else None,
                    )
                )
            await s.commit()
        await bo.user("op", "operator")
        await login(bo.http, "op")
        r = await bo.http.get("/backoffice/recurring")
        assert re.search(r'id="reminders-sent">3<', r.text) and re.search(
            r'id="reminders-converted">2<', r.text
        )
        assert re.search(r'id="reminders-rate">66%<', r.text)
        assert "Reminders and their conversion" in r.text and "Opted out" in r.text


async def test_support_retries_a_failed_run_from_the_queue(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        await _book(bo.hub)
        await bo.user("sam.support", "support")
        await login(bo.http, "sam.support")
        queue = "/backoffice/recurring/runs?queue=failed"
        r = await bo.http.get(queue)
        # the two runs that debited nothing can be retried; the refunded one cannot (its payment was made)
        assert r.text.count('class="retry-run"') == 2
        async with bo.hub.read_sessions() as s:
            failed = (await s.scalars(select(Run).where(Run.debit_key == "d3"))).one()
            refunded = (await s.scalars(select(Run).where(Run.debit_key == "d2"))).one()
        r = await post_form(bo.http, queue, f"/backoffice/recurring/runs/{failed.id}/retry", {})
        assert r.status_code == 303
        assert "The run will be tried again." in (await bo.http.get(queue)).text
        async with bo.hub.read_sessions() as s:
            again = await s.get(Run, failed.id)
            assert again is not None and again.state == "due" and again.status == "pending"
            assert again.debit_key == "d3.r1"
            events = (
                await s.scalars(select(AuditEvent.action).where(AuditEvent.action == "recurring.run.retry"))
            ).all()
            assert len(events) == 1
        r = await post_form(bo.http, queue, f"/backoffice/recurring/runs/{refunded.id}/retry", {})
        assert "only a final run that debited nothing" in (await bo.http.get(queue)).text
