"""Resolving discrepancies: post missing payments, cancel erroneous ones, accept differences; the ledger
stays balanced, every action is audited and a second click does nothing."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from harness import Env
from paymux.audit.models import AuditEvent
from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment
from paymux.reconciliation.models import Reconciliation, ReconciliationLine
from paymux.reconciliation.resolve import ResolveError, external_id, resolve_lines
from reconciliation_helpers import line_of, money, payments, recon_env, reconcile, set_mapping, write_csv


async def line(env: Env, recon_id: int, ref: str) -> ReconciliationLine:
    async with env.hub.read_sessions() as session:
        row = await session.scalar(
            select(ReconciliationLine).where(
                ReconciliationLine.reconciliation_id == recon_id, ReconciliationLine.txn_ref == ref
            )
        )
    assert row is not None, ref
    return row


async def resolve(env: Env, recon_id: int, ids: list[int], action: str, **kw: Any) -> list[Any]:
    async with env.hub.sessions() as session:
        recon = await session.get(Reconciliation, recon_id)
        assert recon is not None
        out = await resolve_lines(env.hub, session, recon, ids, action, actor="accountant", **kw)
        await session.commit()
    return out


async def entries_of(env: Env, payment_id: int) -> dict[str, dict[str, int]]:
    """Per entry kind, the net amount posted per account kind for this payment."""
    async with env.hub.read_sessions() as session:
        rows = await session.execute(
            select(JournalEntry.kind, Account.kind, func.sum(Posting.amount))
            .join(Posting, Posting.entry_id == JournalEntry.id)
            .join(Account, Account.id == Posting.account_id)
            .where(JournalEntry.payment_id == payment_id)
            .group_by(JournalEntry.kind, Account.kind)
        )
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for entry, account, amount in rows:
            out[entry][account] = int(amount)
    return dict(out)


async def balanced(env: Env) -> None:
    async with env.hub.read_sessions() as session:
        check = await verify_ledger(session)
    assert check.balanced, check


async def audited(env: Env, action: str) -> int:
    async with env.hub.read_sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
            )
            or 0
        )


@pytest.fixture
async def setup(db_url: str, tmp_path: Path) -> Any:
    async with recon_env(db_url, n=8) as env:
        await set_mapping(env)
        ps = await payments(env)
        failed = next(p for p in ps if p.status == "failed")
        ok = [p for p in ps if p.status == "succeeded"]
        rows = [
            line_of(ok[0], amount=ok[0].amount + 50),
            line_of(ok[1], state="ERR"),
            line_of(failed, state="OK"),
            ["99999999", "21.11.2026 10:00:00", "9009999999", money(1234_56), "OK"],
            *[line_of(p) for p in ok[3:]],
        ]  # ok[2] is missing in their file
        path = write_csv(tmp_path / "p1.csv", rows)
        recon = await reconcile(env, path)
        yield env, recon, ok, failed, path


async def test_post_a_payment_missing_on_our_side(setup: Any) -> None:
    env, recon, _ok, _failed, path = setup
    ln = await line(env, recon.id, "99999999")
    assert ln.kind == "missing_ours"
    recon2 = await reconcile(env, path)  # the same file again, before anything is resolved
    [out] = await resolve(env, recon.id, [ln.id], "post")
    assert out.done, out
    async with env.hub.read_sessions() as session:
        p = await session.get(Payment, out.payment_id)
    assert p is not None
    assert (p.status, p.amount, p.account, p.currency) == ("succeeded", 1234_56, "9009999999", "RUB")
    assert p.external_id == external_id(p.provider_id, "99999999")
    assert p.final_at == ln.provider_at and p.final_at is not None
    ent = await entries_of(env, p.id)
    assert set(ent) == {"payment_accept", "payment_success"}
    assert ent["payment_accept"]["provider_deposit"] == -p.amount  # p1 is prepaid: its deposit pays it
    assert ent["payment_accept"]["channel_collected"] == p.total
    assert ent["payment_success"]["revenue_remuneration"] == -p.remuneration and p.remuneration > 0
    await balanced(env)
    assert await audited(env, "reconciliation.post") == 1
    # a second click does nothing
    [again] = await resolve(env, recon.id, [ln.id], "post")
    assert not again.done and "already posted" in again.message
    # the same line of the reconciliation made before the post: posting it finds the payment booked
    # for that transaction and books nothing more
    ln2 = await line(env, recon2.id, "99999999")
    assert ln2.kind == "missing_ours" and ln2.resolution is None
    [third] = await resolve(env, recon2.id, [ln2.id], "post")
    assert third.done and third.payment_id == p.id and "already booked" in third.message
    async with env.hub.read_sessions() as session:
        assert (
            await session.scalar(select(func.count()).select_from(Payment).where(Payment.amount == 1234_56))
            == 1
        )
    assert await entries_of(env, p.id) == ent
    await balanced(env)
    # reconciled once more after the post: their transaction is matched with the payment posted for it
    recon3 = await reconcile(env, path)
    ln3 = await line(env, recon3.id, "99999999")
    assert (ln3.kind, ln3.payment_id) == ("matched", p.id)


async def test_cancel_an_erroneous_payment(setup: Any) -> None:
    env, recon, ok, _failed, path = setup
    missing = await line(env, recon.id, str(ok[2].id))
    refused = await line(env, recon.id, str(ok[1].id))
    assert (missing.kind, refused.kind) == ("missing_theirs", "status_differs")
    before = await entries_of(env, ok[2].id)
    outs = await resolve(env, recon.id, [missing.id, refused.id], "cancel")
    assert [o.done for o in outs] == [True, True], outs
    async with env.hub.read_sessions() as session:
        for pid in (ok[2].id, ok[1].id):
            p = await session.get(Payment, pid)
            assert p is not None and p.status == "cancelled" and p.error_code == "reconciliation"
    after = await entries_of(env, ok[2].id)
    assert after["payment_cancel"] == {k: -v for k, v in before["payment_accept"].items()}
    assert after["payment_success_reversal"] == {k: -v for k, v in before["payment_success"].items() if v}
    net: dict[str, int] = defaultdict(int)
    for lines in after.values():
        for k, v in lines.items():
            net[k] += v
    assert not any(net.values()), net  # the payment leaves nothing on any account
    await balanced(env)
    assert await audited(env, "reconciliation.cancel") == 2
    again = await resolve(env, recon.id, [missing.id, refused.id], "cancel")
    assert [o.done for o in again] == [False, False]
    assert await entries_of(env, ok[2].id) == after
    # the same payment missing again in another reconciliation: it is no longer succeeded
    recon2 = await reconcile(env, path)
    assert recon2.counts["missing_theirs"] == 0  # cancelled payments are not expected in their register


async def test_post_a_payment_we_think_failed(setup: Any) -> None:
    env, recon, _ok, failed, _path = setup
    ln = await line(env, recon.id, str(failed.id))
    assert (ln.kind, ln.our_status, ln.provider_status) == ("status_differs", "failed", "succeeded")
    [out] = await resolve(env, recon.id, [ln.id], "post")
    assert out.done and out.payment_id == failed.id, out
    async with env.hub.read_sessions() as session:
        p = await session.get(Payment, failed.id)
    assert p is not None and p.status == "succeeded"
    ent = await entries_of(env, failed.id)
    assert {"payment_accept", "payment_fail", "payment_success"} <= set(ent)
    await balanced(env)
    [again] = await resolve(env, recon.id, [ln.id], "post")
    assert not again.done
    assert await entries_of(env, failed.id) == ent


async def test_accept_a_difference_with_a_reason(setup: Any) -> None:
    env, recon, ok, _failed, _path = setup
    ln = await line(env, recon.id, str(ok[0].id))
    assert ln.kind == "amount_differs"
    with pytest.raises(ResolveError, match="needs a reason"):
        await resolve(env, recon.id, [ln.id], "accept", reason="  ")
    [out] = await resolve(env, recon.id, [ln.id], "accept", reason="their rounding; confirmed by phone")
    assert out.done
    got = await line(env, recon.id, str(ok[0].id))
    assert (got.resolution, got.reason, got.resolved_by) == (
        "accepted",
        "their rounding; confirmed by phone",
        "accountant",
    )
    assert await audited(env, "reconciliation.accept") == 1
    [again] = await resolve(env, recon.id, [ln.id], "accept", reason="again")
    assert not again.done
    assert (await line(env, recon.id, str(ok[0].id))).reason == "their rounding; confirmed by phone"
    assert await audited(env, "reconciliation.accept") == 1


async def test_actions_that_do_not_fit_the_line(setup: Any) -> None:
    env, recon, ok, _failed, _path = setup
    amount = await line(env, recon.id, str(ok[0].id))
    missing_ours = await line(env, recon.id, "99999999")
    matched = await line(env, recon.id, str(ok[3].id))
    outs = await resolve(env, recon.id, [amount.id, matched.id, 10**9], "post")
    assert [o.done for o in outs] == [False, False, False]
    assert "cannot post a line that is amount differs" in outs[0].message
    assert "cannot post a line that is matched" in outs[1].message
    assert "not in reconciliation" in outs[2].message
    # without channel/service defaults and none given: a readable refusal, nothing booked
    await set_mapping(env, {**(await _mapping_without_post())})
    [o] = await resolve(env, recon.id, [missing_ours.id], "post")
    assert not o.done and "choose the channel and the service" in o.message
    assert (await line(env, recon.id, "99999999")).resolution is None
    [o] = await resolve(env, recon.id, [missing_ours.id], "post", channel="term", service="topup")
    assert o.done
    await balanced(env)


async def _mapping_without_post() -> dict[str, Any]:
    from reconciliation_helpers import MAPPING

    return {k: v for k, v in MAPPING.items() if k != "post"}


async def test_resolutions_survive_reconciling_the_register_again(db_url: str, tmp_path: Path) -> None:
    """Every resolution (post a new payment, post ours, cancel, accept) holds when the same register is
    reconciled again: nothing comes back as an open discrepancy, nothing is booked twice."""
    from paymux.reconciliation.service import summary

    async with recon_env(db_url, n=8) as env:
        await set_mapping(env)
        ps = await payments(env)
        failed = next(p for p in ps if p.status == "failed")
        ok = [p for p in ps if p.status == "succeeded"]
        inside = dt.datetime.combine(env.extra["period"].first, dt.time(12, 0))  # their time, in the period
        rows = [
            line_of(ok[0], amount=ok[0].amount + 50),  # amount differs: accepted
            line_of(ok[1], state="ERR"),  # they refused it: ours cancelled
            line_of(failed, state="OK"),  # they did it, ours failed: posted
            ["88888888", inside.strftime("%d.%m.%Y %H:%M:%S"), "9008888888", money(4321_00), "OK"],  # posted
            line_of(ok[3]),
            line_of(ok[3]),  # a duplicate: accepted
            line_of(ok[4], amount=ok[4].amount - 1),  # amount differs: ours cancelled
            *[line_of(p) for p in ok[5:]],
        ]  # ok[2] is missing in their file: accepted
        path = write_csv(tmp_path / "p1.csv", rows)
        first = await reconcile(env, path)
        assert (await line(env, first.id, "88888888")).kind == "missing_ours"

        async def the(recon_id: int, ref: str, kind: str | None = None) -> ReconciliationLine:
            async with env.hub.read_sessions() as session:
                q = select(ReconciliationLine).where(
                    ReconciliationLine.reconciliation_id == recon_id, ReconciliationLine.txn_ref == ref
                )
                if kind:
                    q = q.where(ReconciliationLine.kind == kind)
                found = await session.scalar(q.order_by(ReconciliationLine.id))
            assert found is not None, (ref, kind)
            return found

        done = {}
        for ref, kind, action in (
            (str(ok[0].id), "amount_differs", "accept"),
            (str(ok[1].id), "status_differs", "cancel"),
            (str(failed.id), "status_differs", "post"),
            ("88888888", "missing_ours", "post"),
            (str(ok[3].id), "duplicate", "accept"),
            (str(ok[4].id), "amount_differs", "cancel"),
            (str(ok[2].id), "missing_theirs", "accept"),
        ):
            ln = await the(first.id, ref, kind)
            [out] = await resolve(env, first.id, [ln.id], action, reason="checked with them")
            assert out.done, (ref, out)
            done[ref] = (kind, action, out.payment_id)
        posted = done["88888888"][2]
        async with env.hub.read_sessions() as session:
            p = await session.get(Payment, posted)
            assert p is not None and p.final_at is not None
            assert env.extra["period"].start <= p.final_at < env.extra["period"].end  # in the period
            payments_before = await session.scalar(select(func.count()).select_from(Payment))
        entries_before = {pid: await entries_of(env, pid) for pid in (posted, ok[1].id, failed.id)}

        second = await reconcile(env, path)
        async with env.hub.read_sessions() as session:
            info = await summary(session, second)
        assert info["open_discrepancies"] == 0, info
        # their transaction posted as a new payment is now matched with that payment: not missing twice
        again = await the(second.id, "88888888")
        assert (again.kind, again.payment_id, again.resolution) == ("matched", posted, None)
        assert info["counts"]["missing_theirs"] == 1 and info["counts"]["missing_ours"] == 0
        for ref, (kind, action, payment_id) in done.items():
            if ref == "88888888":
                continue
            ln = await the(second.id, ref, "duplicate" if kind == "duplicate" else None)
            if kind == "duplicate":
                assert ln.line_no is not None and ln.kind == "duplicate"
            resolution = {"accept": "accepted", "cancel": "cancelled", "post": "posted"}[action]
            if ln.kind == "matched":  # ours now as theirs: posted (same amount), or cancelled (refused)
                assert (ref, action) in ((str(failed.id), "post"), (str(ok[1].id), "cancel"))
                assert ln.resolution is None
                continue
            assert (ln.resolution, ln.resolved_payment_id, ln.reason) == (
                resolution,
                payment_id,
                "checked with them",
            ), (ref, ln.kind)
            assert ln.note and f"resolved in reconciliation {first.id}" in ln.note
        # the cancelled payment whose amount differed is a status difference now, resolved as cancelled
        assert (await the(second.id, str(ok[4].id))).kind == "status_differs"
        async with env.hub.read_sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Payment)) == payments_before
        assert {pid: await entries_of(env, pid) for pid in entries_before} == entries_before
        await balanced(env)

        # a third time, from the second: still resolved; a changed line of theirs is a new discrepancy,
        # and of two duplicates only one was accepted
        changed = [*rows]
        changed[0] = line_of(ok[0], amount=ok[0].amount + 70)
        changed.insert(5, line_of(ok[3]))
        third = await reconcile(env, write_csv(tmp_path / "p1-changed.csv", changed))
        async with env.hub.read_sessions() as session:
            info = await summary(session, third)
            dups = (
                await session.scalars(
                    select(ReconciliationLine.resolution).where(
                        ReconciliationLine.reconciliation_id == third.id,
                        ReconciliationLine.kind == "duplicate",
                    )
                )
            ).all()
        assert len(dups) == 2 and set(dups) == {"accepted", None}
        assert (await the(third.id, str(ok[0].id))).resolution is None
        assert (await the(third.id, str(ok[4].id))).resolution == "cancelled"
        assert (await the(third.id, str(ok[2].id))).resolution == "accepted"
        assert info["open_discrepancies"] == 2
