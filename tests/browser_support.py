"""Shared pieces of the headless Chromium (Playwright) tests: the browser, screenshots as artifacts.

Screenshots go to ``$PAYMUX_TEST_ARTIFACTS/screenshots`` (``build/test-artifacts`` by default), so a CI
run keeps what each screen looked like.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from harness import Env, hub_env
from paymux.api.app import create_app
from paymux.backoffice.settings import BackofficeSettings
from paymux.runtime import Hub
from paymux.server import EmbeddedServer
from test_backoffice_support import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("PAYMUX_TEST_ARTIFACTS", Path(__file__).parent.parent / "build" / "test-artifacts")
)

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing (make install puts it there when run as root)",
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Debian Chromium driven by Playwright, closed at the end of the block."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as a test artifact; returns its path."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^\w.-]+", "_", name).strip("_") + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path


@contextlib.asynccontextmanager
async def serving_backoffice(hub: Hub, *, lifespan: str = "off") -> AsyncIterator[str]:
    """The app of ``hub`` (back office cookies without ``Secure``: plain HTTP) served over HTTP on
    loopback for the block; yields its base URL."""
    app = create_app(hub)
    app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
    server = EmbeddedServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def backoffice_server(db_url: str) -> AsyncIterator[tuple[Env, str]]:
    """The hub with emulated providers, and the back office served over HTTP on loopback."""
    async with hub_env(db_url) as env, serving_backoffice(env.hub) as base:
        yield env, base


async def login(page: Any, base: str, username: str) -> None:
    """Sign in through the login form (a user without a second factor) and land on the start page."""
    await page.goto(f"{base}/backoffice/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/backoffice/")
