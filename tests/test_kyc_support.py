"""Identification (KYC) and customer support over HTTP: documents uploaded through the customer API
(type by magic bytes, size limit, SHA-256), served only with ``kyc.documents``; Compliance's decision
changing the limits that apply; codewords (hashed, wrong tries limited); tickets from the customer
API and from support; SLA deadlines on the role homes; the Support manager's delegation."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from sqlalchemy import select, update

from customer_desks_support import NOT_AN_IMAGE, PDF, bo_client, png
from paymux.audit.models import AuditEvent
from paymux.auth.permissions import SUPPORT, SUPPORT_MANAGER
from paymux.support.models import SupportCodeword, Ticket
from paymux.wallets.models import WalletCustomer
from test_backoffice_grants import ROLE_BEYOND, create, exists, refused
from test_backoffice_support import Bo, flash_of, follow, form_token, post_form
from wallets_support import AW, W, wallets_env

PROBLEM = "application/problem+json"


def problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    return body


async def actions(env: Any) -> list[str]:
    async with env.hub.read_sessions() as s:
        return list((await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all())


def upload(kind: str, name: str, data: bytes) -> dict[str, Any]:
    return {"data": {"kind": kind}, "files": {"file": (name, data, "application/octet-stream")}}


async def test_a_document_uploaded_and_identification_lifts_the_limits(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMUX_UPLOADS_MAX_BYTES", "4096")
    async with wallets_env(db_url) as w:
        r = await w.http.post(
            f"{AW}/limits",
            json={
                "issuer": "rub",
                "type": "withdrawal",
                "identification": "unidentified",
                "name": "anonymous-cash",
                "max_amount": "100.00",
            },
            headers=w.env.admin,
        )
        assert r.status_code == 201, r.text
        c = await w.customer("kyc-1", "unidentified", phone="+37369000111", name="Ion Kyc")
        assert (await w.topup(c, "rub", "1000.00")).status_code == 201
        body = problem(await w.withdraw(c, c.wallets["rub"], "500.00"), 422, "limit-exceeded")
        assert body["limit"]["name"] == "anonymous-cash"

        # the type is read from the bytes, not the name; too large or empty is refused
        r = await w.http.post(
            f"{W}/identification/documents", headers=c.h, **upload("passport", "p.png", NOT_AN_IMAGE)
        )
        assert "JPEG, PNG and PDF" in problem(r, 422, "invalid-file")["detail"]
        big = png() + b"\x00" * 5000
        r = await w.http.post(
            f"{W}/identification/documents", headers=c.h, **upload("passport", "p.png", big)
        )
        assert problem(r, 422, "invalid-file")["max_bytes"] == 4096
        r = await w.http.post(f"{W}/identification/documents", headers=c.h, **upload("selfie", "x.png", b""))
        assert r.status_code == 422
        r = await w.http.post(f"{W}/identification/documents", headers=c.h, **upload("visa", "p.pdf", PDF))
        assert r.status_code == 422
        r = await w.http.post(f"{W}/identification/documents", **upload("passport", "p.png", png()))
        assert r.status_code == 401

        image = png()
        r = await w.http.post(
            f"{W}/identification/documents",
            headers=c.h,
            **upload("passport", "../../etc/passport.exe", image),
        )
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["content_type"] == "image/png" and doc["size"] == len(image)
        assert doc["sha256"] == hashlib.sha256(image).hexdigest()
        assert "/" not in doc["filename"]
        r = await w.http.post(
            f"{W}/identification/documents", headers=c.h, **upload("address_proof", "bill.pdf", PDF)
        )
        assert r.json()["content_type"] == "application/pdf"
        r = await w.http.get(f"{W}/identification", headers=c.h)
        assert r.json()["status"] == "pending" and len(r.json()["documents"]) == 2

        hub = w.env.hub
        async with bo_client(hub, "comp", "compliance") as comp, bo_client(hub, "sup", SUPPORT) as sup:
            home = await comp.get("/backoffice/")
            assert 'id="waiting-kyc-pending"' in home.text or "/backoffice/kyc?status=pending" in home.text
            page = await comp.get("/backoffice/kyc?status=pending")
            assert "kyc-1" in page.text
            xlsx = await comp.get("/backoffice/kyc?status=pending&export=xlsx")
            assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
            card = await comp.get(f"/backoffice/kyc/{c.id}")
            assert f"/backoffice/kyc/documents/{doc['id']}" in card.text and doc["sha256"] in card.text
            got = await comp.get(f"/backoffice/kyc/documents/{doc['id']}")
            assert got.status_code == 200 and got.content == image
            assert got.headers["content-type"] == "image/png"
            assert got.headers["content-disposition"] == f'attachment; filename="kyc-{doc["id"]}.png"'

            # support sees the status, not the documents
            card = await sup.get(f"/backoffice/kyc/{c.id}")
            assert card.status_code == 200 and f"/backoffice/kyc/documents/{doc['id']}" not in card.text
            assert (await sup.get(f"/backoffice/kyc/documents/{doc['id']}")).status_code == 403
            r = await post_form(
                sup,
                f"/backoffice/kyc/{c.id}",
                f"/backoffice/kyc/{c.id}/status",
                {"status": "identified", "reason": "x"},
            )
            assert r.status_code == 403

            # a decision needs a reason
            r = await post_form(
                comp,
                f"/backoffice/kyc/{c.id}",
                f"/backoffice/kyc/{c.id}/status",
                {"status": "identified", "reason": " "},
            )
            assert "reason" in flash_of((await follow(comp, r)).text)
            r = await post_form(
                comp,
                f"/backoffice/kyc/{c.id}",
                f"/backoffice/kyc/{c.id}/status",
                {"status": "identified", "reason": "passport checked against the face"},
            )
            page = await follow(comp, r)
            assert "passport checked against the face" in page.text

        r = await w.http.get(f"{W}/me", headers=c.h)
        assert r.json()["identification"] == "identified"
        assert (await w.withdraw(c, c.wallets["rub"], "500.00")).status_code == 201
        async with hub.read_sessions() as s:
            ev = await s.scalar(select(AuditEvent).where(AuditEvent.action == "kyc.status"))
            assert ev is not None and ev.actor == "user:comp"
            assert ev.before["identification"] == "unidentified" and ev.after["status"] == "identified"

        # rejected: back to the limits of the unidentified; a new document puts it up for review again
        async with bo_client(hub, "comp2", "compliance") as comp:
            r = await post_form(
                comp,
                f"/backoffice/kyc/{c.id}",
                f"/backoffice/kyc/{c.id}/status",
                {"status": "rejected", "reason": "forged"},
            )
            assert r.status_code == 303
        problem(await w.withdraw(c, c.wallets["rub"], "200.00"), 422, "limit-exceeded")
        r = await w.http.post(
            f"{W}/identification/documents", headers=c.h, **upload("passport", "p2.png", image)
        )
        assert r.status_code == 201
        assert (await w.http.get(f"{W}/identification", headers=c.h)).json()["status"] == "pending"
        await w.check_invariants()


async def test_tickets_with_codewords_sla_and_the_support_desk(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMUX_SUPPORT_CODEWORD_ATTEMPTS", "3")
    monkeypatch.setenv("PAYMUX_SUPPORT_SLA_HOURS_URGENT", "2")
    async with wallets_env(db_url) as w:
        a = await w.customer("client-a", email="ana@example.md", phone="+37369111222", name="Ana Client")
        b = await w.customer("client-b", phone="+37369333444")
        assert (await w.topup(a, "rub", "250.00")).status_code == 201
        hub = w.env.hub

        # the customer's side: a codeword (hashed) and a ticket
        problem(
            await w.http.put(f"{W}/codeword", json={"codeword": "abc"}, headers=a.h), 422, "invalid-request"
        )
        r = await w.http.put(f"{W}/codeword", json={"codeword": "blue heron 42"}, headers=a.h)
        assert r.status_code == 204, r.text
        async with hub.read_sessions() as s:
            stored = await s.scalar(select(SupportCodeword.hash).where(SupportCodeword.customer_id == a.id))
        assert stored is not None and stored.startswith("$argon2") and "heron" not in stored
        r = await w.http.post(
            f"{W}/tickets", json={"subject": "Top-up missing", "message": "Paid 500 at 10:12"}, headers=a.h
        )
        assert r.status_code == 201, r.text
        api_ticket = r.json()
        assert api_ticket["status"] == "open" and api_ticket["messages"][0]["from"] == "customer"
        assert (await w.http.get(f"{W}/tickets/{api_ticket['id']}", headers=b.h)).status_code == 404
        r = await w.http.post(
            f"{W}/tickets/{api_ticket['id']}/messages", json={"message": "Any news?"}, headers=a.h
        )
        assert r.status_code == 201 and len(r.json()["messages"]) == 2
        url = f"{W}/tickets/{api_ticket['id']}/attachments"
        r = await w.http.post(url, files={"file": ("shot.png", png(), "image/png")}, headers=a.h)
        assert r.status_code == 201 and [f["filename"] for f in r.json()["attachments"]] == ["shot.png"]
        r = await w.http.post(url, files={"file": ("shot.png", NOT_AN_IMAGE, "image/png")}, headers=a.h)
        problem(r, 422, "invalid-file")
        r = await w.http.post(url, files={"file": ("shot.png", png(), "image/png")}, headers=b.h)
        problem(r, 404, "not-found")

        async with bo_client(hub, "agent1", SUPPORT) as sup, bo_client(hub, "boss", SUPPORT_MANAGER) as boss:
            home = await sup.get("/backoffice/")
            assert "/backoffice/support/tickets?status=open&amp;assignee=none" in home.text
            # find the client by phone, e-mail, reference and wallet id
            for term in ("111222", "ana@example", "client-a", str(a.wallets["rub"])):
                page = await sup.get("/backoffice/support/clients", params={"q": term})
                assert f"/backoffice/support/clients/{a.id}" in page.text, term
                assert f'/backoffice/support/clients/{b.id}"' not in page.text, term
            xlsx = await sup.get("/backoffice/support/clients", params={"q": "client", "export": "xlsx"})
            assert xlsx.content[:2] == b"PK"
            card = await sup.get(f"/backoffice/support/clients/{a.id}")
            assert "250.00 RUB" in card.text and "Top-up missing" in card.text

            # support opens a ticket only with the right codeword; wrong ones are limited
            url = f"/backoffice/support/clients/{a.id}"
            data = {
                "subject": "Called about fees",
                "message": "Asked why 5.00 was charged",
                "priority": "urgent",
            }
            r = await post_form(sup, url, f"{url}/tickets", {**data, "codeword": "red fox"})
            assert flash_of((await follow(sup, r)).text) == "The codeword is wrong."
            r = await post_form(sup, url, f"{url}/tickets", {**data, "codeword": "blue heron 42"})
            assert r.headers["location"].startswith("/backoffice/support/tickets/")
            tid = int(r.headers["location"].rsplit("/", 1)[1])
            page = await follow(sup, r)
            assert "Called about fees" in page.text and "Asked why 5.00 was charged" in page.text
            async with hub.read_sessions() as s:
                t = await s.get(Ticket, tid)
                assert t is not None and t.priority == "urgent" and t.source == "support"
                assert dt.timedelta(hours=1.9) < t.due_at - t.created_at <= dt.timedelta(hours=2)
            for _ in range(3):
                r = await post_form(sup, url, f"{url}/tickets", {**data, "codeword": "wrong one"})
            r = await post_form(sup, url, f"{url}/tickets", {**data, "codeword": "blue heron 42"})
            assert "Too many wrong codewords" in flash_of((await follow(sup, r)).text)
            r = await post_form(
                sup,
                f"/backoffice/support/clients/{b.id}",
                f"/backoffice/support/clients/{b.id}/tickets",
                {**data, "codeword": "whatever"},
            )
            assert "has not set a codeword" in flash_of((await follow(sup, r)).text)
            async with hub.read_sessions() as s:
                assert len((await s.scalars(select(Ticket).where(Ticket.customer_id == a.id))).all()) == 2

            # work on it: reply (takes it), attach, refuse a non-image
            page_url = f"/backoffice/support/tickets/{tid}"
            r = await post_form(sup, page_url, f"{page_url}/messages", {"message": "Explained the tariff."})
            page = await follow(sup, r)
            assert "Explained the tariff." in page.text and "agent1" in page.text
            token = form_token(page.text)
            r = await sup.post(
                f"{page_url}/attachments",
                data={"csrf_token": token},
                files={"file": ("receipt.pdf", PDF, "application/pdf")},
            )
            page = await follow(sup, r)
            assert "receipt.pdf" in page.text
            r = await sup.post(
                f"{page_url}/attachments",
                data={"csrf_token": token},
                files={"file": ("x.pdf", NOT_AN_IMAGE, "application/pdf")},
            )
            assert "JPEG, PNG and PDF" in flash_of((await follow(sup, r)).text)
            r = await w.http.get(f"{W}/tickets/{tid}", headers=a.h)
            assert [f["filename"] for f in r.json()["attachments"]] == ["receipt.pdf"]
            att = r.json()["attachments"][0]["id"]
            got = await sup.get(f"/backoffice/support/attachments/{att}")
            assert got.content == PDF

            # a support agent does not hand tickets to others; the manager does
            boss_user = await Bo(None, hub, None).db_user("boss")  # type: ignore[arg-type]
            r = await post_form(
                sup,
                page_url,
                f"{page_url}/change",
                {"status": "in_progress", "priority": "urgent", "assignee": str(boss_user.id)},
            )
            assert "Only a support manager" in flash_of((await follow(sup, r)).text)
            r = await post_form(
                boss,
                page_url,
                f"{page_url}/change",
                {"status": "waiting_customer", "priority": "urgent", "assignee": str(boss_user.id)},
            )
            page = await follow(boss, r)
            assert flash_of(page.text) == "The ticket was changed."
            async with hub.read_sessions() as s:
                t = await s.get(Ticket, tid)
                assert t is not None and t.assignee_id == boss_user.id and t.status == "waiting_customer"

            # past its deadline: on the home page and in the overdue filter
            async with hub.sessions() as s:
                await s.execute(
                    update(Ticket)
                    .where(Ticket.id == api_ticket["id"])
                    .values(due_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
                )
                await s.commit()
            home = await sup.get("/backoffice/")
            assert "/backoffice/support/tickets?overdue=yes" in home.text
            page = await sup.get("/backoffice/support/tickets", params={"overdue": "yes"})
            assert f'/backoffice/support/tickets/{api_ticket["id"]}"' in page.text
            assert f'/backoffice/support/tickets/{tid}"' not in page.text

            # the Support manager creates Customer support users and roles within its own permissions
            assert (await create(boss, Bo(None, hub, None), "agent2", SUPPORT)).status_code == 303  # type: ignore[arg-type]
            refused(await create(boss, Bo(None, hub, None), "comp9", "compliance"), ROLE_BEYOND)  # type: ignore[arg-type]
            assert not await exists(Bo(None, hub, None), "comp9")  # type: ignore[arg-type]
            r = await post_form(
                boss,
                "/backoffice/roles/new",
                "/backoffice/roles",
                {"code": "l1", "name": "First line", "permissions": ["support.read", "support.tickets"]},
            )
            assert r.status_code == 303
            r = await post_form(
                boss,
                "/backoffice/roles/new",
                "/backoffice/roles",
                {"code": "l9", "name": "Too much", "permissions": ["support.read", "kyc.review"]},
            )
            assert r.status_code == 403
        assert {
            "support_ticket.create",
            "support_ticket.change",
            "support_ticket.attach",
            "support.codeword",
        } <= set(await actions(w.env))
        async with hub.read_sessions() as s:
            assert (await s.get(WalletCustomer, a.id)) is not None
