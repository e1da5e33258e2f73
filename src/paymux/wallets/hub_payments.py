"""A hub service paid from a wallet: the wallet is the payment's funding, held then captured.

1. The customer's request (``POST /api/v1/wallet/service-payments``) is priced as the channel API
   prices a payment of the service under the customer's channel (the amount plus the hub's fee =
   the payment's total). In ONE transaction the wallet operation ``service_payment`` is posted
   (wallet -(T+F), the issuer's ``wallet_hold`` +T, fees +F, ``F`` the issuer's own fee for the
   type, if any) in state ``processing``, and its job (:class:`WalletServicePayment`) is queued.
2. The job accepts the payment through the hub's pipeline (``paymux.payments.service.accept``)
   under the customer's channel with ``external_id = wallet-<operation id>`` (idempotent: a crash
   after acceptance finds the same payment). From here the payment is the channel API's: its
   acceptance entry moves the amount to the provider's side, the worker delivers it.
3. The job looks at the payment until it is final. ``succeeded``: the hold is captured, the e-money
   redeemed (hold -T, float +T; the operation ``done``). ``failed``/``cancelled``, or a payment the
   pipeline refused to accept: the wallet is refunded automatically by an operation ``refund``
   (hold -T, fees -F, wallet +(T+F)); the service payment becomes ``failed`` with the reason.

Only e-money issuers whose currency is the service's pay services. The jobs are claimed like every
job table (``paymux.worker.jobs``); every write checks the job's lease.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.errors import Problem, invalid, not_found
from paymux.ledger.service import AccountCache, Line, post_entry
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.payments.schemas import PaymentIn
from paymux.payments.service import accept, price, validate
from paymux.runtime import Hub
from paymux.wallets import service
from paymux.wallets.models import Issuer, Wallet, WalletOperation, WalletServicePayment
from paymux.worker.jobs import PollingWorker, retry_delay, running

log = logging.getLogger(__name__)


class CustomerLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def channel_id(self) -> int: ...


FINAL = ("succeeded", "failed", "cancelled")
ACCEPT_ATTEMPTS = 5  # a pipeline that cannot take the payment (no provider now) is asked this often


def external_id(operation_id: int) -> str:
    return f"wallet-{operation_id}"


async def request(
    hub: Hub,
    session: AsyncSession,
    customer: CustomerLike,
    *,
    key: str,
    from_wallet_id: int,
    service_code: str,
    account: str,
    amount_text: str,
    fields: dict[str, str],
) -> tuple[WalletOperation, bool]:
    """Hold the payment's total in the wallet and queue its job (one transaction, not committed)."""
    w = await session.get(Wallet, from_wallet_id)
    if w is None or w.customer_id != customer.id:
        raise not_found(f"wallet {from_wallet_id}")
    issuer = await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    snap = await hub.catalog.get()
    channel = snap.channels.get(customer.channel_id)
    if channel is None or not channel.enabled:
        raise invalid("channel-disabled", "the customer's channel cannot pay services")
    svc = snap.services.get(service_code)
    if svc is None:
        raise invalid("unknown-service", f"service {service_code!r} does not exist")
    if issuer.kind != "emoney" or issuer.currency != svc.currency:
        raise invalid(
            "currency-mismatch",
            f"service {service_code} is paid in {svc.currency}; wallet {w.id} holds {issuer.currency}"
            + ("" if issuer.kind == "emoney" else f" {issuer.kind}, not e-money"),
        )
    try:
        body = PaymentIn(
            external_id="wallet-0",
            service=service_code,
            account=account,
            amount=amount_text,
            currency=svc.currency,
            fields=fields,
        )
    except ValidationError as e:
        raise invalid("invalid-payment", f"not a valid payment: {e.errors()[:1]}") from None
    v = validate(snap, body)  # 422 naming what is wrong with the account, amount or fields
    pricing = price(snap, v.service, channel, v.amount, utcnow())
    total = v.amount + pricing.fee
    detail = json.dumps(
        {"service": service_code, "account": account, "amount": v.amount, "fields": v.fields}, sort_keys=True
    )
    req = service.OperationRequest(
        customer.channel_id, key, "service_payment", customer.id, total, w.id, None, detail=detail
    )
    op, created = await service.execute(session, hub.accounts, req)
    if created:
        session.add(
            WalletServicePayment(
                operation_id=op.id,
                service_id=v.service.id,
                service_code=service_code,
                account=account,
                fields=v.fields,
                amount=v.amount,
                total=total,
                currency=svc.currency,
                status="pending" if op.state == "processing" else "waiting",
                due_at=utcnow(),
                attempts=0,
            )
        )
        if op.state in ("failed", "rejected"):
            job = await _job_of(session, op.id)
            job.status, job.outcome = "done", "failed"
        await session.flush()
    return op, created


