"""Running the notification worker next to the payment worker (``paymux serve`` / ``paymux worker``)."""

from __future__ import annotations

from paymux.notifications.worker import running_notification_worker

__all__ = ["running_notification_worker"]
