"""E-mail delivery through SMTP (STARTTLS, implicit TLS or plain; optional login). Blocking."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from paymux.registers.delivery import DeliveryError, Outgoing, describe, tls_context
from paymux.registers.patterns import PatternError, render
from paymux.registers.schemas import EmailDelivery

MAX_ATTACHMENT = 50 * 1024 * 1024


def build_message(d: EmailDelivery, out: Outgoing) -> EmailMessage:
    size = out.path.stat().st_size
    if size > MAX_ATTACHMENT:
        raise DeliveryError(f"{describe(d)}: the file is {size} bytes, too big to mail; deliver by FTP/SFTP")
    msg = EmailMessage()
    msg["From"] = d.from_addr
    msg["To"] = ", ".join(d.to)
    if d.cc:
        msg["Cc"] = ", ".join(d.cc)
    try:
        subject = render(d.subject, out.context) if d.subject else out.subject
        body = render(d.body, {**out.context, "file_name": out.file_name})
    except PatternError as e:
        raise DeliveryError(f"{describe(d)}: {e}") from None
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="paymux.local")
    msg.set_content(body)
    maintype, _, subtype = out.content_type.partition("/")
    msg.add_attachment(
        out.path.read_bytes(), maintype=maintype, subtype=subtype or "octet-stream", filename=out.file_name
    )
    return msg


def send_email(d: EmailDelivery, out: Outgoing) -> None:
    msg = build_message(d, out)
    ctx = tls_context(d.verify_tls, d.ca_pem)
    try:
        smtp: smtplib.SMTP
        if d.security == "ssl":
            smtp = smtplib.SMTP_SSL(d.host, d.port, timeout=d.timeout_seconds, context=ctx)
        else:
            smtp = smtplib.SMTP(d.host, d.port, timeout=d.timeout_seconds)
        with smtp:
            smtp.ehlo()
            if d.security == "starttls":
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if d.username:
                smtp.login(d.username, d.password or "")
            refused = smtp.send_message(msg, to_addrs=[*d.to, *d.cc])
        if refused:
            raise DeliveryError(f"{describe(d)}: recipients refused: {', '.join(sorted(refused))}")
    except DeliveryError:
        raise
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"{describe(d)}: {type(e).__name__}: {e}") from None
