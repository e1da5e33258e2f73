"""Senders of one-time login codes: e-mail over SMTP and SMS through an HTTP gateway (pluggable).

A sender is anything with ``async send(to, subject, text)``. ``senders_for(settings)`` builds the
configured ones; another transport is added by putting its factory in ``SENDER_FACTORIES``.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from typing import Protocol

import httpx

from paymux.backoffice.settings import BackofficeSettings


class SendError(RuntimeError):
    pass


class CodeSender(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None: ...


class SmtpSender:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 10,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(msg)

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """Plain ``text``, with ``html`` as its alternative when given (multipart/alternative)."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        try:
            await asyncio.to_thread(self._send, msg)
        except (OSError, smtplib.SMTPException) as e:
            raise SendError(f"e-mail to {to} not sent: {e}") from None


class HttpSmsSender:
    """POSTs ``{"to": phone, "text": text}`` as JSON to the gateway (bearer token if configured)."""

    def __init__(self, url: str, token: str = "", timeout: float = 10) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    async def send(self, to: str, subject: str, text: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.post(self.url, json={"to": to, "text": text}, headers=headers)
        except httpx.HTTPError as e:
            raise SendError(f"SMS to {to} not sent: {e}") from None
        if r.status_code >= 300:
            raise SendError(f"SMS to {to} not sent: gateway answered {r.status_code}")


def _smtp(s: BackofficeSettings) -> CodeSender | None:
    if not s.smtp_host:
        return None
    return SmtpSender(
        s.smtp_host,
        s.smtp_port,
        s.smtp_from,
        username=s.smtp_username,
        password=s.smtp_password,
        starttls=s.smtp_starttls,
    )


def _sms(s: BackofficeSettings) -> CodeSender | None:
    return HttpSmsSender(s.sms_url, s.sms_token) if s.sms_url else None


# second-factor kind -> factory of its sender from the settings (None: not configured)
SENDER_FACTORIES: dict[str, Callable[[BackofficeSettings], CodeSender | None]] = {"email": _smtp, "sms": _sms}


def senders_for(settings: BackofficeSettings) -> dict[str, CodeSender]:
    out = {}
    for kind, factory in SENDER_FACTORIES.items():
        sender = factory(settings)
        if sender is not None:
            out[kind] = sender
    return out
