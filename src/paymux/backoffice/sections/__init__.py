"""Back-office sections. To add one: write a module here and name it in SECTION_MODULES."""

from __future__ import annotations

import importlib

SECTION_MODULES = (
    "auth_pages",
    "home",
    "chart_style",
    "account",
    "users",
    "roles",
    "organizations",
    "sessions",
    "credentials",
    "audit",
    "dashboard",
    "payments",
    "queues",
    "catalog",
    "routing",
    "tariffs",
    "monitoring",
    "reconciliation",
    "balances",
    "settlement",
    "registers",
    "reports",
    "rates",
    "recurring",
    "notifications",
    "biller_forms",
    "invoices",
    "invoice_receipts",
    "wallet_contracts",
    "wallets",
    "wallet_fraud",
    "kyc",
    "support",
    "texts",
    "cashdesks",
)


def load() -> None:
    """Import every section module (each registers its router and menu entries)."""
    for name in SECTION_MODULES:
        importlib.import_module(f"{__name__}.{name}")
