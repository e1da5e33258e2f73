"""Problems (RFC 9457): errors that reach API clients as application/problem+json."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

PROBLEM_BASE = "https://paymux.dev/problems/"
REALM = "paymux"


class Problem(Exception):
    """An error with an HTTP status, a stable type slug, a title and a detail for people.

    ``headers`` go with the answer (``WWW-Authenticate``, ``Retry-After``); ``extra`` into the body.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})
        self.extra = extra

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": PROBLEM_BASE + self.slug, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def invalid_request(errors: Sequence[Any], instance: str) -> dict[str, Any]:
    """The problem body for a request that does not match its schema (pydantic error list)."""
    fields = [
        {"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"), "message": e.get("msg", "")}
        for e in errors
    ]
    return {
        "type": PROBLEM_BASE + "invalid-request",
        "title": "Invalid request",
        "status": 422,
        "detail": "; ".join(f"{e['field']}: {e['message']}" for e in fields),
        "instance": instance,
        "errors": fields,
    }


def internal_error(instance: str) -> dict[str, Any]:
    return {"type": PROBLEM_BASE + "internal", "title": "Internal error", "status": 500, "instance": instance}


def invalid(slug: str, detail: str, **extra: Any) -> Problem:
    return Problem(422, slug, "The request cannot be processed", detail, **extra)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"{what} not found")


_DESCRIPTION_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 error_description


def bearer_challenge(error: str | None = None, description: str | None = None) -> str:
    """A ``WWW-Authenticate`` value for the bearer-token APIs (RFC 6750): without ``error`` when the
    request carried no credentials, ``invalid_token`` when the key or token it carried is refused."""
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{_DESCRIPTION_UNSAFE.sub("", description)}"'
    return value


def unauthorized(title: str, detail: str, *, slug: str = "unauthorized", presented: bool = True) -> Problem:
    """A 401 problem with its bearer challenge (``presented``: the request carried a credential)."""
    challenge = bearer_challenge("invalid_token", detail) if presented else bearer_challenge()
    return Problem(401, slug, title, detail, headers={"WWW-Authenticate": challenge})
