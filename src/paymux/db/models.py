"""Imports every domain's models so that Base.metadata knows all tables (for Alembic)."""

from paymux.auth import models as auth_models
from paymux.cashdesks import models as cashdesks_models
from paymux.catalog import models as catalog_models
from paymux.db.base import Base
from paymux.gateways import models as gateways_models
from paymux.invoices import models as invoices_models
from paymux.kyc import models as kyc_models
from paymux.ledger import models as ledger_models
from paymux.notifications import models as notifications_models
from paymux.payments import models as payments_models
from paymux.rates import models as rates_models
from paymux.reconciliation import models as reconciliation_models
from paymux.recurring import models as recurring_models
from paymux.recurring import reminder_models as recurring_reminder_models
from paymux.registers import models as registers_models
from paymux.routing import models as routing_models
from paymux.settlement import models as settlement_models
from paymux.support import models as support_models
from paymux.tariffs import models as tariffs_models
from paymux.tariffs import proposals as tariff_proposals
from paymux.texts import models as texts_models
from paymux.wallets import contract_models as wallet_contract_models
from paymux.wallets import models as wallets_models

__all__ = [
    "Base",
    "auth_models",
    "cashdesks_models",
    "catalog_models",
    "gateways_models",
    "invoices_models",
    "kyc_models",
    "ledger_models",
    "notifications_models",
    "payments_models",
    "rates_models",
    "reconciliation_models",
    "recurring_models",
    "recurring_reminder_models",
    "registers_models",
    "routing_models",
    "settlement_models",
    "support_models",
    "tariff_proposals",
    "tariffs_models",
    "texts_models",
    "wallet_contract_models",
    "wallets_models",
]
