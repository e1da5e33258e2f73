"""Second factor: TOTP enrolment (QR) and one-use codes; codes by e-mail (real SMTP) and SMS (real HTTP)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from sqlalchemy import select, update

from paymux.audit.models import AuditEvent
from paymux.auth import totp
from paymux.auth.user_models import Role, User
from paymux.providers.emulators.server import run_emulator
from test_backoffice_support import bo_app, flash_of, follow, form_token, login


def _code(secret: str, at: dt.datetime | None = None) -> str:
    return totp.code_at(secret, at or dt.datetime.now(dt.UTC))


async def _require_2fa(hub, role: str) -> None:  # type: ignore[no-untyped-def]
    async with hub.sessions() as s:
        await s.execute(update(Role).where(Role.code == role).values(require_second_factor=True))
        await s.commit()


async def test_role_requiring_2fa_forces_totp_enrolment_then_asks_for_a_code_each_login(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("cfo1", "cfo")
        await _require_2fa(bo.hub, "cfo")
        r = await login(bo.http, "cfo1")
        assert r.headers["location"] == "/backoffice/2fa/enrol"
        assert (await bo.http.get("/backoffice/account")).headers["location"] == "/backoffice/2fa"
        page = await bo.http.get("/backoffice/2fa/enrol")
        assert "<svg" in page.text and "</svg>" in page.text  # QR code drawn on the server
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)  # type: ignore[union-attr]
        r = await bo.http.post(
            "/backoffice/2fa/enrol",
            data={"csrf_token": form_token(page.text), "method": "totp", "code": "000000"},
        )
        assert r.headers["location"].startswith("/backoffice/2fa/enrol")
        page = await bo.http.get("/backoffice/2fa/enrol")
        enrol_code = _code(secret)
        r = await bo.http.post(
            "/backoffice/2fa/enrol",
            data={"csrf_token": form_token(page.text), "method": "totp", "code": enrol_code},
        )
        assert r.status_code == 303 and r.headers["location"] == "/backoffice/"
        assert (await bo.http.get("/backoffice/account")).status_code == 200
        user = await bo.db_user("cfo1")
        assert user.second_factor == "totp" and user.totp_secret == secret

        async with bo.client() as other:
            r = await login(other, "cfo1")
            assert r.headers["location"] == "/backoffice/2fa"
            assert (await other.get("/backoffice/account")).status_code == 303  # not in yet
            page = await other.get("/backoffice/2fa")
            # the code used for enrolment is spent: the same one does not work again
            r = await other.post(
                "/backoffice/2fa", data={"csrf_token": form_token(page.text), "code": enrol_code}
            )
            assert r.status_code == 401
            nxt = _code(secret, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
            r = await other.post("/backoffice/2fa", data={"csrf_token": form_token(page.text), "code": nxt})
            assert r.status_code == 303
            assert (await other.get("/backoffice/account")).status_code == 200
        async with bo.hub.read_sessions() as s:
            events = (
                await s.execute(select(AuditEvent.action, AuditEvent.outcome).order_by(AuditEvent.seq))
            ).all()
        assert [tuple(e) for e in events] == [
            ("login.first_step", "ok"),
            ("login", "failed"),  # wrong enrolment code
            ("user.second_factor", "ok"),
            ("login", "ok"),
            ("login.first_step", "ok"),
            ("login", "failed"),  # reused code
            ("login", "ok"),
        ]


async def test_totp_code_is_accepted_once(db_url: str) -> None:
    secret = totp.new_secret()
    now = dt.datetime.now(dt.UTC)
    code = _code(secret, now)
    step = totp.match_step(secret, code, now, None)
    assert step is not None
    assert totp.match_step(secret, code, now, step) is None
    assert totp.match_step(secret, "12345", now, None) is None


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Any:
    box = _Mailbox()
    with socket.socket() as sock:  # a free port (the controller checks it can connect to it)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()


def _sent_code(text: str) -> str:
    m = re.search(r"\b(\d{6})\b", text)
    assert m, text
    return m.group(1)


async def test_code_by_email_over_a_real_smtp_server(db_url: str, smtp_server: Any) -> None:
    controller, box = smtp_server
    port = controller.port
    async with bo_app(db_url, smtp_host="127.0.0.1", smtp_port=port, smtp_from="bo@paymux.test") as bo:
        await bo.user("acc1", "accountant", email="acc1@example.test", second_factor="email")
        r = await login(bo.http, "acc1")
        assert r.headers["location"] == "/backoffice/2fa"
        for _ in range(50):
            if box.messages:
                break
            await asyncio.sleep(0.05)
        msg = box.messages[0]
        assert msg["To"] == "acc1@example.test" and msg["From"] == "bo@paymux.test"
        code = _sent_code(msg.get_payload())
        page = await bo.http.get("/backoffice/2fa")
        r = await bo.http.post(
            "/backoffice/2fa",
            data={"csrf_token": form_token(page.text), "code": "000000" if code != "000000" else "111111"},
        )
        assert r.status_code == 401
        r = await bo.http.post("/backoffice/2fa", data={"csrf_token": form_token(page.text), "code": code})
        assert r.status_code == 303
        assert (await bo.http.get("/backoffice/account")).status_code == 200


async def test_switching_from_an_authenticator_to_email_codes_in_the_account(
    db_url: str, smtp_server: Any
) -> None:
    controller, box = smtp_server
    async with bo_app(db_url, smtp_host="127.0.0.1", smtp_port=controller.port, smtp_from="bo@x.test") as bo:
        await bo.user("fin1", "financial_specialist", email="fin1@example.test")
        assert (await login(bo.http, "fin1")).status_code == 303
        page = await bo.http.get("/backoffice/account/2fa")  # enrol an authenticator app first
        assert page.status_code == 200 and "<svg" in page.text
        secret = re.search(r'id="totp-secret"[^>]*>\s*([A-Z2-7]+)', page.text)
        assert secret is not None
        r = await bo.http.post(
            "/backoffice/account/2fa",
            data={"csrf_token": form_token(page.text), "method": "totp", "code": _code(secret.group(1))},
        )
        assert r.status_code == 303 and "set up" in flash_of((await follow(bo.http, r)).text)
        user = await bo.db_user("fin1")
        assert user.second_factor == "totp" and user.totp_secret == secret.group(1)

        page = await bo.http.get("/backoffice/account/2fa")
        r = await bo.http.post(
            "/backoffice/account/2fa/send", data={"csrf_token": form_token(page.text), "method": "email"}
        )
        assert r.status_code == 303
        for _ in range(50):
            if box.messages:
                break
            await asyncio.sleep(0.05)
        code = _sent_code(box.messages[0].get_payload())
        wrong = "000000" if code != "000000" else "111111"
        for attempt in (wrong, code):
            r = await bo.http.post(
                "/backoffice/account/2fa",
                data={"csrf_token": form_token(page.text), "method": "email", "code": attempt},
            )
            assert r.status_code == 303
        user = await bo.db_user("fin1")
        assert user.second_factor == "email" and user.totp_secret is None  # the app's secret is gone


async def test_code_by_sms_through_a_real_http_gateway(db_url: str) -> None:
    received: list[dict[str, Any]] = []
    gateway = FastAPI()

    @gateway.post("/send")
    async def send(request: Request) -> dict[str, str]:
        assert request.headers["authorization"] == "Bearer gw-token"
        received.append(await request.json())
        return {"status": "queued"}

    async with run_emulator(gateway) as url:
        async with bo_app(db_url, sms_url=f"{url}/send", sms_token="gw-token") as bo:
            await bo.user("cash1", "cashier", phone="+37360000001")
            await _require_2fa(bo.hub, "cashier")
            r = await login(bo.http, "cash1")
            assert r.headers["location"] == "/backoffice/2fa/enrol"
            page = await bo.http.get("/backoffice/2fa/enrol")
            assert "+37360000001" in page.text
            r = await bo.http.post(
                "/backoffice/2fa/enrol/send", data={"csrf_token": form_token(page.text), "method": "sms"}
            )
            assert r.status_code == 303
            assert received and received[0]["to"] == "+37360000001"
            code = _sent_code(received[0]["text"])
            r = await bo.http.post(
                "/backoffice/2fa/enrol",
                data={"csrf_token": form_token(page.text), "method": "sms", "code": code},
            )
            assert r.status_code == 303 and r.headers["location"] == "/backoffice/"
            assert (await bo.db_user("cash1")).second_factor == "sms"
            # next login: a code is sent at once, and it works once
            async with bo.client() as other:
                r = await login(other, "cash1")
                assert r.headers["location"].startswith("/backoffice/2fa")
                code = _sent_code(received[-1]["text"])
                page = await other.get("/backoffice/2fa")
                r = await other.post(
                    "/backoffice/2fa", data={"csrf_token": form_token(page.text), "code": code}
                )
                assert r.status_code == 303
                assert (await other.get("/backoffice/account")).status_code == 200
            async with bo.hub.read_sessions() as s:
                user = await s.scalar(select(User).where(User.username == "cash1"))
                assert user is not None and user.failed_logins == 0


async def test_wrong_codes_count_towards_the_lockout(db_url: str) -> None:
    async with bo_app(db_url, lockout_failures=3) as bo:
        secret = totp.new_secret()
        await bo.user("ops1", "operator", second_factor="totp", totp_secret=secret)
        await login(bo.http, "ops1")
        page = await bo.http.get("/backoffice/2fa")
        for _ in range(2):
            r = await bo.http.post(
                "/backoffice/2fa", data={"csrf_token": form_token(page.text), "code": "999999"}
            )
            assert r.status_code == 401
        r = await bo.http.post(
            "/backoffice/2fa", data={"csrf_token": form_token(page.text), "code": "999999"}
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/backoffice/login")
        assert (await bo.db_user("ops1")).locked_until is not None
