"""Audit log of every change and login attempt (append-only, hash-chained)."""

from paymux.audit.service import record

__all__ = ["record"]
