"""The Registers back-office section used like a browser: templates (create, readable errors, edit with
masked secrets kept, enable/disable, each audited), sending tasks built by the register worker (list,
filters, file download, manual retry, regenerate), Excel exports, and who may do what."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import socket
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import pytest
import yaml
from openpyxl import load_workbook
from sqlalchemy import func, select

from harness import Env
from paymux.audit.models import AuditEvent
from paymux.registers.models import RegisterTask, RegisterTemplate
from paymux.registers.settings import RegisterSettings
from paymux.registers.worker import RegisterWorker
from registers_helpers import TZ, catalog, expected_rows, make_payments, place_in_period, yesterday
from test_backoffice_ops_support import ops_env
from test_backoffice_support import Bo, flash_of, follow, form_token, login, post_form

FAST = RegisterSettings(settle_seconds=0, lease_seconds=30)
NEW = "/backoffice/registers/templates/new"
SETTINGS = {
    "columns": [{"field": "id"}, {"field": "account"}, {"field": "amount"}],
    "csv": {"header": False},
    "totals": False,
    "file_name": "{provider}_{date:%Y%m%d}.{ext}",
    "deliveries": [
        {
            "kind": "sftp",
            "host": "127.0.0.1",
            "username": "hub",
            "password": "top-secret",
            "host_key": "ssh-ed25519 AAAA",
        }
    ],
}


@pytest.fixture
async def site(db_url: str) -> AsyncIterator[tuple[Env, Bo]]:
    async with ops_env(db_url, catalog=catalog()) as (env, bo):
        await place_in_period(env.hub, await make_payments(env, 4), yesterday())
        await bo.user("op", "operator")  # registers.read and registers.write
        await bo.user("acc", "accountant")  # registers.read only
        await bo.user("cash", "cashier")  # neither
        yield env, bo


def textarea(html: str, name: str) -> str:
    m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert m, f"no textarea {name}"
    return unescape(m.group(1))


def sheet(content: bytes) -> list[tuple[Any, ...]]:
    ws = load_workbook(io.BytesIO(content)).active
    assert ws is not None
    return list(ws.iter_rows(values_only=True))


async def actions(bo: Bo, prefix: str) -> list[AuditEvent]:
    async with bo.hub.read_sessions() as s:
        rows = await s.scalars(
            select(AuditEvent).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.seq)
        )
        return list(rows.all())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_templates_create_errors_edit_toggle_audited(site: tuple[Env, Bo]) -> None:
    _, bo = site
    assert (await login(bo.http, "op")).status_code == 303
    form = {"provider": "p1", "code": "daily-csv", "name": "Daily CSV", "kind": "daily", "format": "csv"}

    # invalid: an unknown column, unreadable YAML, a bad pattern: a readable error, nothing stored
    bad_settings = [
        (yaml.safe_dump({**SETTINGS, "columns": [{"field": "secret_sauce"}]}), "unknown field"),
        ("columns: [field: id\n  - :", "not readable YAML"),
        (yaml.safe_dump({**SETTINGS, "file_name": "{nope}.csv"}), "nope"),
        (yaml.safe_dump({**SETTINGS, "code": "other"}), "set by the form"),
    ]
    for text, reason in bad_settings:
        r = await post_form(bo.http, NEW, NEW, {**form, "enabled": "1", "settings": text})
        assert r.status_code == 422, r.text
        error = unescape(re.search(r'id="form-error">(.*?)</pre>', r.text, re.S).group(1))  # type: ignore[union-attr]
        assert reason in error, (reason, error)
        assert textarea(r.text, "settings") == text  # what was typed is kept for correction
    async with bo.hub.read_sessions() as s:
        assert await s.scalar(select(func.count()).select_from(RegisterTemplate)) == 0
    assert await actions(bo, "register_template") == []

    # valid (JSON works as well as YAML)
    r = await post_form(bo.http, NEW, NEW, {**form, "enabled": "1", "settings": json.dumps(SETTINGS)})
    assert r.status_code == 303, r.text
    page_url = r.headers["location"].split("?")[0]
    tid = int(page_url.rsplit("/", 1)[1])
    page = await bo.http.get(page_url)
    assert page.status_code == 200 and "***" in page.text and "top-secret" not in page.text
    shown = textarea(page.text, "settings")
    assert yaml.safe_load(shown)["deliveries"][0]["password"] == "***"

    # edit: rename, keep the masked secret, change a column
    edited = yaml.safe_load(shown)
    edited["columns"].append({"field": "final_at"})
    r = await post_form(
        bo.http,
        page_url,
        page_url,
        {**form, "name": "Daily CSV renamed", "enabled": "1", "settings": yaml.safe_dump(edited)},
    )
    assert r.status_code == 303 and flash_of((await follow(bo.http, r)).text) == "Saved."
    async with bo.hub.read_sessions() as s:
        tpl = await s.get(RegisterTemplate, tid)
        assert tpl is not None and tpl.name == "Daily CSV renamed" and tpl.enabled
        assert tpl.config["deliveries"][0]["password"] == "top-secret"
        assert [c["field"] for c in tpl.config["columns"]] == ["id", "account", "amount", "final_at"]
    # an invalid edit changes nothing
    r = await post_form(bo.http, page_url, page_url, {**form, "format": "pdf", "settings": shown})
    assert r.status_code == 422 and "form-error" in r.text

    # disable, enable
    r = await post_form(bo.http, page_url, f"{page_url}/disable", {})
    assert r.status_code == 303
    async with bo.hub.read_sessions() as s:
        tpl = await s.get(RegisterTemplate, tid)
        assert tpl is not None and not tpl.enabled and tpl.name == "Daily CSV renamed"
        assert tpl.config["deliveries"][0]["password"] == "top-secret"
    r = await post_form(bo.http, page_url, f"{page_url}/enable", {})
    assert r.status_code == 303

    events = await actions(bo, "register_template")
    assert [e.action for e in events] == [
        "register_template.create",
        "register_template.update",
        "register_template.disable",
        "register_template.enable",
    ]
    assert all(e.actor == "user:op" and e.target == f"register_template:{tid}" for e in events)
    create, update, disable, _ = events
    assert create.before is None and create.after["code"] == "daily-csv"
    assert update.before["name"] == "Daily CSV" and update.after["name"] == "Daily CSV renamed"
    assert len(update.after["columns"]) == 4 and len(update.before["columns"]) == 3
    assert disable.before["enabled"] is True and disable.after["enabled"] is False
    assert all("top-secret" not in json.dumps([e.before, e.after]) for e in events)

    # list: filter, search, sort, export
    p2 = {"provider": "p2", "code": "p2-monthly", "kind": "monthly", "format": "xlsx"}
    await post_form(
        bo.http, NEW, NEW, {**form, **p2, "settings": yaml.safe_dump({"columns": [{"field": "id"}]})}
    )
    page = await bo.http.get("/backoffice/registers?provider=p1")
    assert "daily-csv" in page.text and "p2-monthly" not in page.text and "1 found" in page.text
    page = await bo.http.get("/backoffice/registers?q=monthly&sort=code&dir=asc")
    assert "p2-monthly" in page.text and "daily-csv" not in page.text
    rows = sheet((await bo.http.get("/backoffice/registers?export=xlsx&sort=provider&dir=asc")).content)
    assert rows[0][:5] == ("Provider", "Code", "Name", "Kind", "Format")
    assert [r[:6] for r in rows[1:]] == [
        ("p1", "daily-csv", "Daily CSV renamed", "daily", "csv", True),
        ("p2", "p2-monthly", "Daily CSV", "monthly", "xlsx", False),
    ]
    assert rows[1][6] == "sftp"

    # who may do what
    async with bo.client() as acc:
        await login(acc, "acc")
        page = await acc.get(page_url)
        assert page.status_code == 200 and 'id="save"' not in page.text and "top-secret" not in page.text
        assert (await acc.get(NEW)).status_code == 403
        r = await acc.post(f"{page_url}/disable", data={"csrf_token": form_token(page.text)})
        assert r.status_code == 403
    async with bo.client() as cash:
        await login(cash, "cash")
        assert (await cash.get("/backoffice/registers")).status_code == 403
        assert (await cash.get("/backoffice/registers/tasks")).status_code == 403
        assert "/backoffice/registers" not in (await cash.get("/backoffice/")).text
    async with bo.hub.read_sessions() as s:
        tpl = await s.get(RegisterTemplate, tid)
        assert tpl is not None and tpl.enabled


async def test_tasks_list_file_retry_regenerate_export(site: tuple[Env, Bo]) -> None:
    env, bo = site
    base = "/api/v1/admin/providers/p1/register-templates"
    good = {"code": "daily-csv", "name": "Daily CSV", "format": "csv", **SETTINGS, "deliveries": []}
    r = await env.http.post(base, json=good, headers=env.admin)
    assert r.status_code == 201, r.text
    good_id = r.json()["id"]
    ftp = {"kind": "ftp", "host": "127.0.0.1", "port": free_port(), "password": "ftp-secret"}
    failing = {**good, "code": "to-ftp", "deliveries": [ftp], "retry": {"max_attempts": 1}}
    r = await env.http.post(base, json=failing, headers=env.admin)
    assert r.status_code == 201, r.text
    bad_id = r.json()["id"]
    assert (await login(bo.http, "op")).status_code == 303
    regen = "/backoffice/registers/regenerate"

    # regenerate through the form: a period not over yet is refused with the reason
    today = dt.datetime.now(TZ).date().isoformat()  # the provider's day (Moscow), not UTC's
    r = await post_form(bo.http, regen, regen, {"template_id": str(good_id), "date": today, "deliver": "1"})
    assert r.status_code == 422 and "not over yet" in r.text
    r = await post_form(bo.http, regen, regen, {"template_id": "", "date": ""})
    assert r.status_code == 422 and "Choose the template" in r.text
    for tid, deliver in ((good_id, ""), (bad_id, "1")):
        data = {"template_id": str(tid), "date": yesterday().key, "deliver": deliver}
        r = await post_form(bo.http, f"{regen}?template_id={tid}", regen, data)
        assert r.status_code == 303 and "/backoffice/registers/tasks" in r.headers["location"]

    assert await RegisterWorker(env.hub, FAST).run_once() == 2
    async with bo.hub.read_sessions() as s:
        tasks = {t.template_id: t for t in (await s.scalars(select(RegisterTask))).all()}
    done, failed = tasks[good_id], tasks[bad_id]
    assert done.status == "done" and not done.deliver and done.created_by == "user:op"
    assert failed.status == "failed" and failed.last_error and failed.attempts == 1
    assert "ftp-secret" not in failed.last_error

    # the list, with filters
    page = await bo.http.get("/backoffice/registers/tasks")
    assert page.status_code == 200 and "2 found" in page.text
    assert f'id="task-{done.id}"' in page.text and f'id="task-{failed.id}"' in page.text
    assert unescape(failed.last_error) in unescape(page.text) or failed.last_error[:30] in unescape(page.text)
    page = await bo.http.get("/backoffice/registers/tasks?status=failed&provider=p1")
    assert "1 found" in page.text and f'id="task-{failed.id}"' in page.text
    assert f'id="task-{done.id}"' not in page.text
    assert "0 found" in (await bo.http.get("/backoffice/registers/tasks?provider=p2")).text

    # the file downloads as built, holding the period's payments
    r = await bo.http.get(f"/backoffice/registers/tasks/{done.id}/file")
    assert r.status_code == 200 and r.headers["x-content-sha256"] == done.file_sha256
    assert r.headers["content-disposition"] == f'attachment; filename="{done.file_name}"'
    expected = await expected_rows(env.hub, "p1", yesterday())
    lines = r.content.decode().splitlines()
    assert [int(line.split(";")[0]) for line in lines] == [p.id for p in expected]
    # a task without a file: a message, not an error
    async with bo.hub.sessions() as s:
        s.add(
            RegisterTask(
                template_id=good_id,
                provider_id=done.provider_id,
                period_key="2000-01-01",
                run=0,
                period_start=done.period_start,
                period_end=done.period_end,
                status="pending",
                due_at=dt.datetime(2999, 1, 1, tzinfo=dt.UTC),
                created_at=dt.datetime.now(dt.UTC),
            )
        )
        await s.commit()
    pending = await bo.http.get("/backoffice/registers/tasks?status=pending")
    pending_id = int(re.search(r'id="task-(\d+)"', pending.text).group(1))  # type: ignore[union-attr]
    r = await bo.http.get(f"/backoffice/registers/tasks/{pending_id}/file")
    assert r.status_code == 303 and "not built" in flash_of((await follow(bo.http, r)).text)
    assert (await bo.http.get("/backoffice/registers/tasks/999999/file")).status_code == 404

    # manual retry: a failed task becomes due now; a done one is refused with the reason
    tasks_url = "/backoffice/registers/tasks"
    r = await post_form(bo.http, tasks_url, f"{tasks_url}/{failed.id}/retry", {})
    assert r.status_code == 303 and "tried again" in flash_of((await follow(bo.http, r)).text)
    async with bo.hub.read_sessions() as s:
        t = await s.get(RegisterTask, failed.id)
        assert t is not None and t.status == "pending" and t.max_attempts == 2
        assert t.due_at <= dt.datetime.now(dt.UTC)
    r = await post_form(bo.http, tasks_url, f"{tasks_url}/{done.id}/retry", {})
    assert r.status_code == 303 and "not sent again" in flash_of((await follow(bo.http, r)).text)
    events = await actions(bo, "register_task")
    assert [e.action for e in events] == [
        "register_task.regenerate",
        "register_task.regenerate",
        "register_task.retry",
    ]
    assert events[2].before["status"] == "failed" and events[2].after["status"] == "pending"
    assert events[2].target == f"register_task:{failed.id}"

    # regenerate the done task's period from its row: run 2, built again to the same bytes
    page = await bo.http.get(tasks_url)
    link = f"/backoffice/registers/regenerate?template_id={good_id}&amp;date={yesterday().key}"
    assert link in page.text
    form = await bo.http.get(unescape(link))
    assert f'<option value="{good_id}" selected' in form.text and yesterday().key in form.text
    r = await post_form(bo.http, tasks_url, regen, {"template_id": str(good_id), "date": yesterday().key})
    assert r.status_code == 303
    assert await RegisterWorker(env.hub, FAST).run_once() == 2  # the retried task was tried again too
    async with bo.hub.read_sessions() as s:
        retried = await s.get(RegisterTask, failed.id)
        assert retried is not None and retried.attempts == 2 and retried.status == "failed"
        again = await s.scalar(select(RegisterTask).where(RegisterTask.run == 2))
        assert again is not None and again.status == "done" and again.file_sha256 == done.file_sha256

    # export of the task list with its filters
    rows = sheet((await bo.http.get(f"{tasks_url}?export=xlsx&status=done&sort=id&dir=asc")).content)
    header = rows[0]
    assert header[:9] == (
        "Number", "Provider", "Template", "Period", "Run", "Status", "Attempts", "Last error", "Next attempt"
    )  # fmt: skip
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows[1:]] == [
        (done.id, "p1", "daily-csv", yesterday().key, 1, "done"),
        (again.id, "p1", "daily-csv", yesterday().key, 2, "done"),
    ]

    # a reader sees the tasks and downloads files, but may not retry or regenerate
    async with bo.client() as acc:
        await login(acc, "acc")
        page = await acc.get(tasks_url)
        assert page.status_code == 200 and "/retry" not in page.text and "Regenerate" not in page.text
        assert (await acc.get(f"{tasks_url}/{done.id}/file")).status_code == 200
        r = await acc.post(f"{tasks_url}/{failed.id}/retry", data={"csrf_token": form_token(page.text)})
        assert r.status_code == 403
        assert (await acc.get(regen)).status_code == 403
