"""Running the register worker next to the payment worker (``paymux serve`` / ``paymux worker``)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from paymux.registers.settings import RegisterSettings
from paymux.registers.worker import RegisterWorker
from paymux.runtime import Hub
from paymux.worker.jobs import running


def running_register_worker(
    hub: Hub, settings: RegisterSettings | None = None
) -> AbstractAsyncContextManager[RegisterWorker]:
    """Run a RegisterWorker in the background for the duration of the block; stop it on exit."""
    return running(RegisterWorker(hub, settings))
