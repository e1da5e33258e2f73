"""TOTP second factor (RFC 6238, 30-second steps, 6 digits): enrolment QR code and one-use checking."""

from __future__ import annotations

import datetime as dt
import hmac
import io

import pyotp

STEP = 30
DRIFT_STEPS = 1  # accept the previous and next code too (clock drift)


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as an inline SVG element (rendered on the server)."""
    import segno  # imported when needed: the server does not hold it idle

    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=4, xmldecl=False, svgns=True, title="TOTP")
    return buf.getvalue().decode()


def code_at(secret: str, when: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def match_step(secret: str, code: str, now: dt.datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, if valid and later than ``last_step`` (a code works once)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None