async def _job_of(session: AsyncSession, operation_id: int) -> WalletServicePayment:
    await session.flush()
    job = await session.scalar(
        select(WalletServicePayment).where(WalletServicePayment.operation_id == operation_id)
    )
    assert job is not None
    return job


async def after_review(session: AsyncSession, op: WalletOperation) -> None:
    """A held service payment was approved (posted: its job starts) or rejected/failed (it ends)."""
    if op.type != "service_payment":
        return
    job = await _job_of(session, op.id)
    if op.state == "processing":
        job.status, job.due_at = "pending", utcnow()
    else:
        job.status, job.outcome = "done", "failed"
    job.updated_at = utcnow()


async def job_view(session: AsyncSession, operation_id: int) -> dict[str, Any] | None:
    job = await session.scalar(
        select(WalletServicePayment).where(WalletServicePayment.operation_id == operation_id)
    )
    if job is None:
        return None
    return {
        "service": job.service_code,
        "account": job.account,
        "amount": format_amount(job.amount, job.currency),
        "total": format_amount(job.total, job.currency),
        "currency": job.currency,
        "payment_id": job.payment_id,
        "outcome": job.outcome,
        "error": job.error_message,
    }


# --- the job ------------------------------------------------------------------------------------------


async def _fenced(session: AsyncSession, job: WalletServicePayment, owner: str, **values: Any) -> bool:
    """Write ``values`` to the job if its lease is still ``owner``'s."""
    res = await session.execute(
        update(WalletServicePayment)
        .where(WalletServicePayment.id == job.id, WalletServicePayment.lease_owner == owner)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(res, "rowcount", 0))


async def settle(
    session: AsyncSession,
    accounts: AccountCache,
    job: WalletServicePayment,
    op: WalletOperation,
    *,
    paid: bool,
    reason: str | None,
) -> None:
    """Capture the hold (paid) or give it all back to the wallet by a ``refund`` operation."""
    issuer = await session.get(Issuer, op.issuer_id)
    wallet = await session.get(Wallet, op.from_wallet_id)
    assert issuer is not None and wallet is not None
    now = utcnow()
    if paid:
        await post_entry(
            session,
            accounts,
            "wallet_service_capture",
            [Line(service.hold_key(issuer), -op.amount), Line(service.float_key(issuer), op.amount)],
            memo=f"wallet operation {op.id}: payment {job.payment_id} succeeded",
        )
        op.state, op.updated_at = "done", now
        job.outcome = "paid"
        return
    refund = WalletOperation(
        channel_id=op.channel_id,
        idempotency_key=f"auto refund of {op.id}",  # a space: no client's key can take it
        request_hash="-",
        type="refund",
        state="done",
        customer_id=op.customer_id,
        issuer_id=op.issuer_id,
        from_wallet_id=None,
        to_wallet_id=wallet.id,
        amount=op.amount + op.fee,
        currency=op.currency,
        to_amount=op.amount + op.fee,
        to_currency=op.currency,
        fee=0,
        refund_of_id=op.id,
    )
    session.add(refund)
    await session.flush()
    refund.entry_id = await post_entry(
        session,
        accounts,
        "wallet_refund",
        [
            Line(service.hold_key(issuer), -op.amount),
            Line(service.fees_key(issuer), -op.fee),
            Line(service.wallet_key(wallet, issuer), op.amount + op.fee),
        ],
        memo=f"wallet operation {refund.id}: refund of {op.id}",
    )
    op.state, op.updated_at = "failed", now
    op.problem = Problem(
        422, "payment-failed", "Payment failed", reason or "the payment failed", refund_operation_id=refund.id
    ).to_dict()
    job.outcome = "refunded"
    job.error_message = (reason or "")[:500] or None


