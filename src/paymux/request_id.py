"""The request id: one per HTTP request, in its ``X-Request-ID`` answer header, its problem documents
and every log line written while it is served.

A client may send its own ``X-Request-ID`` (1 to 128 characters out of letters, digits and
``-_.:@/+=``); anything else is replaced by a new random id. The id lives in a context variable, so
every log record made in the request's task (and in threads it starts with ``asyncio.to_thread``)
carries it as ``record.request_id`` ("-" outside a request).
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
from typing import Any

HEADER = "X-Request-ID"
HEADER_KEY = b"x-request-id"  # as ASGI scopes spell it
NONE = "-"

_ALLOWED = re.compile(r"[A-Za-z0-9\-_.:@/+=]{1,128}")

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("paymux_request_id", default=None)


def new_id() -> str:
    """A new random id (24 hex digits)."""
    return os.urandom(12).hex()


def accepted(sent: bytes | str | None, trust_client: bool = True) -> str:
    """The id of a request that sent ``sent`` as its header: that value when it is sane, else a new one."""
    if sent is None or not trust_client:
        return new_id()
    text = sent.decode("latin-1") if isinstance(sent, bytes) else sent
    return text if _ALLOWED.fullmatch(text) else new_id()


def current() -> str | None:
    """The id of the request being served in this context, or None."""
    return REQUEST_ID.get()


def detached_context() -> contextvars.Context:
    """A copy of the current context without a request id: for long-lived tasks that a request
    happens to start (a committer), whose log lines belong to no request."""
    ctx = contextvars.copy_context()
    ctx.run(REQUEST_ID.set, None)
    return ctx


_installed = False


def install_log_records() -> None:
    """Give every log record a ``request_id`` attribute (idempotent; wraps the current factory)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = REQUEST_ID.get() or NONE
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
