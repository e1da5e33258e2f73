"""Schema-driven fuzzing of the whole OpenAPI document (schemathesis): requests generated from every
operation's schema, valid and invalid ones, against a running hub with an admin token and a channel
key, on SQLite and PostgreSQL. No answer may be a 5xx, and every 4xx of the API is a problem document
(the inbound gateways answer in their own protocol); no value may reach the database unchecked (the
422 ``invalid-value`` of the app's safety net). Fixed seed (derandomized), bounded examples.

``PAYMUX_FUZZ_EXAMPLES`` sets the examples per operation and mode (default 8): more find more, slower.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from harness import hub_env
from paymux.gateways.base import inbound_prefixes

EXAMPLES = int(os.environ.get("PAYMUX_FUZZ_EXAMPLES", "8"))
PROBLEM = "application/problem+json"
# answer in the protocol the route speaks, not problem documents (OAuth 2.0: RFC 6749 §5.2 errors)
OWN_PROTOCOL = (*inbound_prefixes(), "/api/v1/oauth/")


@dataclass
class Fuzz:
    base: str
    admin: dict[str, str]
    channel: dict[str, str]
    http: requests.Session = field(default_factory=requests.Session)
    found: dict[tuple[str, int], str] = field(default_factory=dict)  # one per operation and status
    statuses: dict[int, int] = field(default_factory=dict)
    unsatisfiable: int = 0

    def operation(self, operation: Any, mode: GenerationMode) -> None:
        path: str = operation.path
        label = f"{operation.method.upper()} {path}"
        headers = self.admin if path.startswith("/api/v1/admin") else self.channel

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            r = case.call(base_url=self.base, headers=headers, session=self.http, timeout=30)
            self.check(label, path, r)

        try:
            run()
        except Unsatisfiable:  # no invalid request exists for it (an operation without parameters)
            self.unsatisfiable += 1

    def check(self, label: str, path: str, r: Any) -> None:
        status = r.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        kind = (r.headers.get("content-type") or [""])[0]
        problem = kind.startswith(PROBLEM)
        bad = (
            status >= 500
            or (400 <= status < 500 and not problem and not path.startswith(OWN_PROTOCOL))
            or (status == 422 and problem and "/problems/invalid-value" in r.text)
        )
        if bad and (label, status) not in self.found:
            sent = r.request
            body = sent.body[:300] if isinstance(sent.body, bytes | str) else sent.body
            self.found[(label, status)] = (
                f"{label} -> {status} {kind}: {r.text[:200]!r} (sent {sent.url[:300]} body {body!r})"
            )


def fuzz(document: dict[str, Any], base: str, admin: dict[str, str], channel: dict[str, str]) -> Fuzz:
    f = Fuzz(base, admin, channel)
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            f.operation(result.ok(), mode)
    return f


async def test_no_operation_answers_5xx_and_every_4xx_is_a_problem(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        document = (await env.http.get("/openapi.json")).json()
        started = time.monotonic()
        f = await asyncio.to_thread(fuzz, document, env.base, env.admin, env.headers())
        print(
            f"fuzzed {len(document['paths'])} paths in {time.monotonic() - started:.1f} s, "
            f"answers by status {dict(sorted(f.statuses.items()))}"
        )
        assert sum(f.statuses.values()) > 10 * len(document["paths"])
        assert not f.found, "\n".join(sorted(f.found.values()))
