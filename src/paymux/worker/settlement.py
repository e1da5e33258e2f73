"""Running the low-balance alert worker next to the payment worker (``paymux serve`` / ``paymux worker``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from paymux.runtime import Hub
from paymux.settlement.alerts import AlertWorker
from paymux.settlement.settings import SettlementSettings
from paymux.worker.jobs import running


def running_alert_worker(
    hub: Hub, settings: SettlementSettings | None = None
) -> AbstractAsyncContextManager[AlertWorker]:
    """Run an AlertWorker (threshold checks + alert delivery) in the background for the block."""
    return running(AlertWorker(hub, settings))
