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
SUPPORT_MANAGER = "support_manager"
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
    SUPPORT_MANAGER: "Support manager",
    OPERATOR: "Operator",
    AGENT: "Agent",
}

# Predefined roles a role may give to users beyond its own permissions (and whose users it may then
# manage). Everyone else gives only roles whose permissions they hold themselves (auth/grants.py).
# Compliance creates and manages the Customer support and Anti-fraud staff; the Support manager, the
# Customer support staff (and, with roles.write, roles holding part of its own permissions).
DELEGATIONS: dict[str, frozenset[str]] = {
    COMPLIANCE: frozenset({SUPPORT, ANTI_FRAUD}),
    SUPPORT_MANAGER: frozenset({SUPPORT}),
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
# the support centre: its staff and the manager who runs it
SUPPORT_TEAM = (SUPPORT, SUPPORT_MANAGER)

# --- users, roles, audit ------------------------------------------------------------------------------
USERS_READ = define("users.read", "View users", (COMPLIANCE, SUPPORT_MANAGER))
# Compliance: only users whose permissions it holds, or of the roles it delegates (DELEGATIONS)
USERS_WRITE = define("users.write", "Create and change users", (COMPLIANCE, SUPPORT_MANAGER))
ROLES_READ = define("roles.read", "View roles", (COMPLIANCE, SUPPORT_MANAGER))
# a Support manager creates roles holding part of its own permissions (auth/grants.py)
ROLES_WRITE = define("roles.write", "Create and change roles", (SUPPORT_MANAGER,))
ORGS_READ = define("orgs.read", "View organizations", (COMPLIANCE, CFO))
ORGS_WRITE = define("orgs.write", "Create and change organizations")
SESSIONS_READ = define("sessions.read", "View sessions of users", (COMPLIANCE,))
SESSIONS_END = define("sessions.end", "End sessions of users")
AUDIT_READ = define("audit.read", "View the audit log", (CFO, COMPLIANCE, ANTI_FRAUD))
API_TOKENS = define("api.tokens", "Own API tokens", (OPERATOR, CFO, FINANCIAL_SPECIALIST))
# admin tokens carry every permission: only the Administrator sees and revokes them
ADMIN_TOKENS = define("admin_tokens.manage", "View and revoke admin tokens")

# --- catalog and operations (admin API) ---------------------------------------------------------------
CATALOG_READ = define("catalog.read", "View the catalog", (*FIN, *OVERSIGHT, *SUPPORT_TEAM, OPERATOR))
CATALOG_WRITE = define("catalog.write", "Change the catalog", (OPERATOR,))
# `paymux catalog export --with-secrets`: every read masks secrets; only the Administrator gets them
CATALOG_SECRETS = define("catalog.secrets", "Export the catalog with its secrets")
CHANNELS_READ = define("channels.read", "View channels", (*FIN, *OVERSIGHT, *SUPPORT_TEAM, OPERATOR, AGENT))
CHANNEL_KEYS = define("channels.keys", "Issue, list and revoke channel API keys", (OPERATOR,))
ROUTING_READ = define("routing.read", "View routes and switches", (CFO, *OVERSIGHT, OPERATOR, *SUPPORT_TEAM))
ROUTING_WRITE = define("routing.write", "Switch providers", (OPERATOR,))
TARIFFS_READ = define("tariffs.read", "View tariffs", (*FIN, OPERATOR, COMPLIANCE))
# direct writes skip the maker-checker: only the Administrator (and catalog files / admin tokens)
TARIFFS_WRITE = define("tariffs.write", "Add tariff versions")
TARIFFS_PROPOSE = define("tariffs.propose", "Propose tariff changes", (FINANCIAL_SPECIALIST, CFO))
TARIFFS_APPROVE = define("tariffs.approve", "Approve or reject tariff changes", (CFO,))
BALANCES_READ = define("balances.read", "View balances", (*FIN, CASHIER, OPERATOR))
TOPUPS_WRITE = define("topups.write", "Record provider top-ups", (CFO, FINANCIAL_SPECIALIST, CASHIER))
PAYMENTS_READ = define(
    "payments.read", "View payments", (*FIN, CASHIER, *OVERSIGHT, *SUPPORT_TEAM, OPERATOR, AGENT)
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

# --- notifications (notifications/endpoints.py): templates, agents' webhook endpoints, delivery ------------
NOTIFICATIONS_READ = define(
    "notifications.read",
    "View notifications, their delivery log, templates and webhook endpoints",
    (*SUPPORT_TEAM, OPERATOR),
)
NOTIFICATIONS_WRITE = define(
    "notifications.write",
    "Edit notification templates, configure agents' webhook endpoints, redeliver notifications",
    (OPERATOR,),
)

# --- recurring payments (recurring/admin.py; the back-office section "Recurring") -----------------------
RECURRING_READ = define(
    "recurring.read",
    "View recurring customers, subscriptions, runs and agents' recurring settings",
    (*FIN, *OVERSIGHT, *SUPPORT_TEAM, OPERATOR),
)
RECURRING_MANAGE = define(
    "recurring.manage",
    "Pause, resume and cancel customers' subscriptions (with a reason)",
    (*SUPPORT_TEAM, OPERATOR),
)
RECURRING_CONFIGURE = define(
    "recurring.configure", "Configure agents' recurring payments and their funding sources", (OPERATOR,)
)

# --- invoice collection (invoices/admin.py): billers, their API keys and webhooks ---------------------------
INVOICES_READ = define(
    "invoices.read",
    "View billers, their invoices, API keys (masked) and webhook deliveries",
    (*FIN, *SUPPORT_TEAM, OPERATOR),
)
INVOICES_WRITE = define(
    "invoices.write",
    "Create and change billers, issue and revoke their API keys, rotate webhook secrets, redeliver webhooks",
    (OPERATOR,),
)

# --- e-money (wallets/admin.py): issuers, wallet customers, limits, review of held operations ------------
WALLETS_READ = define(
    "wallets.read",
    "View issuers, wallet customers, wallets, operations and limits",
    (*FIN, *OVERSIGHT, *SUPPORT_TEAM),
)
WALLETS_MANAGE = define("wallets.manage", "Create and change issuers and wallet limits")
WALLETS_BLOCK = define(
    "wallets.block",
    "Block and unblock wallet customers, wallets and held operations, approve or reject held operations, "
    "manage anti-fraud rules",
    (ANTI_FRAUD,),
)

# --- e-money contracts and cashback profiles (wallets/contracts_admin.py, section wallet_contracts) -------
CONTRACTS_READ = define(
    "contracts.read", "View e-money contracts, cashback profiles and their proposals", (*FIN, COMPLIANCE)
)
CONTRACTS_PROPOSE = define(
    "contracts.propose", "Propose e-money contracts and cashback profiles", (FINANCIAL_SPECIALIST, CFO)
)
CONTRACTS_APPROVE = define(
    "contracts.approve",
    "Approve or reject e-money contracts and cashback profiles, set customers' contract groups",
    (CFO,),
)
# --- identification of wallet customers (kyc/; back-office section "Identification") -------------------
KYC_READ = define(
    "kyc.read", "View wallet customers' identification status", (COMPLIANCE, ANTI_FRAUD, *SUPPORT_TEAM)
)
KYC_DOCUMENTS = define("kyc.documents", "Open customers' identification documents", (COMPLIANCE,))
KYC_REVIEW = define("kyc.review", "Review identification and change its status", (COMPLIANCE,))

# --- customer support (support/; back-office section "Support") ------------------------------------------
SUPPORT_READ = define("support.read", "View clients' cards and support tickets", (*SUPPORT_TEAM, COMPLIANCE))
SUPPORT_TICKETS = define(
    "support.tickets", "Create tickets (with the client's codeword), answer and change them", SUPPORT_TEAM
)
SUPPORT_ASSIGN = define("support.assign", "Assign support tickets to others", (SUPPORT_MANAGER,))

# --- texts (texts/; back-office section "Texts") ----------------------------------------------------------
TEXTS_EDIT = define("texts.edit", "Edit the texts of the back office and notifications")
# --- cash desks (cashdesks/admin.py; the back-office area "Cash") ----------------------------------------
CASHDESK_READ = define(
    "cashdesk.read",
    "View cash desks, cash days, cash operations and the cash reports",
    (CFO, ACCOUNTANT, CASHIER),
)
CASHDESK_MANAGE = define("cashdesk.manage", "Create cash desks and choose their cashiers")
CASHDESK_OPERATE = define(
    "cashdesk.operate",
    "Open and close cash days, top up and withdraw cash, counter-operations, pay redeem requests in cash",
    (CASHIER,),
)
CASHDESK_ACCEPT = define("cashdesk.accept", "Reconcile and accept closed cash days", (ACCOUNTANT,))
CASHDESK_SYSTEM_PROPOSE = define(
    "cashdesk.system.propose", "Propose cash input, collection and investment", (ACCOUNTANT,)
)
CASHDESK_SYSTEM_APPROVE = define(
    "cashdesk.system.approve", "Approve or reject system cash operations (not one's own)", (CFO,)
)
REDEEM_MANAGE = define("redeem.manage", "Approve or cancel customers' redeem requests", (ACCOUNTANT,))

# What an agent's users may do, whatever their role holds: read their own channels' payments (as
# ``paymux.payments.visibility`` shows them to agents), their reports and their channels, own API
# tokens for that, and, scoped to the agent by the code that grants them, manage the users of their
# own organization (``auth/grants.py``) and their own channels' API keys (``admin/credentials.py``).
# Every other permission reads or changes the operator's side (providers, balances, the ledger,
# settlement, the audit log, organizations) and is not scoped to an agent.
AGENT_PERMISSIONS = frozenset(
    {
        PAYMENTS_READ,
        REPORTS_READ,
        CHANNELS_READ,
        API_TOKENS,
        USERS_READ,
        USERS_WRITE,
        CHANNEL_KEYS,
    }
)
