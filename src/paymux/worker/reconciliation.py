"""Running the reconciliation fetcher next to the payment worker (``paymux serve`` / ``paymux worker``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from paymux.reconciliation.settings import ReconciliationSettings
from paymux.reconciliation.worker import ReconciliationWorker
from paymux.runtime import Hub
from paymux.worker.jobs import running


def running_reconciliation_worker(
    hub: Hub, settings: ReconciliationSettings | None = None
) -> AbstractAsyncContextManager[ReconciliationWorker]:
    """Run a ReconciliationWorker in the background for the duration of the block; stop it on exit."""
    return running(ReconciliationWorker(hub, settings))
