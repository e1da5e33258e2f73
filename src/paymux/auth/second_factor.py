"""The second login step: TOTP codes and one-time codes sent by e-mail or SMS."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from paymux.auth import totp
from paymux.auth.senders import CodeSender
from paymux.auth.user_models import User, UserSession
from paymux.backoffice.settings import BackofficeSettings

RESEND_AFTER = dt.timedelta(seconds=30)


def _code_hash(row: UserSession, code: str) -> str:
    return hashlib.sha256(f"{row.id_hash}:{code}".encode()).hexdigest()


def contact_of(user: User, kind: str) -> str | None:
    return user.email if kind == "email" else user.phone if kind == "sms" else None


async def send_code(
    row: UserSession,
    user: User,
    kind: str,
    sender: CodeSender,
    settings: BackofficeSettings,
    now: dt.datetime,
) -> bool:
    """Send a fresh 6-digit code to the user's e-mail/phone; False if one was sent moments ago."""
    if row.otp_expires_at is not None:
        sent_at = row.otp_expires_at - dt.timedelta(minutes=settings.otp_minutes)
        if now - sent_at < RESEND_AFTER:
            return False
    to = contact_of(user, kind)
    if not to:
        raise ValueError(f"the user has no {'e-mail address' if kind == 'email' else 'phone number'}")
    code = f"{secrets.randbelow(1_000_000):06d}"
    row.otp_hash = _code_hash(row, code)
    row.otp_expires_at = now + dt.timedelta(minutes=settings.otp_minutes)
    row.otp_attempts = 0
    await sender.send(
        to,
        "paymux login code",
        f"Your paymux login code is {code}. It is valid for {settings.otp_minutes} minutes.",
    )
    return True


def check_sent_code(row: UserSession, code: str, settings: BackofficeSettings, now: dt.datetime) -> bool:
    """True once for the right code within its lifetime and attempt budget (then it is used up)."""
    if row.otp_hash is None or row.otp_expires_at is None or row.otp_expires_at <= now:
        return False
    row.otp_attempts = (row.otp_attempts or 0) + 1
    if row.otp_attempts > settings.otp_attempts:
        row.otp_hash = None
        return False
    if hmac.compare_digest(_code_hash(row, code.strip()), row.otp_hash):
        row.otp_hash = None
        row.otp_expires_at = None
        return True
    return False


def check_totp(user: User, code: str, now: dt.datetime) -> bool:
    """True for a valid code not used before (the user's last used step moves forward)."""
    if not user.totp_secret:
        return False
    step = totp.match_step(user.totp_secret, code, now, user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def confirm_totp(user: User, secret: str, code: str, now: dt.datetime) -> bool:
    """Enrol ``secret`` for the user if ``code`` proves the authenticator app has it."""
    step = totp.match_step(secret, code, now, None)
    if step is None:
        return False
    user.totp_secret = secret
    user.totp_last_step = step
    user.second_factor = "totp"
    return True
