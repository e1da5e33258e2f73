"""The refresh-ahead cache of hot values (channel keys, the catalog)."""

from __future__ import annotations

import asyncio

import pytest

from harness import hub_env
from paymux.refresh_ahead import RefreshAhead


class Source:
    """A value that changes, read slowly; counts the reads."""

    def __init__(self, delay: float = 0.02) -> None:
        self.value: int | None = 1
        self.delay = delay
        self.reads = 0
        self.fail = False

    async def read(self) -> int | None:
        self.reads += 1
        value = self.value
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the database is away")
        return value


async def test_requests_arriving_together_share_one_read() -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 10)
    src = Source()
    assert await asyncio.gather(*(cache.get("k", src.read) for _ in range(50))) == [1] * 50
    assert src.reads == 1 and cache.reads == 1
    assert await cache.get("k", src.read) == 1 and src.reads == 1  # cached


async def test_an_ageing_value_is_served_while_one_read_replaces_it_in_the_background() -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 0.3, refresh_share=0.5)
    src = Source(delay=0.05)
    assert await cache.get("k", src.read) == 1
    src.value = 2
    await asyncio.sleep(0.17)  # past refresh_after, before the ttl
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = await asyncio.gather(*(cache.get("k", src.read) for _ in range(20)))
    assert got == [1] * 20 and loop.time() - started < 0.03  # nobody waited for the read
    assert src.reads == 2  # one read in the background for all twenty
    await asyncio.sleep(0.08)
    assert await cache.get("k", src.read) == 2 and src.reads == 2


async def test_an_expired_value_is_not_served_everyone_waits_for_one_read() -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 0.05)
    src = Source()
    assert await cache.get("k", src.read) == 1
    src.value = 3
    await asyncio.sleep(0.06)
    assert await asyncio.gather(*(cache.get("k", src.read) for _ in range(10))) == [3] * 10
    assert src.reads == 2


async def test_clear_drops_values_and_a_read_running_meanwhile_does_not_store_its_value() -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 10)
    src = Source(delay=0.05)
    running = asyncio.ensure_future(cache.get("k", src.read))
    await asyncio.sleep(0.01)
    src.value = 5
    cache.clear()  # the value changed while the first read ran
    assert await running == 1  # its caller gets what it read...
    assert cache.peek("k") is None  # ...but it is not kept
    assert await cache.get("k", src.read) == 5


async def test_none_is_not_kept_and_a_background_read_of_none_drops_the_value() -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 0.3, refresh_share=0.1)
    src = Source(delay=0.01)
    src.value = None
    assert await cache.get("k", src.read) is None
    assert await cache.get("k", src.read) is None and src.reads == 2  # read again each time
    src.value = 7
    assert await cache.get("k", src.read) == 7
    src.value = None  # revoked
    await asyncio.sleep(0.05)
    assert await cache.get("k", src.read) == 7  # still young: served, and read again behind
    await asyncio.sleep(0.03)
    assert cache.peek("k") is None
    assert await cache.get("k", src.read) is None


async def test_a_failed_read_reaches_its_waiters_and_a_failed_refresh_keeps_the_value_until_expiry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 0.2, refresh_share=0.25)
    src = Source(delay=0.01)
    src.fail = True
    waiting = await asyncio.gather(*(cache.get("k", src.read) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(w, RuntimeError) for w in waiting) and src.reads == 1
    src.fail = False
    assert await cache.get("k", src.read) == 1
    src.fail = True
    await asyncio.sleep(0.06)
    assert await cache.get("k", src.read) == 1  # the refresh fails behind the scenes
    await asyncio.sleep(0.03)
    assert "test: read failed" in caplog.text
    assert await cache.get("k", src.read) == 1  # kept until it expires
    await asyncio.sleep(0.15)
    with pytest.raises(RuntimeError):
        await cache.get("k", src.read)


async def test_a_zero_ttl_reads_every_time() -> None:
    cache: RefreshAhead[str, int] = RefreshAhead("test", 0)
    src = Source(delay=0)
    for _ in range(3):
        assert await cache.get("k", src.read) == 1
    assert src.reads == 3


async def test_requests_with_a_key_the_hub_has_not_read_yet_read_it_once(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        env.hub.catalog_changed()  # forget the key and the catalog
        keys, catalog = env.hub.channel_keys.reads, env.hub.catalog._cache.reads
        replies = await asyncio.gather(*(env.pay(external_id=f"ra-{i}") for i in range(20)))
        assert {r.status_code for r in replies} == {201}
        assert env.hub.channel_keys.reads - keys == 1
        assert env.hub.catalog._cache.reads - catalog == 1
