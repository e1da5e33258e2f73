"""Imports every domain's models so that Base.metadata knows all tables (for Alembic)."""

from paymux.auth import models as auth_models
from paymux.catalog import models as catalog_models
from paymux.db.base import Base
from paymux.ledger import models as ledger_models
from paymux.payments import models as payments_models
from paymux.routing import models as routing_models
from paymux.tariffs import models as tariffs_models

__all__ = [
    "Base",
    "auth_models",
    "catalog_models",
    "ledger_models",
    "payments_models",
    "routing_models",
    "tariffs_models",
]
