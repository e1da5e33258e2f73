"""Running the recurring engine (scheduler + run executor) next to the payment worker."""

from __future__ import annotations

from typing import Any

from paymux.recurring.engine_settings import EngineSettings
from paymux.runtime import Hub


def running_recurring_worker(hub: Hub, settings: EngineSettings | None = None) -> Any:
    """Run a RunWorker in the background for the duration of the block (nothing when disabled:
    ``PAYMUX_RECURRING_ENABLED=false``)."""
    from paymux.recurring.executor import running_recurring_worker as run

    return run(hub, settings)
