"""The back office's notification pages: the templates editor (validated before saving, reset,
audited, read-only without notifications.write) and the notifications sent with their delivery log."""

from __future__ import annotations

import html

from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.catalog.models import Agent
from paymux.notifications.models import DeliveryAttempt
from paymux.notifications.service import Action, Recipient, notify
from test_backoffice_support import bo_app, login, post_form

PAGE = "/backoffice/notification-templates/run.paid/sms/ru"


async def test_operator_edits_a_template_in_the_back_office(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("olga", "operator")
        await login(bo.http, "olga")
        r = await bo.http.get("/backoffice/notification-templates")
        assert r.status_code == 200 and 'href="/backoffice/notification-templates/run.paid/sms/ru"' in r.text
        r = await bo.http.get(PAGE)
        assert r.status_code == 200 and 'id="template-preview"' in r.text and "shipped" in r.text

        # a template that does not render is refused with the reason, the draft kept, nothing saved
        r = await post_form(bo.http, PAGE, PAGE, {"body": "{% if %}", "action": "save"})
        assert (
            r.status_code == 422 and "TemplateSyntaxError" in r.text and "{% if %}" in html.unescape(r.text)
        )
        r = await post_form(
            bo.http, PAGE, PAGE, {"body": "Оплачено {{ amount|money(currency) }}", "action": "save"}
        )
        assert r.status_code == 303
        r = await bo.http.get(PAGE)
        assert "The template is saved." in r.text or "Шаблон сохранён." in r.text
        assert "Оплачено 150.00 RUB" in r.text and 'id="reset-template"' in r.text
        listing = await bo.http.get("/backoffice/notification-templates")
        assert 'class="origin-override"' in listing.text and "olga" in listing.text
        r = await post_form(bo.http, PAGE, PAGE, {"action": "reset"})
        assert r.status_code == 303 and 'id="reset-template"' not in (await bo.http.get(PAGE)).text
        async with bo.hub.read_sessions() as s:
            actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all()
        assert list(actions)[-2:] == ["notification_template.put", "notification_template.reset"]
        for bad in (
            "/backoffice/notification-templates/run.paid/fax/ru",
            "/backoffice/notification-templates/X Y/sms/ru",
        ):
            assert (await bo.http.get(bad)).status_code == 404


async def test_support_reads_templates_and_notifications_but_cannot_edit(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            agent = Agent(code="bank", name="Bank")
            s.add(agent)
            await s.flush()
            [nid] = await notify(
                s,
                agent_id=agent.id,
                event="debt.confirm",
                recipient=Recipient(phone="+37369123456", language="en", reference="C-7"),
                data={"service": "Water", "amount": 12345, "currency": "RUB"},
                key="k1",
                channels=("sms",),
                actions=[Action("confirm", "https://bank.example/c", "secret-action-token")],
            )
            s.add(
                DeliveryAttempt(
                    notification_id=nid, ok=False, status_code=503, error="gateway busy", duration_ms=12
                )
            )
            await s.commit()
        await bo.user("sam", "support")
        await login(bo.http, "sam")
        r = await bo.http.get(PAGE)
        assert r.status_code == 200 and 'id="template-form"' not in r.text
        assert (await post_form(bo.http, PAGE, PAGE, {"body": "x", "action": "save"})).status_code == 403
        r = await bo.http.get("/backoffice/notifications", params={"q": "C-7"})
        assert r.status_code == 200 and "debt.confirm" in r.text and "1 found" in r.text
        r = await bo.http.get(f"/backoffice/notifications/{nid}")
        assert r.status_code == 200 and "gateway busy" in r.text and "123.45" in r.text
        assert "secret-action-token" not in r.text and "confirm" in r.text
        x = await bo.http.get("/backoffice/notifications", params={"export": "xlsx"})
        assert x.status_code == 200 and x.content[:2] == b"PK"
        await bo.user("cas", "cashier")
        other = bo.client()
        await login(other, "cas")
        assert (await other.get("/backoffice/notifications")).status_code == 403
        await other.aclose()
