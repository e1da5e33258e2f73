"""What waits for a back-office user: the home page's list, each a count and the page to act on it.

Only what the user's permissions let them open is counted: approvals they may give (not their own
proposals or orders), failed sends, low balances, open discrepancies, payments needing attention, held
e-money operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.sections.dashboard import low_deposits, provider_states
from paymux.backoffice.sections.queues import attention_count
from paymux.cashdesks.models import CashDay, CashSystemOperation, RedeemRequest
from paymux.kyc.models import KycCase
from paymux.payments.visibility import payment_scope
from paymux.reconciliation.models import DISCREPANCIES, ReconciliationFetch, ReconciliationLine
from paymux.registers.models import RegisterTask
from paymux.runtime import Hub
from paymux.settlement.alerts import below_threshold
from paymux.settlement.models import BalanceAlert, PaymentOrder, StatementLine
from paymux.support.models import OPEN_STATUSES, Ticket
from paymux.support.service import overdue_count, unassigned_count
from paymux.tariffs.proposals import TariffProposal, actor_key
from paymux.wallets.contract_models import WalletContractProposal
from paymux.wallets.models import WalletOperation


@dataclass(frozen=True)
class Waiting:
    key: str  # a stable id (tests, styling)
    text: str  # msgid with {n}
    count: int
    link: str
    urgent: bool = False  # something failed or ran low, rather than waits for a decision


async def _count(session: AsyncSession, stmt: Select[Any]) -> int:
    return int(await session.scalar(stmt) or 0)


async def waiting_for(session: AsyncSession, me: Principal, hub: Hub) -> list[Waiting]:
    """What waits for ``me`` (only counts above zero), the most urgent first."""
    out: list[Waiting] = []

    async def add(key: str, text: str, count: int, link: str, urgent: bool = False) -> None:
        if count > 0:
            out.append(Waiting(key, text, count, link, urgent))

    if me.can(P.PAYMENTS_READ):
        scope = await payment_scope(session, me)
        if scope.shows("needs_attention"):
            channels = None if scope.channels is None else set(scope.channels)
            await add(
                "attention",
                "{n} payments need attention",
                await attention_count(session, channels),
                "/backoffice/payments?attention=yes",
                True,
            )
    if me.can(P.BALANCES_READ) and not me.agent_scoped:
        low = {(d["code"], d["currency"]) for d in await low_deposits(session)}
        low |= set(await below_threshold(session))
        await add(
            "low-balances", "{n} provider deposits are running low", len(low), "/backoffice/balances", True
        )
        failed = select(func.count()).select_from(BalanceAlert).where(BalanceAlert.status == "failed")
        await add(
            "failed-alerts",
            "{n} low-balance alerts could not be sent",
            await _count(session, failed),
            "/backoffice/balances",
            True,
        )
    if me.can(P.REGISTERS_READ) and not me.agent_scoped:
        failed = select(func.count()).select_from(RegisterTask).where(RegisterTask.status == "failed")
        await add(
            "failed-registers",
            "{n} registers could not be sent",
            await _count(session, failed),
            "/backoffice/registers/tasks?status=failed",
            True,
        )
    if (me.can(P.ROUTING_READ) or me.can(P.MONITORING_READ)) and not me.agent_scoped:
        broken = [p for p in await provider_states(hub) if p["state"] != "closed"]
        link = "/backoffice/routing" if me.can(P.ROUTING_READ) else "/backoffice/monitoring"
        await add("breakers", "{n} providers are cut off by their circuit breaker", len(broken), link, True)
    if me.can(P.RECON_READ) and not me.agent_scoped:
        failed = (
            select(func.count())
            .select_from(ReconciliationFetch)
            .where(ReconciliationFetch.status == "failed")
        )
        await add(
            "failed-fetches",
            "{n} providers' registers could not be fetched",
            await _count(session, failed),
            "/backoffice/reconciliation",
            True,
        )
        open_lines = (
            select(ReconciliationLine.reconciliation_id, func.count())
            .where(ReconciliationLine.kind.in_(DISCREPANCIES), ReconciliationLine.resolution.is_(None))
            .group_by(ReconciliationLine.reconciliation_id)
        )
        per = {int(r): int(n) for r, n in (await session.execute(open_lines)).all()}
        only = (
            f"/backoffice/reconciliation/{next(iter(per))}?kind=discrepancies&state=open"
            if len(per) == 1
            else ""
        )
        await add(
            "discrepancies",
            "{n} discrepancies with providers' registers are open",
            sum(per.values()),
            only or "/backoffice/reconciliation",
        )
    if me.can(P.TARIFFS_APPROVE) and not me.agent_scoped:
        pending = (
            select(func.count())
            .select_from(TariffProposal)
            .where(TariffProposal.status == "pending", TariffProposal.proposed_by_key != actor_key(me))
        )
        await add(
            "tariff-proposals",
            "{n} tariff proposals wait for your approval",
            await _count(session, pending),
            "/backoffice/tariffs/proposals?status=pending",
        )
    if me.can(P.CONTRACTS_APPROVE) and not me.agent_scoped:
        for kind, text, path in (
            ("contract", "{n} contract proposals wait for your approval", "contracts"),
            ("cashback", "{n} cashback proposals wait for your approval", "cashback"),
        ):
            proposals = (
                select(func.count())
                .select_from(WalletContractProposal)
                .where(
                    WalletContractProposal.kind == kind,
                    WalletContractProposal.status == "pending",
                    WalletContractProposal.proposed_by_key != actor_key(me),
                )
            )
            await add(
                f"{kind}-proposals",
                text,
                await _count(session, proposals),
                f"/backoffice/wallets/{path}/proposals?status=pending",
            )
    if me.can(P.ORDERS_APPROVE) and not me.agent_scoped:
        created = (
            select(func.count())
            .select_from(PaymentOrder)
            .where(PaymentOrder.status == "created", PaymentOrder.created_by != me.audit_name)
        )
        await add(
            "orders-to-approve",
            "{n} payment orders wait for your approval",
            await _count(session, created),
            "/backoffice/settlement/orders?status=created",
        )
    if me.can(P.ORDERS_PAY) and not me.agent_scoped:
        approved = select(func.count()).select_from(PaymentOrder).where(PaymentOrder.status == "approved")
        await add(
            "orders-to-pay",
            "{n} approved payment orders wait to be paid",
            await _count(session, approved),
            "/backoffice/settlement/orders?status=approved",
        )
    if me.can(P.SETTLEMENT_READ) and not me.agent_scoped:
        unmatched = select(func.count()).select_from(StatementLine).where(StatementLine.status == "unmatched")
        await add(
            "unmatched-lines",
            "{n} bank statement lines are not matched",
            await _count(session, unmatched),
            "/backoffice/settlement/statements",
        )
    if me.can(P.WALLETS_BLOCK) and not me.agent_scoped:
        held = (
            select(func.count()).select_from(WalletOperation).where(WalletOperation.state == "pending_review")
        )
        await add(
            "wallet-applications",
            "{n} e-money operations wait for review",
            await _count(session, held),
            "/backoffice/emoney/applications",
        )
    if me.can(P.KYC_REVIEW) and not me.agent_scoped:
        pending = select(func.count()).select_from(KycCase).where(KycCase.status == "pending")
        await add(
            "kyc-pending",
            "{n} customers wait for their identification to be reviewed",
            await _count(session, pending),
            "/backoffice/kyc?status=pending",
        )
    if me.can(P.SUPPORT_READ) and not me.agent_scoped:
        await add(
            "tickets-overdue",
            "{n} support tickets are past their deadline",
            await overdue_count(session),
            "/backoffice/support/tickets?overdue=yes",
            True,
        )
    if me.can(P.SUPPORT_TICKETS) and not me.agent_scoped:
        await add(
            "tickets-unassigned",
            "{n} new support tickets wait for someone to take them",
            await unassigned_count(session),
            "/backoffice/support/tickets?status=open&assignee=none",
        )
        if me.user_id is not None:
            mine = (
                select(func.count())
                .select_from(Ticket)
                .where(Ticket.assignee_id == me.user_id, Ticket.status.in_(OPEN_STATUSES))
            )
            await add(
                "tickets-mine",
                "{n} support tickets are assigned to you",
                await _count(session, mine),
                f"/backoffice/support/tickets?assignee={me.user_id}",
            )
    if me.can(P.CASHDESK_ACCEPT) and not me.agent_scoped:
        closed = select(func.count()).select_from(CashDay).where(CashDay.state == "closed")
        await add(
            "cash-days",
            "{n} closed cash days wait for acceptance",
            await _count(session, closed),
            "/backoffice/cash/days?state=closed",
        )
    if me.can(P.CASHDESK_SYSTEM_APPROVE) and not me.agent_scoped:
        pending_sys = (
            select(func.count())
            .select_from(CashSystemOperation)
            .where(
                CashSystemOperation.state == "pending", CashSystemOperation.proposed_by_key != actor_key(me)
            )
        )
        await add(
            "cash-system",
            "{n} system cash operations wait for your approval",
            await _count(session, pending_sys),
            "/backoffice/cash/system?state=pending",
        )
    if me.can(P.REDEEM_MANAGE) and not me.agent_scoped:
        pending_redeem = (
            select(func.count()).select_from(RedeemRequest).where(RedeemRequest.state == "pending")
        )
        await add(
            "redeem-requests",
            "{n} redeem requests wait for a decision",
            await _count(session, pending_redeem),
            "/backoffice/cash/redeem?state=pending",
        )
        to_send = (
            select(func.count())
            .select_from(RedeemRequest)
            .where(RedeemRequest.state == "approved", RedeemRequest.method == "bank_transfer")
        )
        await add(
            "redeem-transfers",
            "{n} bank transfers wait to be sent",
            await _count(session, to_send),
            "/backoffice/cash/redeem?state=approved&method=bank_transfer",
        )
    if me.can(P.CASHDESK_OPERATE) and not me.agent_scoped:
        payable = (
            select(func.count())
            .select_from(RedeemRequest)
            .where(RedeemRequest.state == "approved", RedeemRequest.method == "cash")
        )
        await add(
            "redeem-payouts",
            "{n} redeem requests wait to be paid in cash",
            await _count(session, payable),
            "/backoffice/cash/redeem?state=approved",
        )
    return sorted(out, key=lambda w: not w.urgent)
