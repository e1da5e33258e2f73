"""The permission matrix: every back-office page and admin API route against every predefined role.

Every route of the app under /backoffice and /api/v1/admin must be in MATRIX below (a new route that
is missing fails the test). Each role's user calls each route; it must be refused (403) exactly when
the role lacks the route's permission. Targets are ids/codes that do not exist, so nothing changes.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from sqlalchemy import select

from paymux.auth import permissions as P
from paymux.auth.keys import issue_admin_token
from paymux.auth.sessions import session_hash
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User, UserSession
from test_backoffice_support import ROLE_CODES, bo_app, session_for

PUBLIC = "public"  # no login needed (the login steps themselves)
ANY = "signed-in"  # any signed-in user

B = "/backoffice"
A = "/api/v1/admin"

MATRIX: dict[tuple[str, str], str] = {
    # login steps
    ("GET", f"{B}/static/{{name}}"): PUBLIC,
    ("GET", f"{B}/charts.css"): PUBLIC,
    ("GET", f"{B}/login"): PUBLIC,
    ("POST", f"{B}/login"): PUBLIC,
    ("POST", f"{B}/login/certificate"): PUBLIC,
    ("GET", f"{B}/2fa"): PUBLIC,
    ("POST", f"{B}/2fa"): PUBLIC,
    ("POST", f"{B}/2fa/resend"): PUBLIC,
    ("GET", f"{B}/2fa/enrol"): PUBLIC,
    ("POST", f"{B}/2fa/enrol"): PUBLIC,
    ("POST", f"{B}/2fa/enrol/send"): PUBLIC,
    ("POST", f"{B}/logout"): PUBLIC,
    ("POST", f"{B}/language"): PUBLIC,
    # own account
    ("GET", f"{B}/"): ANY,
    ("GET", f"{B}/account"): ANY,
    ("POST", f"{B}/account/settings"): ANY,
    ("POST", f"{B}/account/password"): ANY,
    ("GET", f"{B}/account/2fa"): ANY,
    ("POST", f"{B}/account/2fa"): ANY,
    ("POST", f"{B}/account/2fa/send"): ANY,
    ("POST", f"{B}/account/2fa/disable"): ANY,
    ("POST", f"{B}/account/tokens"): P.API_TOKENS,
    ("POST", f"{B}/account/tokens/{{token_id}}/revoke"): P.API_TOKENS,
    # users, roles, organizations, sessions, audit
    ("GET", f"{B}/users"): P.USERS_READ,
    ("GET", f"{B}/users/new"): P.USERS_WRITE,
    ("POST", f"{B}/users"): P.USERS_WRITE,
    ("GET", f"{B}/users/{{user_id}}"): P.USERS_READ,
    ("POST", f"{B}/users/{{user_id}}"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/disable"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/enable"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/unlock"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/password"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/reset-second-factor"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/end-sessions"): P.SESSIONS_END,
    ("GET", f"{B}/users/{{user_id}}/tokens/{{token_id}}/revoke"): P.USERS_WRITE,
    ("POST", f"{B}/users/{{user_id}}/tokens/{{token_id}}/revoke"): P.USERS_WRITE,
    ("GET", f"{B}/roles"): P.ROLES_READ,
    ("GET", f"{B}/roles/new"): P.ROLES_WRITE,
    ("GET", f"{B}/roles/{{role_id}}"): P.ROLES_READ,
    ("POST", f"{B}/roles"): P.ROLES_WRITE,
    ("POST", f"{B}/roles/{{role_id}}"): P.ROLES_WRITE,
    ("POST", f"{B}/roles/{{role_id}}/delete"): P.ROLES_WRITE,
    ("GET", f"{B}/organizations"): P.ORGS_READ,
    ("POST", f"{B}/organizations"): P.ORGS_WRITE,
    ("GET", f"{B}/organizations/{{org_id}}"): P.ORGS_READ,
    ("GET", f"{B}/sessions"): P.SESSIONS_READ,
    ("POST", f"{B}/sessions/{{session_id}}/end"): P.SESSIONS_END,
    ("GET", f"{B}/channel-keys/{{key_id}}/revoke"): P.CHANNEL_KEYS,
    ("POST", f"{B}/channel-keys/{{key_id}}/revoke"): P.CHANNEL_KEYS,
    ("GET", f"{B}/admin-tokens"): P.ADMIN_TOKENS,
    ("GET", f"{B}/admin-tokens/{{token_id}}/revoke"): P.ADMIN_TOKENS,
    ("POST", f"{B}/admin-tokens/{{token_id}}/revoke"): P.ADMIN_TOKENS,
    ("GET", f"{B}/audit"): P.AUDIT_READ,
    ("GET", f"{B}/audit/{{event_id}}"): P.AUDIT_READ,
    # operational screens
    ("GET", f"{B}/dashboard"): P.PAYMENTS_READ,
    ("GET", f"{B}/payments"): P.PAYMENTS_READ,
    ("GET", f"{B}/payments/{{payment_id}}"): P.PAYMENTS_READ,
    ("GET", f"{B}/queues"): P.PAYMENTS_READ,
    ("GET", f"{B}/catalog/{{slug}}"): P.CATALOG_READ,
    ("GET", f"{B}/catalog/new/{{slug}}"): P.CATALOG_WRITE,
    ("POST", f"{B}/catalog/new/{{slug}}"): P.CATALOG_WRITE,
    ("GET", f"{B}/catalog/{{slug}}/{{code}}"): P.CATALOG_READ,
    ("POST", f"{B}/catalog/{{slug}}/{{code}}"): P.CATALOG_WRITE,
    ("POST", f"{B}/catalog/{{slug}}/{{code}}/enable"): P.CATALOG_WRITE,
    ("POST", f"{B}/catalog/{{slug}}/{{code}}/disable"): P.CATALOG_WRITE,
    ("GET", f"{B}/routing"): P.ROUTING_READ,
    ("GET", f"{B}/routing/switch"): P.ROUTING_WRITE,
    ("POST", f"{B}/routing/switch/confirm"): P.ROUTING_WRITE,
    ("POST", f"{B}/routing/switch"): P.ROUTING_WRITE,
    ("GET", f"{B}/routing/switches/{{switch_id}}/revert"): P.ROUTING_WRITE,
    ("POST", f"{B}/routing/switches/{{switch_id}}/revert"): P.ROUTING_WRITE,
    ("GET", f"{B}/tariffs"): P.TARIFFS_READ,
    ("GET", f"{B}/tariffs/proposals"): P.TARIFFS_READ,
    ("GET", f"{B}/tariffs/proposals/new"): P.TARIFFS_PROPOSE,
    ("POST", f"{B}/tariffs/proposals"): P.TARIFFS_PROPOSE,
    ("GET", f"{B}/tariffs/proposals/{{proposal_id}}"): P.TARIFFS_READ,
    ("POST", f"{B}/tariffs/proposals/{{proposal_id}}/approve"): P.TARIFFS_APPROVE,
    ("POST", f"{B}/tariffs/proposals/{{proposal_id}}/reject"): P.TARIFFS_APPROVE,
    # e-money contracts and cashback profiles (sections/wallet_contracts.py)
    ("GET", f"{B}/wallets/contracts"): P.CONTRACTS_READ,
    ("GET", f"{B}/wallets/cashback"): P.CONTRACTS_READ,
    ("GET", f"{B}/wallets/contracts/proposals"): P.CONTRACTS_READ,
    ("GET", f"{B}/wallets/cashback/proposals"): P.CONTRACTS_READ,
    ("GET", f"{B}/wallets/contracts/proposals/new"): P.CONTRACTS_PROPOSE,
    ("POST", f"{B}/wallets/contracts/proposals"): P.CONTRACTS_PROPOSE,
    ("GET", f"{B}/wallets/cashback/proposals/new"): P.CONTRACTS_PROPOSE,
    ("POST", f"{B}/wallets/cashback/proposals"): P.CONTRACTS_PROPOSE,
    ("GET", f"{B}/wallets/contracts/proposals/{{proposal_id}}"): P.CONTRACTS_READ,
    ("GET", f"{B}/wallets/cashback/proposals/{{proposal_id}}"): P.CONTRACTS_READ,
    ("POST", f"{B}/wallets/contracts/proposals/{{proposal_id}}/approve"): P.CONTRACTS_APPROVE,
    ("POST", f"{B}/wallets/contracts/proposals/{{proposal_id}}/reject"): P.CONTRACTS_APPROVE,
    ("POST", f"{B}/wallets/cashback/proposals/{{proposal_id}}/approve"): P.CONTRACTS_APPROVE,
    ("POST", f"{B}/wallets/cashback/proposals/{{proposal_id}}/reject"): P.CONTRACTS_APPROVE,
    ("GET", f"{B}/monitoring"): P.MONITORING_READ,
    # admin API
    ("GET", f"{A}/catalog"): P.CATALOG_READ,
    ("POST", f"{A}/catalog"): P.CATALOG_WRITE,
    ("POST", f"{A}/catalog/library"): P.CATALOG_WRITE,
    ("GET", f"{A}/wallets/operations/{{operation_id}}"): P.WALLETS_READ,
    ("GET", f"{A}/wallets/wallets/{{wallet_id}}/statement"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/operations/{{operation_id}}/refund"): P.WALLETS_MANAGE,
    ("GET", f"{A}/providers"): P.CATALOG_READ,
    ("GET", f"{A}/providers/{{code}}"): P.CATALOG_READ,
    ("PUT", f"{A}/providers/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/services"): P.CATALOG_READ,
    ("GET", f"{A}/services/{{code}}"): P.CATALOG_READ,
    ("PUT", f"{A}/services/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/services/{{code}}/route"): P.ROUTING_READ,
    ("GET", f"{A}/channel-groups"): P.CATALOG_READ,
    ("PUT", f"{A}/channel-groups/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/agents"): P.CATALOG_READ,
    ("PUT", f"{A}/agents/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/channels"): P.CHANNELS_READ,
    ("PUT", f"{A}/channels/{{code}}"): P.CATALOG_WRITE,
    ("POST", f"{A}/channels/{{code}}/keys"): P.CHANNEL_KEYS,
    ("GET", f"{A}/channels/{{code}}/keys"): P.CHANNEL_KEYS,
    ("POST", f"{A}/channels/{{code}}/keys/{{key}}/revoke"): P.CHANNEL_KEYS,
    ("GET", f"{A}/admin-tokens"): P.ADMIN_TOKENS,
    ("POST", f"{A}/admin-tokens/{{token}}/revoke"): P.ADMIN_TOKENS,
    ("POST", f"{A}/{{kind}}s/{{code}}/enable"): P.CATALOG_WRITE,
    ("POST", f"{A}/{{kind}}s/{{code}}/disable"): P.CATALOG_WRITE,
    ("GET", f"{A}/tariffs"): P.TARIFFS_READ,
    ("POST", f"{A}/tariffs"): P.TARIFFS_WRITE,
    ("POST", f"{A}/switches"): P.ROUTING_WRITE,
    ("POST", f"{A}/switches/{{switch_id}}/revert"): P.ROUTING_WRITE,
    ("GET", f"{A}/switches"): P.ROUTING_READ,
    ("GET", f"{A}/balances"): P.BALANCES_READ,
    ("POST", f"{A}/providers/{{code}}/topups"): P.TOPUPS_WRITE,
    ("GET", f"{A}/providers/{{code}}/balance"): P.BALANCES_READ,
    ("GET", f"{A}/payments"): P.PAYMENTS_READ,
    ("GET", f"{A}/payments/{{payment_id}}"): P.PAYMENTS_READ,
    ("GET", f"{A}/health/providers"): P.MONITORING_READ,
    ("GET", f"{A}/gateways"): P.CATALOG_READ,
    ("GET", f"{A}/gateways/{{code}}"): P.CATALOG_READ,
    ("PUT", f"{A}/gateways/{{code}}"): P.CATALOG_WRITE,
    ("GET", f"{A}/providers/{{provider}}/register-templates"): P.REGISTERS_READ,
    ("POST", f"{A}/providers/{{provider}}/register-templates"): P.REGISTERS_WRITE,
    ("GET", f"{A}/register-templates/{{template_id}}"): P.REGISTERS_READ,
    ("PUT", f"{A}/register-templates/{{template_id}}"): P.REGISTERS_WRITE,
    ("DELETE", f"{A}/register-templates/{{template_id}}"): P.REGISTERS_WRITE,
    ("POST", f"{A}/register-templates/{{template_id}}/regenerate"): P.REGISTERS_WRITE,
    ("GET", f"{A}/register-tasks"): P.REGISTERS_READ,
    ("GET", f"{A}/register-tasks/{{task_id}}"): P.REGISTERS_READ,
    ("GET", f"{A}/register-tasks/{{task_id}}/file"): P.REGISTERS_READ,
    ("POST", f"{A}/register-tasks/{{task_id}}/retry"): P.REGISTERS_WRITE,
    # registers back office (backoffice/sections/registers.py)
    ("GET", f"{B}/registers"): P.REGISTERS_READ,
    ("GET", f"{B}/registers/templates/new"): P.REGISTERS_WRITE,
    ("POST", f"{B}/registers/templates/new"): P.REGISTERS_WRITE,
    ("GET", f"{B}/registers/templates/{{template_id}}"): P.REGISTERS_READ,
    ("POST", f"{B}/registers/templates/{{template_id}}"): P.REGISTERS_WRITE,
    ("POST", f"{B}/registers/templates/{{template_id}}/enable"): P.REGISTERS_WRITE,
    ("POST", f"{B}/registers/templates/{{template_id}}/disable"): P.REGISTERS_WRITE,
    ("GET", f"{B}/registers/tasks"): P.REGISTERS_READ,
    ("GET", f"{B}/registers/tasks/{{task_id}}/file"): P.REGISTERS_READ,
    ("POST", f"{B}/registers/tasks/{{task_id}}/retry"): P.REGISTERS_WRITE,
    ("GET", f"{B}/registers/regenerate"): P.REGISTERS_WRITE,
    ("POST", f"{B}/registers/regenerate"): P.REGISTERS_WRITE,
    # tariff maker-checker (tariffs/proposal_endpoints.py)
    ("GET", f"{A}/tariff-proposals"): P.TARIFFS_READ,
    ("POST", f"{A}/tariff-proposals"): P.TARIFFS_PROPOSE,
    ("GET", f"{A}/tariff-proposals/{{proposal_id}}"): P.TARIFFS_READ,
    ("POST", f"{A}/tariff-proposals/{{proposal_id}}/approve"): P.TARIFFS_APPROVE,
    ("POST", f"{A}/tariff-proposals/{{proposal_id}}/reject"): P.TARIFFS_APPROVE,
    # reconciliation (reconciliation/endpoints.py, backoffice/sections/reconciliation.py)
    ("GET", f"{B}/reconciliation"): P.RECON_READ,
    ("POST", f"{B}/reconciliation"): P.RECON_IMPORT,
    ("GET", f"{B}/reconciliation/{{recon_id}}"): P.RECON_READ,
    ("POST", f"{B}/reconciliation/{{recon_id}}/resolve"): P.RECON_RESOLVE,
    ("GET", f"{B}/reconciliation/{{recon_id}}/report"): P.RECON_READ,
    ("GET", f"{B}/reconciliation-mappings/{{provider}}"): P.RECON_READ,
    ("POST", f"{B}/reconciliation-mappings/{{provider}}"): P.RECON_CONFIGURE,
    ("POST", f"{B}/reconciliation-fetches/{{fetch_id}}/retry"): P.RECON_IMPORT,
    ("GET", f"{A}/providers/{{provider}}/reconciliation-mapping"): P.RECON_READ,
    ("PUT", f"{A}/providers/{{provider}}/reconciliation-mapping"): P.RECON_CONFIGURE,
    ("POST", f"{A}/providers/{{provider}}/reconciliations"): P.RECON_IMPORT,
    ("GET", f"{A}/reconciliations"): P.RECON_READ,
    ("GET", f"{A}/reconciliations/{{recon_id}}"): P.RECON_READ,
    ("GET", f"{A}/reconciliations/{{recon_id}}/lines"): P.RECON_READ,
    ("POST", f"{A}/reconciliations/{{recon_id}}/resolve"): P.RECON_RESOLVE,
    ("GET", f"{A}/reconciliations/{{recon_id}}/report"): P.RECON_READ,
    ("GET", f"{A}/reconciliation-fetches"): P.RECON_READ,
    ("POST", f"{A}/reconciliation-fetches/{{fetch_id}}/retry"): P.RECON_IMPORT,
    # exchange rates (rates/endpoints.py, section rates)
    ("GET", f"{B}/rates"): P.RATES_READ,
    ("POST", f"{B}/rates"): P.RATES_WRITE,
    ("GET", f"{A}/exchange-rates"): P.RATES_READ,
    ("POST", f"{A}/exchange-rates"): P.RATES_WRITE,
    # recurring payments (section recurring)
    ("GET", f"{B}/recurring"): P.RECURRING_READ,
    ("GET", f"{B}/recurring/customers"): P.RECURRING_READ,
    ("GET", f"{B}/recurring/customers/{{customer_id}}"): P.RECURRING_READ,
    ("GET", f"{B}/recurring/subscriptions/{{subscription_id}}"): P.RECURRING_READ,
    ("GET", f"{B}/recurring/runs"): P.RECURRING_READ,
    ("POST", f"{B}/recurring/subscriptions/{{subscription_id}}/{{action}}"): P.RECURRING_MANAGE,
    ("POST", f"{B}/recurring/runs/{{run_id}}/retry"): P.RECURRING_MANAGE,
    # invoice collection (section invoices)
    ("GET", f"{B}/collections"): P.INVOICES_READ,
    ("GET", f"{B}/billers"): P.INVOICES_READ,
    ("GET", f"{B}/billers/{{code}}"): P.INVOICES_READ,
    ("GET", f"{B}/billers/{{code}}/deliveries"): P.INVOICES_READ,
    ("POST", f"{B}/billers/{{code}}/upload"): P.INVOICES_WRITE,
    ("GET", f"{B}/billers/new"): P.INVOICES_WRITE,
    ("POST", f"{B}/billers/new"): P.INVOICES_WRITE,
    ("GET", f"{B}/billers/{{code}}/edit"): P.INVOICES_WRITE,
    ("POST", f"{B}/billers/{{code}}/edit"): P.INVOICES_WRITE,
    ("POST", f"{B}/billers/{{code}}/mappings"): P.INVOICES_WRITE,
    ("POST", f"{B}/billers/{{code}}/mappings/delete"): P.INVOICES_WRITE,
    ("GET", f"{B}/invoices"): P.INVOICES_READ,
    ("GET", f"{B}/invoices/{{invoice_id}}"): P.INVOICES_READ,
    ("POST", f"{B}/invoices/{{invoice_id}}/remind"): P.INVOICES_WRITE,
    ("POST", f"{B}/invoices/{{invoice_id}}/cancel"): P.INVOICES_WRITE,
    ("POST", f"{B}/invoices/{{invoice_id}}/payments/{{payment_id}}/refund-decision"): P.INVOICES_WRITE,
    ("GET", f"{B}/collections/receipts"): P.INVOICES_READ,
    ("POST", f"{B}/collections/receipts/upload"): P.INVOICES_WRITE,
    ("POST", f"{B}/collections/receipts/{{receipt_id}}/resolve"): P.INVOICES_WRITE,
    ("GET", f"{B}/collections/payouts"): P.INVOICES_READ,
    ("POST", f"{B}/collections/payouts"): P.INVOICES_WRITE,
    ("GET", f"{B}/collections/payouts/{{payout_id}}/pain001"): P.INVOICES_READ,
    # notifications (section notifications)
    ("GET", f"{B}/notification-templates"): P.NOTIFICATIONS_READ,
    ("GET", f"{B}/notification-templates/{{event}}/{{channel}}/{{language}}"): P.NOTIFICATIONS_READ,
    ("POST", f"{B}/notification-templates/{{event}}/{{channel}}/{{language}}"): P.NOTIFICATIONS_WRITE,
    ("GET", f"{B}/notifications"): P.NOTIFICATIONS_READ,
    ("GET", f"{B}/notifications/{{notification_id}}"): P.NOTIFICATIONS_READ,
    ("GET", f"{A}/exchange-rates/convert"): P.RATES_READ,
    # reports (reports/endpoints.py, section reports)
    ("GET", f"{B}/reports"): P.REPORTS_READ,
    ("GET", f"{B}/reports/comparison"): P.REPORTS_READ,
    ("GET", f"{A}/reports/turnover"): P.REPORTS_READ,
    ("GET", f"{A}/reports/comparison"): P.REPORTS_READ,
    # settlement (settlement/endpoints.py, sections balances and settlement)
    ("GET", f"{B}/balances"): P.BALANCES_READ,
    ("GET", f"{B}/balances/{{code}}"): P.BALANCES_READ,
    ("POST", f"{B}/balances/{{code}}/alerts"): P.ALERTS_WRITE,
    ("POST", f"{B}/balances/{{code}}/topup"): P.TOPUPS_WRITE,
    ("GET", f"{B}/settlement"): P.SETTLEMENT_READ,
    ("POST", f"{B}/settlement/orders"): P.ORDERS_CREATE,
    ("GET", f"{B}/settlement/providers/{{code}}"): P.SETTLEMENT_READ,
    ("GET", f"{B}/settlement/providers/{{code}}/statement.xlsx"): P.SETTLEMENT_READ,
    ("POST", f"{B}/settlement/providers/{{code}}/details"): P.SETTLEMENT_DETAILS,
    ("GET", f"{B}/settlement/orders"): P.SETTLEMENT_READ,
    ("GET", f"{B}/settlement/orders/{{order_id}}"): P.SETTLEMENT_READ,
    ("POST", f"{B}/settlement/orders/{{order_id}}/approve"): P.ORDERS_APPROVE,
    ("POST", f"{B}/settlement/orders/{{order_id}}/cancel"): P.ORDERS_CREATE,
    ("POST", f"{B}/settlement/orders/{{order_id}}/paid"): P.ORDERS_PAY,
    ("POST", f"{B}/settlement/orders/export"): P.ORDERS_PAY,
    ("GET", f"{B}/settlement/statements"): P.SETTLEMENT_READ,
    ("POST", f"{B}/settlement/statements"): P.ORDERS_PAY,
    ("GET", f"{B}/settlement/statements/{{statement_id}}"): P.SETTLEMENT_READ,
    ("GET", f"{A}/deposits"): P.BALANCES_READ,
    ("GET", f"{A}/providers/{{code}}/deposit-history"): P.BALANCES_READ,
    ("GET", f"{A}/providers/{{code}}/forecast"): P.BALANCES_READ,
    ("GET", f"{A}/providers/{{code}}/balance-alert-rules"): P.BALANCES_READ,
    ("PUT", f"{A}/providers/{{code}}/balance-alert-rules/{{currency}}"): P.ALERTS_WRITE,
    ("GET", f"{A}/balance-alerts"): P.BALANCES_READ,
    ("POST", f"{A}/balance-alerts/{{alert_id}}/retry"): P.ALERTS_WRITE,
    ("GET", f"{A}/providers/{{code}}/settlement-details"): P.SETTLEMENT_READ,
    ("PUT", f"{A}/providers/{{code}}/settlement-details"): P.SETTLEMENT_DETAILS,
    ("GET", f"{A}/providers/{{code}}/debts"): P.SETTLEMENT_READ,
    ("GET", f"{A}/providers/{{code}}/statement"): P.SETTLEMENT_READ,
    ("POST", f"{A}/payment-orders"): P.ORDERS_CREATE,
    ("GET", f"{A}/payment-orders"): P.SETTLEMENT_READ,
    ("GET", f"{A}/payment-orders/{{order_id}}"): P.SETTLEMENT_READ,
    ("POST", f"{A}/payment-orders/{{order_id}}/approve"): P.ORDERS_APPROVE,
    ("POST", f"{A}/payment-orders/{{order_id}}/cancel"): P.ORDERS_CREATE,
    ("POST", f"{A}/payment-orders/{{order_id}}/mark-paid"): P.ORDERS_PAY,
    ("POST", f"{A}/payment-orders/export"): P.ORDERS_PAY,
    ("POST", f"{A}/bank-statements"): P.ORDERS_PAY,
    ("GET", f"{A}/bank-statements"): P.SETTLEMENT_READ,
    ("GET", f"{A}/bank-statements/{{statement_id}}"): P.SETTLEMENT_READ,
    # notifications (notifications/endpoints.py)
    ("GET", f"{A}/notification-templates"): P.NOTIFICATIONS_READ,
    ("GET", f"{A}/notification-templates/{{event}}/{{channel}}/{{language}}"): P.NOTIFICATIONS_READ,
    ("PUT", f"{A}/notification-templates/{{event}}/{{channel}}/{{language}}"): P.NOTIFICATIONS_WRITE,
    ("DELETE", f"{A}/notification-templates/{{event}}/{{channel}}/{{language}}"): P.NOTIFICATIONS_WRITE,
    ("POST", f"{A}/notification-templates/{{event}}/{{channel}}/{{language}}/preview"): P.NOTIFICATIONS_READ,
    ("GET", f"{A}/webhook-endpoints"): P.NOTIFICATIONS_READ,
    ("GET", f"{A}/agents/{{code}}/webhook-endpoint"): P.NOTIFICATIONS_READ,
    ("PUT", f"{A}/agents/{{code}}/webhook-endpoint"): P.NOTIFICATIONS_WRITE,
    ("DELETE", f"{A}/agents/{{code}}/webhook-endpoint"): P.NOTIFICATIONS_WRITE,
    ("POST", f"{A}/agents/{{code}}/webhook-endpoint/secret"): P.NOTIFICATIONS_WRITE,
    ("GET", f"{A}/notifications"): P.NOTIFICATIONS_READ,
    ("GET", f"{A}/notifications/{{notification_id}}"): P.NOTIFICATIONS_READ,
    ("POST", f"{A}/notifications/{{notification_id}}/redeliver"): P.NOTIFICATIONS_WRITE,
    # recurring payments (recurring/admin.py)
    ("GET", f"{A}/recurring/agents"): P.RECURRING_READ,
    ("GET", f"{A}/recurring/agents/{{code}}"): P.RECURRING_READ,
    ("PUT", f"{A}/recurring/agents/{{code}}"): P.RECURRING_CONFIGURE,
    ("GET", f"{A}/recurring/customers"): P.RECURRING_READ,
    ("GET", f"{A}/recurring/customers/{{customer_id}}"): P.RECURRING_READ,
    ("GET", f"{A}/recurring/subscriptions/{{subscription_id}}"): P.RECURRING_READ,
    ("GET", f"{A}/recurring/subscriptions/{{subscription_id}}/runs"): P.RECURRING_READ,
    ("POST", f"{A}/recurring/subscriptions/{{subscription_id}}/pause"): P.RECURRING_MANAGE,
    ("POST", f"{A}/recurring/subscriptions/{{subscription_id}}/resume"): P.RECURRING_MANAGE,
    ("POST", f"{A}/recurring/subscriptions/{{subscription_id}}/cancel"): P.RECURRING_MANAGE,
    # invoice collection (invoices/admin.py)
    ("GET", f"{A}/billers"): P.INVOICES_READ,
    ("POST", f"{A}/billers"): P.INVOICES_WRITE,
    ("GET", f"{A}/billers/{{code}}"): P.INVOICES_READ,
    ("PATCH", f"{A}/billers/{{code}}"): P.INVOICES_WRITE,
    ("POST", f"{A}/billers/{{code}}/webhook/secret"): P.INVOICES_WRITE,
    ("POST", f"{A}/billers/{{code}}/keys"): P.INVOICES_WRITE,
    ("GET", f"{A}/billers/{{code}}/keys"): P.INVOICES_READ,
    ("POST", f"{A}/billers/{{code}}/keys/{{key_id}}/revoke"): P.INVOICES_WRITE,
    ("GET", f"{A}/billers/{{code}}/webhook/deliveries"): P.INVOICES_READ,
    ("GET", f"{A}/billers/{{code}}/webhook/deliveries/{{notification_id}}"): P.INVOICES_READ,
    ("POST", f"{A}/billers/{{code}}/webhook/deliveries/{{notification_id}}/redeliver"): P.INVOICES_WRITE,
    ("GET", f"{A}/billers/{{code}}/upload-mappings"): P.INVOICES_READ,
    ("GET", f"{A}/billers/{{code}}/upload-mappings/{{mapping}}"): P.INVOICES_READ,
    ("PUT", f"{A}/billers/{{code}}/upload-mappings/{{mapping}}"): P.INVOICES_WRITE,
    ("DELETE", f"{A}/billers/{{code}}/upload-mappings/{{mapping}}"): P.INVOICES_WRITE,
    ("POST", f"{A}/invoices/statements"): P.INVOICES_WRITE,
    ("GET", f"{A}/invoices/receipts"): P.INVOICES_READ,
    ("GET", f"{A}/invoices/receipts/{{receipt_id}}"): P.INVOICES_READ,
    ("POST", f"{A}/invoices/receipts/{{receipt_id}}/match"): P.INVOICES_WRITE,
    ("POST", f"{A}/invoices/receipts/{{receipt_id}}/ignore"): P.INVOICES_WRITE,
    ("GET", f"{A}/invoices/refunds"): P.INVOICES_READ,
    ("GET", f"{A}/invoices/refunds/{{refund_id}}/pain001"): P.INVOICES_READ,
    ("POST", f"{A}/invoices/payments/{{payment_id}}/refund-decision"): P.INVOICES_WRITE,
    ("PUT", f"{A}/billers/{{code}}/methods/{{method}}"): P.INVOICES_WRITE,
    ("DELETE", f"{A}/billers/{{code}}/methods/{{method}}"): P.INVOICES_WRITE,
    ("POST", f"{A}/invoices/payouts"): P.INVOICES_WRITE,
    ("GET", f"{A}/invoices/payouts"): P.INVOICES_READ,
    ("GET", f"{A}/invoices/payouts/{{code}}/{{date}}/pain001"): P.INVOICES_READ,
    ("POST", f"{A}/billers/{{code}}/invoices/upload"): P.INVOICES_WRITE,
    # e-money back office (sections wallets and wallet_fraud)
    ("GET", f"{B}/emoney/issuers"): P.WALLETS_READ,
    ("POST", f"{B}/emoney/issuers"): P.WALLETS_MANAGE,
    ("GET", f"{B}/emoney/issuers/{{code}}"): P.WALLETS_READ,
    ("POST", f"{B}/emoney/issuers/{{code}}"): P.WALLETS_MANAGE,
    ("GET", f"{B}/emoney/customers"): P.WALLETS_READ,
    ("GET", f"{B}/emoney/customers/{{customer_id}}"): P.WALLETS_READ,
    ("POST", f"{B}/emoney/customers/{{customer_id}}/block"): P.WALLETS_BLOCK,
    ("POST", f"{B}/emoney/customers/{{customer_id}}/unblock"): P.WALLETS_BLOCK,
    ("GET", f"{B}/emoney/coins"): P.WALLETS_READ,
    ("GET", f"{B}/emoney/coins/{{wallet_id}}"): P.WALLETS_READ,
    ("POST", f"{B}/emoney/coins/{{wallet_id}}/block"): P.WALLETS_BLOCK,
    ("POST", f"{B}/emoney/coins/{{wallet_id}}/unblock"): P.WALLETS_BLOCK,
    ("GET", f"{B}/emoney/transactions"): P.WALLETS_READ,
    ("GET", f"{B}/emoney/applications"): P.WALLETS_READ,
    ("GET", f"{B}/emoney/operations/{{operation_id}}"): P.WALLETS_READ,
    ("POST", f"{B}/emoney/operations/{{operation_id}}/{{action}}"): P.WALLETS_BLOCK,
    ("GET", f"{B}/emoney/blocks"): P.WALLETS_READ,
    ("GET", f"{B}/emoney/fraud-rules"): P.WALLETS_READ,
    ("POST", f"{B}/emoney/fraud-rules"): P.WALLETS_BLOCK,
    ("POST", f"{B}/emoney/fraud-rules/{{rule_id}}"): P.WALLETS_BLOCK,
    # identification, support, texts (backoffice/sections/kyc.py, support.py, texts.py)
    ("GET", f"{B}/kyc"): P.KYC_READ,
    ("GET", f"{B}/kyc/{{customer_id}}"): P.KYC_READ,
    ("POST", f"{B}/kyc/{{customer_id}}/status"): P.KYC_REVIEW,
    ("GET", f"{B}/kyc/documents/{{document_id}}"): P.KYC_DOCUMENTS,
    ("GET", f"{B}/support/clients"): P.SUPPORT_READ,
    ("GET", f"{B}/support/clients/{{customer_id}}"): P.SUPPORT_READ,
    ("POST", f"{B}/support/clients/{{customer_id}}/tickets"): P.SUPPORT_TICKETS,
    ("GET", f"{B}/support/tickets"): P.SUPPORT_READ,
    ("GET", f"{B}/support/tickets/{{ticket_id}}"): P.SUPPORT_READ,
    ("POST", f"{B}/support/tickets/{{ticket_id}}/messages"): P.SUPPORT_TICKETS,
    ("POST", f"{B}/support/tickets/{{ticket_id}}/change"): P.SUPPORT_TICKETS,
    ("POST", f"{B}/support/tickets/{{ticket_id}}/attachments"): P.SUPPORT_TICKETS,
    ("GET", f"{B}/support/attachments/{{attachment_id}}"): P.SUPPORT_READ,
    ("GET", f"{B}/texts"): P.TEXTS_EDIT,
    ("POST", f"{B}/texts"): P.TEXTS_EDIT,
    ("GET", f"{B}/texts/export"): P.TEXTS_EDIT,
    ("POST", f"{B}/texts/import"): P.TEXTS_EDIT,
    ("GET", f"{A}/wallets/issuers"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/issuers"): P.WALLETS_MANAGE,
    ("GET", f"{A}/wallets/issuers/{{code}}"): P.WALLETS_READ,
    ("PATCH", f"{A}/wallets/issuers/{{code}}"): P.WALLETS_MANAGE,
    ("GET", f"{A}/wallets/limits"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/limits"): P.WALLETS_MANAGE,
    ("DELETE", f"{A}/wallets/limits/{{limit_id}}"): P.WALLETS_MANAGE,
    ("GET", f"{A}/wallets/customers"): P.WALLETS_READ,
    ("GET", f"{A}/wallets/customers/{{customer_id}}"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/customers/{{customer_id}}/block"): P.WALLETS_BLOCK,
    ("POST", f"{A}/wallets/customers/{{customer_id}}/unblock"): P.WALLETS_BLOCK,
    ("GET", f"{A}/wallets/wallets/{{wallet_id}}/history"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/wallets/{{wallet_id}}/block"): P.WALLETS_BLOCK,
    ("POST", f"{A}/wallets/wallets/{{wallet_id}}/unblock"): P.WALLETS_BLOCK,
    ("POST", f"{A}/wallets/wallets/{{wallet_id}}/overdraft"): P.WALLETS_MANAGE,
    ("GET", f"{A}/wallets/operations"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/operations/{{operation_id}}/approve"): P.WALLETS_BLOCK,
    ("POST", f"{A}/wallets/operations/{{operation_id}}/reject"): P.WALLETS_BLOCK,
    # e-money contracts and cashback profiles (wallets/contracts_admin.py)
    ("GET", f"{A}/wallets/contracts"): P.CONTRACTS_READ,
    ("GET", f"{A}/wallets/customers/{{customer_id}}/contract-terms"): P.CONTRACTS_READ,
    ("PUT", f"{A}/wallets/customers/{{customer_id}}/contract-group"): P.CONTRACTS_APPROVE,
    ("GET", f"{A}/wallets/cashback-profiles"): P.CONTRACTS_READ,
    ("GET", f"{A}/wallets/customers/{{customer_id}}/cashback-profile"): P.CONTRACTS_READ,
    ("GET", f"{A}/wallets/contract-proposals"): P.CONTRACTS_READ,
    ("POST", f"{A}/wallets/contract-proposals"): P.CONTRACTS_PROPOSE,
    ("GET", f"{A}/wallets/contract-proposals/{{proposal_id}}"): P.CONTRACTS_READ,
    ("POST", f"{A}/wallets/contract-proposals/{{proposal_id}}/approve"): P.CONTRACTS_APPROVE,
    ("POST", f"{A}/wallets/contract-proposals/{{proposal_id}}/reject"): P.CONTRACTS_APPROVE,
    ("GET", f"{A}/wallets/cashback-proposals"): P.CONTRACTS_READ,
    ("POST", f"{A}/wallets/cashback-proposals"): P.CONTRACTS_PROPOSE,
    ("GET", f"{A}/wallets/cashback-proposals/{{proposal_id}}"): P.CONTRACTS_READ,
    ("POST", f"{A}/wallets/cashback-proposals/{{proposal_id}}/approve"): P.CONTRACTS_APPROVE,
    ("POST", f"{A}/wallets/cashback-proposals/{{proposal_id}}/reject"): P.CONTRACTS_APPROVE,
    ("POST", f"{A}/wallets/operations/{{operation_id}}/block"): P.WALLETS_BLOCK,
    ("POST", f"{A}/wallets/operations/{{operation_id}}/unblock"): P.WALLETS_BLOCK,
    ("GET", f"{A}/wallets/fraud-rules"): P.WALLETS_READ,
    ("POST", f"{A}/wallets/fraud-rules"): P.WALLETS_BLOCK,
    ("PATCH", f"{A}/wallets/fraud-rules/{{rule_id}}"): P.WALLETS_BLOCK,
    ("DELETE", f"{A}/wallets/fraud-rules/{{rule_id}}"): P.WALLETS_BLOCK,
    ("GET", f"{A}/wallets/applications"): P.WALLETS_READ,
    # cash desks
    ("GET", f"{B}/cash"): P.CASHDESK_READ,
    ("POST", f"{B}/cash/desks"): P.CASHDESK_MANAGE,
    ("GET", f"{B}/cash/desks/{{desk_id}}"): P.CASHDESK_READ,
    ("POST", f"{B}/cash/desks/{{desk_id}}/open"): P.CASHDESK_OPERATE,
    ("POST", f"{B}/cash/desks/{{desk_id}}/close"): P.CASHDESK_OPERATE,
    ("POST", f"{B}/cash/desks/{{desk_id}}/operations"): P.CASHDESK_OPERATE,
    ("POST", f"{B}/cash/desks/{{desk_id}}/operations/{{operation_id}}/reverse"): P.CASHDESK_OPERATE,
    ("GET", f"{B}/cash/operations/{{operation_id}}/receipt"): P.CASHDESK_READ,
    ("GET", f"{B}/cash/balances"): P.CASHDESK_READ,
    ("GET", f"{B}/cash/days"): P.CASHDESK_READ,
    ("GET", f"{B}/cash/days/{{day_id}}"): P.CASHDESK_READ,
    ("POST", f"{B}/cash/days/{{day_id}}/accept"): P.CASHDESK_ACCEPT,
    ("GET", f"{B}/cash/operations"): P.CASHDESK_READ,
    ("GET", f"{B}/cash/system"): P.CASHDESK_READ,
    ("POST", f"{B}/cash/system"): P.CASHDESK_SYSTEM_PROPOSE,
    ("POST", f"{B}/cash/system/{{operation_id}}/decide"): P.CASHDESK_SYSTEM_APPROVE,
    ("GET", f"{B}/cash/redeem"): P.CASHDESK_READ,
    ("POST", f"{B}/cash/redeem/{{request_id}}/decide"): P.REDEEM_MANAGE,
    ("POST", f"{B}/cash/redeem/transfer-file"): P.REDEEM_MANAGE,
    ("GET", f"{B}/cash/report"): P.CASHDESK_READ,
    ("GET", f"{A}/cashdesks"): P.CASHDESK_READ,
    ("POST", f"{A}/cashdesks"): P.CASHDESK_MANAGE,
    ("GET", f"{A}/cashdesks/balances"): P.CASHDESK_READ,
    ("GET", f"{A}/cashdesks/days"): P.CASHDESK_READ,
    ("GET", f"{A}/cashdesks/days/{{day_id}}"): P.CASHDESK_READ,
    ("POST", f"{A}/cashdesks/days/{{day_id}}/accept"): P.CASHDESK_ACCEPT,
    ("GET", f"{A}/cashdesks/operations"): P.CASHDESK_READ,
    ("GET", f"{A}/cashdesks/operations/{{operation_id}}/receipt"): P.CASHDESK_READ,
    ("GET", f"{A}/cashdesks/system-operations"): P.CASHDESK_READ,
    ("POST", f"{A}/cashdesks/system-operations"): P.CASHDESK_SYSTEM_PROPOSE,
    ("POST", f"{A}/cashdesks/system-operations/{{operation_id}}/approve"): P.CASHDESK_SYSTEM_APPROVE,
    ("POST", f"{A}/cashdesks/system-operations/{{operation_id}}/reject"): P.CASHDESK_SYSTEM_APPROVE,
    ("GET", f"{A}/cashdesks/redeem-requests"): P.CASHDESK_READ,
    ("POST", f"{A}/cashdesks/redeem-requests/{{request_id}}/approve"): P.REDEEM_MANAGE,
    ("POST", f"{A}/cashdesks/redeem-requests/{{request_id}}/cancel"): P.REDEEM_MANAGE,
    ("POST", f"{A}/cashdesks/redeem-requests/transfer-file"): P.REDEEM_MANAGE,
    ("POST", f"{A}/cashdesks/redeem-requests/{{request_id}}/transfer-file"): P.REDEEM_MANAGE,
    ("GET", f"{A}/cashdesks/{{desk_id}}"): P.CASHDESK_READ,
    ("PUT", f"{A}/cashdesks/{{desk_id}}/cashiers"): P.CASHDESK_MANAGE,
    ("POST", f"{A}/cashdesks/{{desk_id}}/days"): P.CASHDESK_OPERATE,
    ("POST", f"{A}/cashdesks/{{desk_id}}/days/close"): P.CASHDESK_OPERATE,
    ("POST", f"{A}/cashdesks/{{desk_id}}/operations"): P.CASHDESK_OPERATE,
    ("POST", f"{A}/cashdesks/{{desk_id}}/operations/{{operation_id}}/reverse"): P.CASHDESK_OPERATE,
    ("GET", f"{A}/cashdesks/{{desk_id}}/report"): P.CASHDESK_READ,
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) of the back office and the admin API, however the routers are nested."""
    found: set[tuple[str, str]] = set()

    def add(path: str, methods: set[str]) -> None:
        if path.startswith((B, A)):
            found.update((m, path) for m in methods if m != "HEAD")

    for r in app.router.routes:
        if isinstance(r, _IncludedRouter):
            for c in r.effective_route_contexts():
                add(c.path_format or c.path, set(c.methods))
        elif isinstance(r, APIRoute):
            add(r.path, set(r.methods))
    return found


