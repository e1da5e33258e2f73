"""Reconciliation: every discrepancy class from a CSV register against real payments (payment ids and
provider txn ids), and the mapping's readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from paymux.errors import Problem
from paymux.reconciliation.models import Reconciliation, ReconciliationLine
from reconciliation_helpers import (
    FAILING,
    MAPPING,
    line_of,
    money,
    payments,
    recon_env,
    reconcile,
    set_mapping,
    write_csv,
)


async def lines_by_ref(env, recon_id: int) -> dict[str, list[ReconciliationLine]]:  # type: ignore[no-untyped-def]
    async with env.hub.read_sessions() as session:
        rows = (
            await session.scalars(
                select(ReconciliationLine)
                .where(ReconciliationLine.reconciliation_id == recon_id)
                .order_by(ReconciliationLine.id)
            )
        ).all()
    out: dict[str, list[ReconciliationLine]] = {}
    for r in rows:
        out.setdefault(r.txn_ref or "", []).append(r)
    return out


async def test_every_class_from_a_csv_register(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url) as env:
        await set_mapping(env)
        ps = await payments(env)
        failed = next(p for p in ps if p.status == "failed")
        assert failed.account == FAILING
        ok = [p for p in ps if p.status == "succeeded"]
        assert len(ok) == 7
        same, changed, refused, left_out, dup = ok[0], ok[1], ok[2], ok[3], ok[4]
        rows = [
            line_of(same),
            line_of(changed, amount=changed.amount + 1),  # one kopeck more at the provider
            line_of(refused, state="ERR"),  # they refused what we think succeeded
            line_of(failed, state="OK"),  # they did what we think failed
            line_of(dup),
            line_of(dup),  # the same transaction twice
            ["99999999", "21.11.2026 10:00:00", "9009999999", money(123_456_78), "OK"],  # not ours
            [
                "99999998",
                "21.11.2026 10:00:00",
                "9009999998",
                money(500),
                "ERR",
            ],  # failed there, unknown here
            *[line_of(p) for p in ok[5:]],
            ["", "", "", money(999_00), ""],  # a totals row without an id is not a line
        ]
        # left_out is not in their file at all
        recon = await reconcile(env, write_csv(tmp_path / "p1.csv", rows))
        assert recon.rows == 10
        assert recon.counts == {
            "matched": 1 + 1 + 1 + len(ok[5:]),  # same, dup's first line, unknown-failed, the rest
            "amount_differs": 1,
            "status_differs": 2,
            "missing_ours": 1,
            "missing_theirs": 1,
            "duplicate": 1,
        }
        by_ref = await lines_by_ref(env, recon.id)
        assert by_ref[str(same.id)][0].kind == "matched"
        ch = by_ref[str(changed.id)][0]
        assert (ch.kind, ch.provider_amount, ch.our_amount) == (
            "amount_differs",
            changed.amount + 1,
            changed.amount,
        )
        assert ch.provider_at is not None and ch.provider_at == changed.final_at.replace(microsecond=0)
        assert [ln.kind for ln in by_ref[str(refused.id)]] == ["status_differs"]
        assert (by_ref[str(refused.id)][0].provider_status, by_ref[str(refused.id)][0].our_status) == (
            "failed",
            "succeeded",
        )
        assert by_ref[str(failed.id)][0].kind == "status_differs"
        assert [ln.kind for ln in by_ref[str(dup.id)]] == ["matched", "duplicate"]
        assert by_ref["99999999"][0].kind == "missing_ours"
        assert by_ref["99999999"][0].provider_amount == 123_456_78
        assert by_ref["99999998"][0].kind == "matched"
        lo = by_ref[str(left_out.id)]
        assert [(x.kind, x.line_no, x.payment_id, x.our_amount) for x in lo] == [
            ("missing_theirs", None, left_out.id, left_out.amount)
        ]


async def test_provider_txn_ids_and_the_period(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=4) as env:
        await set_mapping(env, {**MAPPING, "id_kind": "provider_txn_id", "status_column": None})
        ps = [p for p in await payments(env) if p.status == "succeeded"]
        assert all(p.provider_txn_id for p in ps)
        rows = [[p.provider_txn_id, *line_of(p)[1:4]] for p in ps[:-1]]
        rows.append(["T-not-ours", "21.11.2026 10:00:00", "9001112233", money(100)])
        path = tmp_path / "p1.csv"
        with path.open("w", encoding="utf-8") as f:
            f.write("Txn;Date;Account;Sum\n" + "".join(";".join(r) + "\n" for r in rows))
        recon = await reconcile(env, path)
        assert recon.counts["matched"] == len(ps) - 1
        assert recon.counts["missing_ours"] == 1
        assert recon.counts["missing_theirs"] == 1
        by_ref = await lines_by_ref(env, recon.id)
        assert by_ref[ps[-1].provider_txn_id or ""][0].kind == "missing_theirs"  # named by their txn id


@pytest.mark.parametrize(
    ("rows", "mapping", "message"),
    [
        ([["12x", "21.11.2026 10:00:00", "1", "1,00", "OK"]], {}, "line 2: the transaction id '12x'"),
        (
            [["1", "21.11.2026 10:00:00", "1", "1,001", "OK"]],
            {},
            "line 2: the amount '1,001' has more precision",
        ),
        ([["1", "21.11.2026 10:00:00", "1", "abc", "OK"]], {}, "line 2: the amount 'abc' is not a number"),
        ([["1", "2026-11-21", "1", "1,00", "OK"]], {}, "line 2: the date '2026-11-21' matches none"),
        ([["1", "21.11.2026 10:00:00", "1", "1,00", "MAYBE"]], {}, "line 2: status 'MAYBE' is not known"),
        (
            [["1", "21.11.2026 10:00:00", "1", "1,00", "OK"]],
            {"amount_column": "Total"},
            "column 'Total' is not",
        ),
    ],
)
async def test_malformed_files_store_nothing(
    db_url: str, tmp_path: Path, rows: list[list[str]], mapping: dict[str, str], message: str
) -> None:
    async with recon_env(db_url, n=2) as env:
        await set_mapping(env, {**MAPPING, **mapping})
        ps = [p for p in await payments(env) if p.status == "succeeded"]
        good = [line_of(p) for p in ps] * 1500  # the bad line comes after whole chunks were stored
        path = write_csv(tmp_path / "bad.csv", rows if mapping else [*good, *rows])
        with pytest.raises(Problem) as e:
            await reconcile(env, path)
        assert e.value.status == 422
        detail = e.value.detail or ""
        assert "bad.csv" in detail
        if not mapping:
            message = message.replace("line 2", f"line {len(good) + 2}")
        assert message in detail, detail
        async with env.hub.read_sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Reconciliation)) == 0
            assert await session.scalar(select(func.count()).select_from(ReconciliationLine)) == 0


async def test_not_a_csv_in_the_encoding(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=1) as env:
        await set_mapping(env)
        path = tmp_path / "cp1251.csv"
        write_csv(path, [["99999999", "21.11.2026 10:00:00", "Счёт", "1,00", "OK"]], encoding="cp1251")
        with pytest.raises(Problem) as e:
            await reconcile(env, path)
        assert "is not utf-8 text" in (e.value.detail or "")
        await set_mapping(env, {**MAPPING, "csv": {"encoding": "cp1251"}})
        recon = await reconcile(env, path)
        assert recon.counts["missing_ours"] == 1
        by_ref = await lines_by_ref(env, recon.id)
        assert by_ref["99999999"][0].account == "Счёт"
