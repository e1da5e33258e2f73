"""Remuneration and commission are earned only by a succeeded payment: a failed one keeps the amounts
its tariffs priced, but no page, export, register or API answer shows them as earned."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from paymux.payments.models import Payment
from paymux.registers.columns import FIELDS, Lookups
from test_backoffice_ops_support import ops_env, pay_all
from test_backoffice_support import login

FAIL_ALL = {"accounts": {"9000000009": {"pay": "fatal:77:account closed"}}}


def cell(html: str, id_: str) -> str:
    found = re.search(rf'<td id="{id_}">(.*?)</td>', html, re.S)
    assert found, id_
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


async def test_a_failed_payment_shows_no_remuneration_nor_commission(db_url: str) -> None:
    emulators = {"p1": FAIL_ALL, "p2": FAIL_ALL, "p3": FAIL_ALL}
    async with ops_env(db_url, emulators=emulators) as (env, bo):
        ok, failed = await pay_all(
            env, [{"amount": "2756.00"}, {"amount": "2756.00", "account": "9000000009"}]
        )
        assert ok["status"] == "succeeded" and failed["status"] == "failed"
        async with bo.hub.read_sessions() as s:
            ok_row, failed_row = await s.get(Payment, ok["id"]), await s.get(Payment, failed["id"])
        assert ok_row is not None and failed_row is not None
        assert failed_row.remuneration > 0  # priced at acceptance, never earned

        await bo.user("fin", "cfo")
        await login(bo.http, "fin")
        page = (await bo.http.get(f"/backoffice/payments/{ok['id']}")).text
        assert cell(page, "remuneration").startswith("27.56")  # 1% of p1
        failed_page = (await bo.http.get(f"/backoffice/payments/{failed['id']}")).text
        assert cell(failed_page, "remuneration") == "none: the payment did not succeed"
        assert cell(failed_page, "commission") == "none: the payment did not succeed"
        assert failed_row.fee > 0  # the fee is a term of the payment, shown, and was given back
        assert cell(failed_page, "fee").endswith("refunded to the payer with the amount")
        assert "refunded" not in cell(page, "fee")

        one = (await env.http.get(f"/api/v1/admin/payments/{failed['id']}", headers=env.admin)).json()
        assert one["remuneration"] is None and one["commission"] is None, one
        one = (await env.http.get(f"/api/v1/admin/payments/{ok['id']}", headers=env.admin)).json()
        assert one["remuneration"] == "27.56"
        items = (await env.http.get("/api/v1/admin/payments", headers=env.admin)).json()["items"]
        assert {i["id"]: i["remuneration"] for i in items} == {ok["id"]: "27.56", failed["id"]: None}

        # a register listing failed payments too shows them with nothing earned
        lk = Lookups({}, {}, {}, ZoneInfo("UTC"))
        assert FIELDS["remuneration"].get(failed_row, lk).minor == 0
        assert FIELDS["commission"].get(failed_row, lk).minor == 0
        assert FIELDS["remuneration"].get(ok_row, lk).minor == ok_row.remuneration == 2756
