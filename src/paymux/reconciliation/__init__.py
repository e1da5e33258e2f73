"""Reconciliation with providers: import their registers, match them against our payments, resolve."""
