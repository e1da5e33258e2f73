"""Notifications: notify() (idempotency, channel selection, never commits), templates in three
languages with overrides and fallbacks, the sandbox, the customer's listing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paymux.catalog.models import Agent
from paymux.notifications import templates as T
from paymux.notifications.models import Notification, NotificationTemplate, WebhookEndpoint
from paymux.notifications.service import Action, Recipient, notifications_for, notify

PERSON = Recipient(
    name="Ion Popescu",
    phone="+37369123456",
    email="ion@example.com",
    language="ro",
    timezone="Europe/Chisinau",
    reference="c-1",
)
DATA = {
    "service": "Orange top-up",
    "account": "69123456",
    "amount": 15050,
    "currency": "MDL",
    "due_at": dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC),  # 1 January in Chisinau
}


async def make_agent(
    sessions: async_sessionmaker[AsyncSession], code: str = "bank", webhook: bool = True
) -> int:
    async with sessions() as s:
        agent = Agent(code=code, name=code.title(), enabled=True)
        s.add(agent)
        await s.flush()
        if webhook:
            s.add(
                WebhookEndpoint(agent_id=agent.id, url="http://127.0.0.1:9/hook", secret="whsec_" + "A" * 32)
            )
        await s.commit()
        return agent.id


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Notification)) or 0)


async def test_notify_records_one_row_per_channel_and_is_idempotent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(sessions)
    actions = [Action("confirm", "https://bank.example/c/1", "tok-1"), Action("decline")]
    async with sessions() as s:
        ids = await notify(
            s, agent_id=agent, event="charge.upcoming", recipient=PERSON, data=DATA, key="k1", actions=actions
        )
        await s.commit()
    assert len(ids) == 3
    async with sessions() as s:
        rows = {n.channel: n for n in (await s.scalars(select(Notification).order_by(Notification.id))).all()}
    assert set(rows) == {"webhook", "sms", "email"}
    assert all(n.status == "pending" and n.attempts == 0 for n in rows.values())
    assert rows["sms"].address == "+37369123456" and rows["email"].address == "ion@example.com"
    # Romanian, amount from minor units, the date in the customer's time zone (already 1 January there)
    assert "150.50 MDL" in rows["sms"].body and "01.01.2027" in rows["sms"].body
    assert rows["sms"].body.startswith(
        "Pe 01.01.2027 se vor plăti 150.50 MDL pentru Orange top-up (69123456)"
    )
    assert "Confirmă: https://bank.example/c/1" in rows["sms"].body
    assert rows["email"].subject == "Plată programată: Orange top-up"
    assert rows["email"].body.startswith("Bună ziua, Ion Popescu,")
    assert rows["webhook"].payload["data"]["due_at"] == "2026-12-31T23:30:00+00:00"
    assert rows["webhook"].payload["actions"][0] == {
        "name": "confirm",
        "url": "https://bank.example/c/1",
        "token": "tok-1",
    }
    # the same key again: nothing new, the same ids
    async with sessions() as s:
        again = await notify(
            s, agent_id=agent, event="charge.upcoming", recipient=PERSON, data=DATA, key="k1"
        )
        await s.commit()
    assert again == ids
    assert await count(sessions) == 3
    # the key is the agent's own: another agent may use it
    other = await make_agent(sessions, "other")
    async with sessions() as s:
        assert (
            len(await notify(s, agent_id=other, event="run.paid", recipient=None, data=DATA, key="k1")) == 1
        )
        await s.commit()


async def test_channels_that_apply(sessions: async_sessionmaker[AsyncSession]) -> None:
    no_hook = await make_agent(sessions, "nohook", webhook=False)
    hooked = await make_agent(sessions, "hooked")
    async with sessions() as s:
        # no endpoint, no recipient: nothing at all
        assert await notify(s, agent_id=no_hook, event="run.paid", recipient=None, data={}, key="a") == []
        # a phone that is not E.164 and no e-mail: nothing
        bad = Recipient(phone="8 916 123", email="not-an-address")
        assert await notify(s, agent_id=no_hook, event="run.paid", recipient=bad, data={}, key="b") == []
        # e-mail only
        ids = await notify(
            s, agent_id=no_hook, event="run.paid", recipient=Recipient(email="a@b.example"), data={}, key="c"
        )
        assert [n.channel for n in await rows_of(s, ids)] == ["email"]
        # the caller narrows the channels
        ids = await notify(
            s, agent_id=hooked, event="run.paid", recipient=PERSON, data=DATA, key="d", channels=["sms"]
        )
        assert [n.channel for n in await rows_of(s, ids)] == ["sms"]
        with pytest.raises(ValueError, match="unknown notification channels"):
            await notify(
                s, agent_id=hooked, event="run.paid", recipient=None, data={}, key="e", channels=["fax"]
            )
        await s.commit()
    async with sessions() as s:
        endpoint = await s.scalar(select(WebhookEndpoint))
        assert endpoint is not None
        endpoint.enabled = False
        await s.commit()
    async with sessions() as s:
        # a disabled endpoint gets nothing
        assert await notify(s, agent_id=hooked, event="run.paid", recipient=None, data={}, key="f") == []


async def rows_of(s: AsyncSession, ids: list[int]) -> list[Notification]:
    return list((await s.scalars(select(Notification).where(Notification.id.in_(ids)))).all())


async def test_notify_never_commits(sessions: async_sessionmaker[AsyncSession]) -> None:
    agent = await make_agent(sessions)
    async with sessions() as s:
        ids = await notify(s, agent_id=agent, event="run.failed", recipient=PERSON, data=DATA, key="x")
        assert ids
        await s.rollback()  # the caller's state change failed: its notices go with it
    assert await count(sessions) == 0


@pytest.mark.parametrize(
    ("language", "sms", "subject"),
    [
        ("en", "150.50 MDL paid for Orange top-up (69123456) on 2027-01-01.", "Payment made: Orange top-up"),
        (
            "ru",
            "Оплачено 150.50 MDL за Orange top-up (69123456) 01.01.2027.",
            "Платёж выполнен: Orange top-up",
        ),
        (
            "ro-MD",
            "Au fost plătiți 150.50 MDL pentru Orange top-up (69123456) pe 01.01.2027.",
            "Plată efectuată",
        ),
        ("de", "150.50 MDL paid for Orange top-up (69123456) on 2027-01-01.", "Payment made: Orange top-up"),
    ],
)
async def test_templates_in_three_languages(
    sessions: async_sessionmaker[AsyncSession], language: str, sms: str, subject: str
) -> None:
    agent = await make_agent(sessions, webhook=False)
    person = Recipient(
        phone="+37369123456", email="ion@example.com", language=language, timezone="Europe/Chisinau"
    )
    data = {**DATA, "paid_at": "2026-12-31T22:15:00Z"}
    async with sessions() as s:
        ids = await notify(s, agent_id=agent, event="run.paid", recipient=person, data=data, key="p")
        rows = {n.channel: n for n in await rows_of(s, ids)}
        await s.commit()
    assert rows["sms"].body == sms
    assert (rows["email"].subject or "").startswith(subject)
    assert rows["sms"].language == (language[:2] if language[:2] in T.LANGUAGES else "en")


async def test_unknown_event_falls_back_to_the_generic_template(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(sessions, webhook=False)
    person = Recipient(phone="+37369123456", email="ion@example.com", language="ru")
    data = {
        "invoice": "INV-7",
        "amount": 120000,
        "currency": "RUB",
        "when": Decimal("1.5"),
        "weird": object(),
    }
    async with sessions() as s:
        ids = await notify(s, agent_id=agent, event="invoice.issued", recipient=person, data=data, key="i")
        rows = {n.channel: n for n in await rows_of(s, ids)}
        await s.commit()
    assert rows["sms"].body.startswith("Уведомление: invoice.issued")
    assert "amount: 1200.00 RUB" in rows["sms"].body and "invoice: INV-7" in rows["sms"].body
    assert rows["email"].subject == "Уведомление: invoice.issued"
    assert "when: 1.5" in rows["email"].body


async def test_overrides_win_and_a_broken_override_falls_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(sessions, webhook=False)
    async with sessions() as s:
        s.add(
            NotificationTemplate(
                event="run.paid", channel="sms", language="ru", body="Платёж {{ amount|money(currency) }}!"
            )
        )
        # renders to an error at run time (a number divided by zero): the shipped text is used
        s.add(NotificationTemplate(event="run.paid", channel="sms", language="en", body="{{ 1 // 0 }}"))
        # an override in English is used for a language that has none of its own
        s.add(
            NotificationTemplate(
                event="run.failed",
                channel="email",
                language="en",
                subject="Oops {{ service }}",
                body="Failed.",
            )
        )
        await s.commit()
    ru = Recipient(phone="+37369123456", language="ru")
    en = Recipient(phone="+37369123456", language="en")
    ro = Recipient(email="x@y.example", language="ro")
    async with sessions() as s:
        [a] = await notify(s, agent_id=agent, event="run.paid", recipient=ru, data=DATA, key="1")
        [b] = await notify(s, agent_id=agent, event="run.paid", recipient=en, data=DATA, key="2")
        [c] = await notify(s, agent_id=agent, event="run.failed", recipient=ro, data=DATA, key="3")
        rows = {n.id: n for n in await rows_of(s, [a, b, c])}
        await s.commit()
    assert rows[a].body == "Платёж 150.50 MDL!"
    assert rows[b].body.startswith("150.50 MDL paid for Orange top-up")
    # Romanian has a shipped template of its own: it comes before the English override
    assert rows[c].subject == "Plată eșuată: Orange top-up"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{% for x in range(10) %}", "TemplateSyntaxError"),
        ("{{ 'x' * 10000000 }}", "not allowed"),
        ("{{ 10 ** 10000 }}", "not allowed"),
        ("{{ data.update({'a': 1}) }}", "not allowed"),
        ("{{ amount.nope.deeper }}", "UndefinedError"),
        ("{{ 1 // 0 }}", "fails when rendered"),
    ],
)
def test_the_sandbox_refuses(source: str, message: str) -> None:
    with pytest.raises(T.TemplateProblem, match=message):
        T.check(T.Source(None, source), "run.paid", "sms", "en")


def test_every_shipped_template_renders_its_sample() -> None:
    for event in T.known_events():
        for language in T.LANGUAGES:
            for channel in T.TEMPLATE_CHANNELS:
                source = T.shipped(event, channel, language)
                assert source is not None, (event, channel, language)
                out = T.check(source, event, channel, language)
                who = T.sample_data(event).get("biller", "Mobile top-up")  # an invoice's: its biller
                assert who in out.body and "150.00 RUB" in out.body, (event, language, out.body)
                assert "{{" not in out.body and "{%" not in out.body
    for language in T.LANGUAGES:
        for channel in T.TEMPLATE_CHANNELS:
            source = T.shipped(T.GENERIC, channel, language)
            assert source is not None
            assert "service: Mobile top-up" in T.check(source, "x.y", channel, language).body


async def test_the_customers_notifications(sessions: async_sessionmaker[AsyncSession]) -> None:
    agent = await make_agent(sessions)
    other = await make_agent(sessions, "other")
    async with sessions() as s:
        await notify(s, agent_id=agent, event="run.paid", recipient=PERSON, data=DATA, key="1")
        await notify(
            s,
            agent_id=agent,
            event="debt.confirm",
            recipient=PERSON,
            data=DATA,
            key="2",
            actions=[Action("confirm", "https://b.example/c", "secret-token")],
        )
        await notify(s, agent_id=other, event="run.paid", recipient=PERSON, data=DATA, key="3")
        await s.commit()
    async with sessions() as s:
        mine = await notifications_for(s, agent, "c-1")
        assert [(n["event"], n["channel"]) for n in mine] == [
            ("debt.confirm", "email"),
            ("debt.confirm", "sms"),
            ("debt.confirm", "webhook"),
            ("run.paid", "email"),
            ("run.paid", "sms"),
            ("run.paid", "webhook"),
        ]
        assert mine[0]["actions"] == [{"name": "confirm", "url": "https://b.example/c"}]  # no token
        assert "secret-token" not in str(mine)
        page = await notifications_for(s, agent, "c-1", channels=["sms"], limit=1)
        assert [n["event"] for n in page] == ["debt.confirm"]
        page2 = await notifications_for(s, agent, "c-1", channels=["sms"], before_id=page[0]["id"])
        assert [n["event"] for n in page2] == ["run.paid"]
        assert await notifications_for(s, agent, "nobody") == []


async def test_text_the_database_cannot_store_is_cleaned_or_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_agent(sessions)
    person = Recipient(phone="+37369123456", email="a@b.example", reference="c-1")
    data = {"service": "Wa\x00ter", "amount": 100, "currency": "RUB", "no\x00te": "x\x00"}
    async with sessions() as s:
        ids = await notify(s, agent_id=agent, event="run.paid", recipient=person, data=data, key="nul")
        await s.commit()
    async with sessions() as s:
        rows = await rows_of(s, ids)
    assert len(rows) == 3 and all("\x00" not in (r.body + (r.subject or "")) for r in rows)
    assert rows[0].payload["data"] == {"service": "Water", "amount": 100, "currency": "RUB", "note": "x"}
    async with sessions() as s:
        for bad in ("x" * 201, "a\x00b", ""):
            with pytest.raises(ValueError, match=r"reference"):
                await notify(
                    s, agent_id=agent, event="run.paid", recipient=Recipient(reference=bad), data={}, key="r"
                )
        for key in ("", "k" * 201, "k\x00"):
            with pytest.raises(ValueError, match="key"):
                await notify(s, agent_id=agent, event="run.paid", recipient=None, data={}, key=key)
        with pytest.raises(ValueError, match="event"):
            await notify(s, agent_id=agent, event="Run Paid", recipient=None, data={}, key="k")


@pytest.mark.parametrize(
    ("value", "language", "shown"),
    [
        ("2026-07-01T12:00:00Z", "ru", "01.07.2026 15:00"),  # summer time in Chisinau: UTC+3
        ("2026-01-01T12:00:00+00:00", "ro", "01.01.2026 14:00"),  # winter: UTC+2
        ("2026-10-24T23:30:00Z", "en", "2026-10-25 02:30"),  # the last hour of summer time ...
        ("2026-10-25T00:30:00Z", "en", "2026-10-25 02:30"),  # ... and the same wall time again after it
        (dt.datetime(2026, 3, 28, 23, 59, tzinfo=dt.UTC), "en", "2026-03-29 01:59"),
        (dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.UTC), "en", "2026-03-29 03:00"),  # 02:xx never happens
        (dt.datetime(2026, 3, 29, 0, 0), "en", "2026-03-29 03:00"),  # naive: taken as UTC
        ("2026-12-31", "ru", "31.12.2026"),  # a date stays that date
        ("not a date", "en", "not a date"),
        (None, "en", ""),
    ],
)
def test_datetimes_are_shown_in_the_customers_time_zone(value: object, language: str, shown: str) -> None:
    ctx = T.context(
        event="x.y",
        data={"t": value},
        language=language,
        timezone="Europe/Chisinau",
        customer_name=None,
        reference=None,
        actions=[],
    )
    assert T.render_source(T.Source(None, "{{ t|datetime }}"), ctx).body == shown


def test_amounts_from_minor_units() -> None:
    ctx = T.context(
        event="x.y", data={}, language="en", timezone="UTC", customer_name=None, reference=None, actions=[]
    )
    for source, shown in [
        ("{{ 15050|money('RUB') }}", "150.50 RUB"),
        ("{{ 1500|money('JPY') }}", "1500 JPY"),
        ("{{ 1|money('KWD') }}", "0.001 KWD"),
        ("{{ -250|money('EUR') }}", "-2.50 EUR"),
        ("{{ '15050'|money('RUB') }}", "150.50 RUB"),
        ("{{ 15050|money('XXZ') }}", "15050 XXZ"),  # an unknown currency: the number as it is
        ("{{ nothing|money('RUB') }}", ""),
        ("{{ 1.5|money('RUB') }}", "1.5"),  # not minor units: shown as given, never rounded
    ]:
        assert T.render_source(T.Source(None, source), ctx).body == shown, source