async def run_job(hub: Hub, job_id: int, owner: str, now: dt.datetime | None = None) -> str:
    """One step of a claimed job: accept its payment, or look at it and settle when final."""
    now = now or utcnow()
    async with hub.read_sessions() as session:
        job = await session.get(WalletServicePayment, job_id)
        if job is None or job.lease_owner != owner or job.status != "running":
            return "lost"
        payment_id, attempts = job.payment_id, job.attempts
        op = await session.get(WalletOperation, job.operation_id)
        assert op is not None
        channel_id = op.channel_id
    failure: str | None = None
    if payment_id is None:
        snap = await hub.catalog.get()
        channel = snap.channels.get(channel_id)
        try:
            if channel is None:
                raise Problem(422, "channel-gone", "Channel gone", "the customer's channel is gone")
            body = PaymentIn(
                external_id=external_id(job.operation_id),
                service=job.service_code,
                account=job.account,
                amount=format_amount(job.amount, job.currency),
                currency=job.currency,
                fields={str(k): str(v) for k, v in (job.fields or {}).items()},
            )
            payment, _ = await accept(hub, channel, body)
            payment_id = int(payment.id)
        except Problem as p:
            if p.status == 409 and isinstance(p.extra.get("payment_id"), int):
                payment_id = int(p.extra["payment_id"])
            elif p.status in (400, 404, 422) or attempts >= ACCEPT_ATTEMPTS:
                failure = f"the payment was not accepted: {p.detail or p.title}"
            else:
                async with hub.sessions() as session:
                    await _fenced(
                        session,
                        job,
                        owner,
                        status="pending",
                        due_at=now + retry_delay(1, 60, attempts),
                        error_message=(p.detail or p.title)[:500],
                    )
                    await session.commit()
                return "retry"
    status: str | None = None
    error: str | None = None
    if payment_id is not None and failure is None:
        async with hub.read_sessions() as session:
            row = await session.get(Payment, payment_id)
            if row is not None:
                status, error = row.status, row.error_message
        if status in ("failed", "cancelled"):
            failure = f"the payment {status}" + (f": {error}" if error else "")
    async with hub.sessions() as session:
        job = await session.get(WalletServicePayment, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.lease_owner != owner:
            await session.rollback()
            return "lost"
        job.payment_id = payment_id
        if status != "succeeded" and failure is None:  # not final yet: look again soon
            job.status, job.due_at, job.updated_at = "pending", now + dt.timedelta(seconds=1), now
            await session.commit()
            return "waiting"
        op = await session.get(
            WalletOperation, job.operation_id, with_for_update=True, populate_existing=True
        )
        assert op is not None
        await settle(session, hub.accounts, job, op, paid=failure is None, reason=failure)
        job.status, job.updated_at = "done", now
        await session.commit()
        return job.outcome or "done"


class HubPaymentWorker(PollingWorker):
    """Carries the service payments of wallets through the payment pipeline."""

    table = WalletServicePayment
    name = "wallet service payments"
    job_noun = "wallet service payment"
    owner_prefix = "wsp"

    def __init__(self, hub: Hub, poll_seconds: float = 1.0) -> None:
        super().__init__(
            hub,
            poll_seconds=poll_seconds,
            schedule_seconds=3600,
            lease_seconds=60,
            claim_limit=50,
            log=log,
        )

    async def schedule(self, now: dt.datetime | None = None) -> None:
        return None

    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        return await run_job(self.hub, job_id, self.owner, now)


def running_hub_payment_worker(hub: Hub) -> Any:
    """Run a HubPaymentWorker in the background for the duration of the block."""
    return running(HubPaymentWorker(hub))
