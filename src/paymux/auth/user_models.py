"""Back-office identities: organizations, roles, users, their sessions and API tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

ORG_KINDS = ("operator", "agent")
SECOND_FACTORS = ("none", "totp", "email", "sms")


class Organization(Base):
    """The operator itself, or an agent/dealer (linked to the catalog's Agent) that owns channels."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="operator")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role(Base):
    """A named permission set. Built-in roles take their permissions from code (auth.permissions)."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    permissions: Mapped[list[str]] = mapped_column(Json, default=list)
    require_second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    # CIDR ranges a login must come from (empty: anywhere)
    allowed_networks: Mapped[list[str]] = mapped_column(Json, default=list)
    # {"days": [0..6] (Monday 0), "start": "HH:MM", "end": "HH:MM"} in the user's timezone; null: any time
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    language: Mapped[str] = mapped_column(String(8), default="en")
    second_factor: Mapped[str] = mapped_column(String(8), default="none")
    # the TOTP shared secret must be readable to check codes; it is never shown again after enrolment
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # identity of a client certificate (as forwarded by the trusted TLS proxy) that logs this user in
    cert_subject: Mapped[str | None] = mapped_column(String(500), nullable=True, unique=True)
    allowed_networks: Mapped[list[str]] = mapped_column(Json, default=list)
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class UserSession(Base):
    """A server-side back-office session; the cookie holds a 128-bit random id, the table its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # "active", or a step of the login still to do: "second_factor", "enrol"
    stage: Mapped[str] = mapped_column(String(16), default="active")
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    method: Mapped[str] = mapped_column(String(16), default="password")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # a one-time code sent by e-mail/SMS during the second-factor step (hash only)
    otp_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    otp_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    otp_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # a TOTP secret offered during enrolment, confirmed by a first code
    pending_totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ApiToken(Base):
    """A personal API token: the user's permissions on the admin API. Stored as SHA-256 only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FlashMessage(Base):
    """A message for the next back-office page a browser opens (after an action redirects it there),
    shown once. The browser holds a random id in a cookie, the table its SHA-256 and the text: pages
    show only what the server put here, never text from the address (``backoffice.flash``)."""

    __tablename__ = "backoffice_flashes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="info")  # "info" or "error"
    message: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