def concrete(path: str) -> str:
    path = path.replace("{kind}s", "providers").replace("{name}", "bo.css")
    path = re.sub(r"\{\w+_id\}", "999999", path)
    return re.sub(r"\{\w+\}", "zz-none", path)


def allowed(role: str, need: str) -> bool:
    return need in (PUBLIC, ANY) or need in P.role_permissions(role)


async def test_every_route_is_in_the_matrix(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        routes = app_routes(bo.app)
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"routes missing from the permission matrix: {missing}"
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


async def test_back_office_pages_against_every_role(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        for role in ROLE_CODES:
            await bo.user(f"u_{role}", role)
        anonymous = bo.client()
        anonymous.cookies.set("pmx_csrf", "t", domain="testserver.local", path=B)
        failures = []
        for (method, path), need in sorted(MATRIX.items()):
            if not path.startswith(B):
                continue
            url = concrete(path)
            if need == PUBLIC:
                r = await anonymous.request(method, url, headers={"X-CSRF-Token": "t"})
                if r.status_code == 403:
                    failures.append((method, path, "anonymous", r.status_code))
                continue
            r = await anonymous.request(method, url, headers={"X-CSRF-Token": "t"})
            if not (r.status_code == 303 and r.headers["location"].startswith(f"{B}/login")):
                failures.append((method, path, "anonymous", r.status_code))
            for role in ROLE_CODES:
                raw = await session_for(bo.hub, f"u_{role}")
                async with bo.hub.read_sessions() as s:
                    csrf = await s.scalar(
                        select(UserSession.csrf_token).where(UserSession.id_hash == session_hash(raw))
                    )
                async with bo.client() as http:
                    http.cookies.set("pmx_session", raw, domain="testserver.local", path=B)
                    r = await http.request(method, url, headers={"X-CSRF-Token": str(csrf)})
                refused = r.status_code == 403
                if refused == allowed(role, need) or (
                    r.status_code == 303 and "/login" in r.headers["location"]
                ):
                    failures.append((method, path, role, r.status_code))
        await anonymous.aclose()
        assert not failures, failures


async def test_admin_api_against_every_role(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        tokens: dict[str, str] = {}
        for role in ROLE_CODES:
            user = await bo.user(f"u_{role}", role)
            async with bo.hub.sessions() as s:
                u = await s.get(User, user.id)
                assert u is not None
                tokens[role], _ = await issue_token(s, u, "matrix", None)
                await s.commit()
        async with bo.hub.sessions() as s:
            tokens["legacy-admin-token"] = await issue_admin_token(s, "matrix")
            await s.commit()
        failures = []
        for (method, path), need in sorted(MATRIX.items()):
            if not path.startswith(A):
                continue
            url = concrete(path)
            r = await bo.http.request(method, url)
            if r.status_code != 401:
                failures.append((method, path, "anonymous", r.status_code))
            for role, token in tokens.items():
                r = await bo.http.request(method, url, headers={"Authorization": f"Bearer {token}"})
                expect = True if role == "legacy-admin-token" else allowed(role, need)
                if (r.status_code == 403) == expect or r.status_code == 401:
                    failures.append((method, path, role, r.status_code, r.text[:100]))
        assert not failures, failures
