"""The background services besides payment delivery, run by ``paymux serve`` and ``paymux worker``.

Each domain with background work provides an async context manager taking the hub that runs its
worker for the duration of the block (claiming its jobs from its own table). Adding one is a line
in :data:`SERVICES`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from typing import Any

from paymux.runtime import Hub

SERVICES: tuple[str, ...] = (
    "paymux.worker.registers:running_register_worker",
    "paymux.worker.reconciliation:running_reconciliation_worker",
    "paymux.worker.settlement:running_alert_worker",
    "paymux.worker.notifications:running_notification_worker",
    "paymux.worker.recurring:running_recurring_worker",
    "paymux.recurring.reminders:running_reminder_worker",
    "paymux.invoices.reminders:running_invoice_reminder_worker",
    "paymux.wallets.hub_payments:running_hub_payment_worker",
)


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


@contextlib.asynccontextmanager
async def running_background(hub: Hub) -> AsyncIterator[None]:
    """Run every background service in :data:`SERVICES` until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        for spec in SERVICES:
            await stack.enter_async_context(_load(spec)(hub))
        yield
