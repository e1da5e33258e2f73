"""Permissions and the predefined roles.

A permission is a dotted string (``users.write``). Each is declared once with the predefined roles
that hold it; the Administrator holds every permission. A back-office section that needs a new
permission declares it with ``define()`` next to its router (see docs/backoffice.md).
"""

from __future__ import annotations

from dataclasses import dataclass

ADMINISTRATOR = "administrator"
CFO = "cfo"
FINANCIAL_SPECIALIST = "financial_specialist"
ACCOUNTANT = "accountant"
CASHIER = "cashier"
COMPLIANCE = "compliance"
ANTI_FRAUD = "anti_fraud"
SUPPORT = "support"
OPERATOR = "operator"
AGENT = "agent"

# code -> display name (an English msgid, translated in the UI)
PREDEFINED_ROLES: dict[str, str] = {
    ADMINISTRATOR: "Administrator",
    CFO: "CFO",
    FINANCIAL_SPECIALIST: "Financial specialist",
    ACCOUNTANT: "Accountant",
    CASHIER: "Cashier",
    COMPLIANCE: "Compliance",
    ANTI_FRAUD: "Anti-fraud",
    SUPPORT: "Customer support",
    OPERATOR: "Operator",
    AGENT: "Agent",
}


@dataclass(frozen=True)
class Permission:
    code: str
    title: str  # English msgid
    roles: frozenset[str]  # predefined roles holding it (the Administrator holds all)


PERMISSIONS: dict[str, Permission] = {}


def define(code: str, title: str, roles: tuple[str, ...] = ()) -> str:
    """Declare a permission (idempotent for the same definition); returns its code."""
    unknown = set(roles) - set(PREDEFINED_ROLES)
    if unknown:
        raise ValueError(f"unknown predefined roles {sorted(unknown)} for permission {code}")
    existing = PERMISSIONS.get(code)
    perm = Permission(code, title, frozenset(roles) | {ADMINISTRATOR})
    if existing is not None and existing != perm:
        raise ValueError(f"permission {code} is already defined differently")
    PERMISSIONS[code] = perm
    return code


def role_permissions(role_code: str) -> frozenset[str]:
    """The permissions of a predefined role."""
    return frozenset(p.code for p in PERMISSIONS.values() if role_code in p.roles)


FIN = (CFO, FINANCIAL_SPECIALIST, ACCOUNTANT)
OVERSIGHT = (COMPLIANCE, ANTI_FRAUD)

# --- users, roles, audit ------------------------------------------------------------------------------
USERS_READ = define("users.read", "View users", (COMPLIANCE,))
USERS_WRITE = define("users.write", "Create and change users")
ROLES_READ = define("roles.read", "View roles", (COMPLIANCE,))
ROLES_WRITE = define("roles.write", "Create and change roles")
ORGS_READ = define("orgs.read", "View organizations", (COMPLIANCE, CFO))
ORGS_WRITE = define("orgs.write", "Create and change organizations")
SESSIONS_READ = define("sessions.read", "View sessions of users", (COMPLIANCE,))
SESSIONS_END = define("sessions.end", "End sessions of users")
AUDIT_READ = define("audit.read", "View the audit log", (CFO, COMPLIANCE, ANTI_FRAUD))
API_TOKENS = define("api.tokens", "Own API tokens", (OPERATOR, CFO, FINANCIAL_SPECIALIST))

# --- catalog and operations (admin API) ---------------------------------------------------------------
CATALOG_READ = define("catalog.read", "View the catalog", (*FIN, *OVERSIGHT, SUPPORT, OPERATOR))
CATALOG_WRITE = define("catalog.write", "Change the catalog", (OPERATOR,))
CHANNELS_READ = define("channels.read", "View channels", (*FIN, *OVERSIGHT, SUPPORT, OPERATOR, AGENT))
CHANNEL_KEYS = define("channels.keys", "Issue channel API keys", (OPERATOR,))
ROUTING_READ = define("routing.read", "View routes and switches", (CFO, *OVERSIGHT, OPERATOR, SUPPORT))
ROUTING_WRITE = define("routing.write", "Switch providers", (OPERATOR,))
TARIFFS_READ = define("tariffs.read", "View tariffs", (*FIN, OPERATOR, COMPLIANCE))
# direct writes skip the maker-checker: only the Administrator (and catalog files / admin tokens)
TARIFFS_WRITE = define("tariffs.write", "Add tariff versions")
TARIFFS_PROPOSE = define("tariffs.propose", "Propose tariff changes", (FINANCIAL_SPECIALIST, CFO))
TARIFFS_APPROVE = define("tariffs.approve", "Approve or reject tariff changes", (CFO,))
BALANCES_READ = define("balances.read", "View balances", (*FIN, CASHIER, OPERATOR))
TOPUPS_WRITE = define("topups.write", "Record provider top-ups", (CFO, FINANCIAL_SPECIALIST, CASHIER))
PAYMENTS_READ = define(
    "payments.read", "View payments", (*FIN, CASHIER, *OVERSIGHT, SUPPORT, OPERATOR, AGENT)
)
RATES_READ = define("rates.read", "View exchange rates", (*FIN, OPERATOR, CASHIER))
RATES_WRITE = define("rates.write", "Add exchange rates", (CFO, FINANCIAL_SPECIALIST))
REPORTS_READ = define("reports.read", "View turnover reports", (*FIN, OPERATOR, AGENT))
MONITORING_READ = define("monitoring.read", "View system health", (OPERATOR, ANTI_FRAUD, CFO))

# --- registers and inbound gateways (their modules map their admin routes in auth.admin_api) ----------
REGISTERS_READ = define("registers.read", "View registers and their tasks", (*FIN, OPERATOR))
REGISTERS_WRITE = define("registers.write", "Change register templates, resend registers", (OPERATOR,))

# --- settlement with providers (settlement/endpoints.py; back-office Balances and Settlement) -----------
ALERTS_WRITE = define("settlement.alerts", "Configure low-balance alerts", (CFO, FINANCIAL_SPECIALIST))
SETTLEMENT_READ = define(
    "settlement.read", "View debts, provider statements, payment orders and bank statements", FIN
)
SETTLEMENT_DETAILS = define("settlement.details", "Change providers' bank details", (CFO, ACCOUNTANT))
ORDERS_CREATE = define(
    "settlement.orders", "Create and cancel payment orders", (FINANCIAL_SPECIALIST, ACCOUNTANT)
)
ORDERS_APPROVE = define("settlement.approve", "Approve payment orders (not one's own)", (CFO,))
ORDERS_PAY = define(
    "settlement.bank",
    "Export payment orders, import bank statements, mark orders paid",
    (FINANCIAL_SPECIALIST, ACCOUNTANT),
)

# --- reconciliation with providers (reconciliation/endpoints.py, backoffice/sections/reconciliation.py) -
RECON_READ = define("reconciliation.read", "View reconciliations with providers", FIN)
RECON_IMPORT = define(
    "reconciliation.import",
    "Import providers' registers for reconciliation",
    (FINANCIAL_SPECIALIST, ACCOUNTANT),
)
RECON_RESOLVE = define(
    "reconciliation.resolve", "Resolve discrepancies: post, cancel, accept", (CFO, ACCOUNTANT)
)
RECON_CONFIGURE = define(
    "reconciliation.configure", "Configure register mappings and fetching", (CFO, FINANCIAL_SPECIALIST)
)
