"""The hub's runtime context: database, caches, breakers and provider clients of one process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paymux.auth.throttle import AuthThrottle
from paymux.catalog.snapshot import CatalogCache, ProviderView
from paymux.db.engine import create_engine, is_sqlite, session_factory
from paymux.db.uncancellable import wait_through_cancellation
from paymux.db.write_turn import WriteTurn
from paymux.invoices.startlimit import StartLimiter
from paymux.ledger.service import AccountCache
from paymux.payments.check_ids import CheckIds
from paymux.providers.base import Protocol, protocol_class
from paymux.providers.transport import provider_client
from paymux.refresh_ahead import RefreshAhead
from paymux.routing.breaker import BreakerBoard
from paymux.settings import Settings, get_settings

if TYPE_CHECKING:
    from paymux.payments.acceptor import Acceptor
    from paymux.payments.processing import Worker
    from paymux.payments.recorder import Recorder
    from paymux.recurring.steps import StepWriter


class Hub:
    """Everything one process shares between requests and workers."""

    def __init__(self, settings: Settings | None = None, engine: AsyncEngine | None = None) -> None:
        self.settings = settings or get_settings()
        self.engine = engine or create_engine(self.settings.database_url, settings=self.settings)
        self.owns_engine = engine is None
        self.sqlite = is_sqlite(str(self.engine.url))
        # SQLite: a one-connection writer engine and a separate pool of readers; PostgreSQL: one pool
        # reads get their own pool, so a writer that needs a read (an account id not cached yet)
        # never waits for a connection held by another writer doing the same
        pool: dict[str, Any] = (
            {}
            if self.sqlite
            else {
                "pool_size": max(2, self.settings.db_pool_size // 2),
                "max_overflow": self.settings.db_max_overflow,
            }
        )
        self.read_engine = create_engine(
            self.engine.url.render_as_string(hide_password=False),
            readonly=True,
            settings=self.settings,
            **pool,
        )
        self._write_sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        # SQLite admits one writer: the writers of this process take turns (acceptances first, then
        # in arrival order; released even on cancellation) instead of queueing inside the pool
        self._write_turn = WriteTurn() if self.sqlite else None
        self.read_sessions: async_sessionmaker[AsyncSession] = session_factory(
            self.read_engine, readonly=True
        )
        self.catalog = CatalogCache(self.read_sessions, self.settings.catalog_cache_seconds)
        self.accounts = AccountCache(self.read_sessions)
        self.breakers = BreakerBoard()
        self.auth_throttle = AuthThrottle(
            self.settings.auth_failures_per_address,
            self.settings.auth_failures_per_key,
            self.settings.auth_failure_window_seconds,
        )
        self.pay_starts = StartLimiter(  # method starts on the hosted payment page
            self.settings.paymethod_start_per_token,
            self.settings.paymethod_start_per_address,
            self.settings.paymethod_start_window_seconds,
        )
        self._http: httpx.AsyncClient | None = None
        self._provider_http: dict[int, httpx.AsyncClient] = {}
        self._protocols: dict[int, tuple[str, Protocol]] = {}
        # key hash -> channel id (see channel_for_headers); a key revoked in another process is refused
        # here within channel_key_cache_seconds, in this one at once (channel_keys_changed)
        self.channel_keys: RefreshAhead[str, int] = RefreshAhead(
            "channel keys", self.settings.channel_key_cache_seconds
        )
        self._acceptor: Acceptor | None = None
        self._recorder: Recorder | None = None
        self._run_steps: StepWriter | None = None
        self.local_worker: Worker | None = None  # takes payments accepted here straight away
        self.check_ids = CheckIds()  # transaction ids of account checks (paymux.payments.check_ids)

    @contextlib.asynccontextmanager
    async def sessions(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A session that may write. Never open one while holding another in the same task.

        ``urgent``: on SQLite, take the writer's turn before every waiting ordinary writer (for
        writes a client is waiting on)."""
        if self._write_turn is None:
            session = self._write_sessions()
            try:
                yield session
            finally:
                await _close(session, inline=False)
            return
        async with self._write_turn.turn(urgent):
            session = self._write_sessions()
            try:
                yield session
            finally:
                await _close(session, inline=True)

    @property
    def http(self) -> httpx.AsyncClient:
        """A shared client for calls that belong to no provider."""
        if self._http is None:
            self._http = self._new_http_client()
        return self._http

    def _new_http_client(self) -> httpx.AsyncClient:
        s = self.settings
        timeout = httpx.Timeout(s.provider_timeout_ms / 1000, connect=s.provider_connect_timeout_ms / 1000)
        return provider_client(timeout)

    def provider_http(self, provider_id: int) -> httpx.AsyncClient:
        """The HTTP client of one provider: a connection pool of its own."""
        client = self._provider_http.get(provider_id)
        if client is None:
            client = self._provider_http[provider_id] = self._new_http_client()
        return client

    def protocol(self, provider: ProviderView) -> Protocol:
        """The protocol client of ``provider`` (rebuilt when its config changes)."""
        fingerprint = provider.protocol + json.dumps(provider.config, sort_keys=True, default=str)
        cached = self._protocols.get(provider.id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        proto = protocol_class(provider.protocol)(dict(provider.config), self.provider_http(provider.id))
        self._protocols[provider.id] = (fingerprint, proto)
        return proto

    @property
    def acceptor(self) -> Acceptor:
        """The group committer of payment acceptances (created on first use, in the running loop)."""
        if self._acceptor is None:
            from paymux.payments.acceptor import Acceptor

            self._acceptor = Acceptor(self)
        return self._acceptor

    @property
    def recorder(self) -> Recorder:
        """The group committer of delivery outcomes (created on first use, in the running loop)."""
        if self._recorder is None:
            from paymux.payments.recorder import Recorder

            self._recorder = Recorder(self)
        return self._recorder

    @property
    def run_steps(self) -> StepWriter:
        """The group committer of recurring runs' steps (created on first use, in the running loop)."""
        if self._run_steps is None:
            from paymux.recurring.steps import StepWriter

            self._run_steps = StepWriter(self)
        return self._run_steps

    def work_due(self) -> None:
        """Payments became due in this process's database: the local worker claims soon."""
        if self.local_worker is not None:
            self.local_worker.claim_soon()

    def catalog_changed(self) -> None:
        self.catalog.invalidate()
        self.channel_keys.clear()

    def channel_keys_changed(self) -> None:
        """A channel key was revoked (committed): read every key again before trusting it."""
        self.channel_keys.clear()

    async def close(self) -> None:
        await self.catalog.close()
        await self.channel_keys.close()
        if self._acceptor is not None:
            await self._acceptor.close()
        if self._recorder is not None:
            await self._recorder.close()
        if self._run_steps is not None:
            await self._run_steps.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        for client in self._provider_http.values():
            await client.aclose()
        self._provider_http.clear()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self.owns_engine:
            await self.engine.dispose()

    def describe(self) -> dict[str, Any]:
        return {"database": self.engine.url.render_as_string(hide_password=True), "sqlite": self.sqlite}


async def _close(session: AsyncSession, *, inline: bool) -> None:
    """Close a writer's session without a trip round the loop where nothing in closing waits.

    SQLAlchemy's own ``async with`` closes in a task of its own, so that a cancellation cannot cut
    the close short; that costs a loop iteration (1.5 to 3.4 ms measured under load) before the
    writer's turn is handed on (SQLite) or the batch's clients are answered. Closing the SQLite
    writer (statements on the loop's thread) or a session whose transaction ended (nothing to roll
    back: no I/O) never suspends, so nothing can cut it short; a session still in a transaction on
    PostgreSQL rolls back over the network and is closed the careful way."""
    if inline or not session.in_transaction():
        await session.close()
        return
    await wait_through_cancellation(asyncio.ensure_future(session.close()))
