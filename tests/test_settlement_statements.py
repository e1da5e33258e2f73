"""Bank statements (camt.053, 1CClientBankExchange): parsed, matched to approved payment orders by amount +
reference + counterparty and to prepaid top-ups, posted once even when imported twice."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from paymux.ledger.models import TopUp
from paymux.ledger.service import verify_ledger
from paymux.settlement import orders as order_service
from paymux.settlement.models import PaymentOrder, StatementLine
from test_settlement_support import (
    P1_ACCOUNT,
    P1_IBAN,
    P2_ACCOUNT,
    P2_IBAN,
    P2_INN,
    SEnv,
    at,
    catalog,
    settle_env,
)

OUR_IBAN = "FR1420041010050500013M02606"
OUR_ACCOUNT = "40702810000000000777"


def camt053(entries: list[dict[str, str]]) -> bytes:
    ntry = "".join(
        f"""
    <Ntry>
      <NtryRef>{e.get("ref", "")}</NtryRef>
      <Amt Ccy="{e.get("ccy", "RUB")}">{e["amount"]}</Amt>
      <CdtDbtInd>{e.get("ind", "DBIT")}</CdtDbtInd>
      <Sts>{e.get("sts", "BOOK")}</Sts>
      <BookgDt><Dt>2026-03-05</Dt></BookgDt>
      <ValDt><Dt>2026-03-05</Dt></ValDt>
      <AcctSvcrRef>{e["bank_ref"]}</AcctSvcrRef>
      <BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>
      <NtryDtls><TxDtls>
        <Refs><EndToEndId>{e.get("e2e", "NOTPROVIDED")}</EndToEndId></Refs>
        <RltdPties>
          <Cdtr><Nm>{e.get("name", "")}</Nm></Cdtr>
          <CdtrAcct><Id><IBAN>{e["iban"]}</IBAN></Id></CdtrAcct>
        </RltdPties>
        <RmtInf><Ustrd>{e.get("text", "")}</Ustrd></RmtInf>
      </TxDtls></NtryDtls>
    </Ntry>"""
        for e in entries
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT-1</MsgId><CreDtTm>2026-03-05T18:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>S-2026-03-05</Id>
      <CreDtTm>2026-03-05T18:00:00</CreDtTm>
      <Acct><Id><IBAN>{OUR_IBAN}</IBAN></Id><Ccy>RUB</Ccy></Acct>{ntry}
    </Stmt>
  </BkToCstmrStmt>
</Document>""".encode()


def onec_statement(docs: list[dict[str, str]]) -> bytes:
    lines = [
        "1CClientBankExchange",
        "ВерсияФормата=1.03",
        "Кодировка=Windows",
        "Отправитель=Банк",
        "Получатель=Бухгалтерия",
        "ДатаСоздания=06.03.2026",
        "ДатаНачала=05.03.2026",
        "ДатаКонца=05.03.2026",
        f"РасчСчет={OUR_ACCOUNT}",
        "СекцияРасчСчет",
        "ДатаНачала=05.03.2026",
        "ДатаКонца=05.03.2026",
        f"РасчСчет={OUR_ACCOUNT}",
        "НачальныйОстаток=100000.00",
        "КонецРасчСчет",
    ]
    for d in docs:
        lines += [
            "СекцияДокумент=Платежное поручение",
            f"Номер={d['number']}",
            "Дата=05.03.2026",
            f"Сумма={d['amount']}",
            f"ПлательщикСчет={d.get('payer', OUR_ACCOUNT)}",
            "Плательщик1=ООО Пэймакс",
            "ДатаСписано=05.03.2026",
            f"ПолучательСчет={d.get('payee', '')}",
            f"ПолучательИНН={d.get('inn', '')}",
            f"Получатель1={d.get('name', '')}",
            "ПолучательБИК=044525225",
            f"НазначениеПлатежа={d.get('text', '')}",
            "КонецДокумента",
        ]
    lines.append("КонецФайла")
    return ("\r\n".join(lines) + "\r\n").encode("cp1251")


async def _order(env: SEnv) -> PaymentOrder:
    """One approved order to p2 for 1764.00 (payments of 1-2 March Moscow time, 2% withheld)."""
    await env.pay("p2", 100_000, at("2026-03-01T08:00:00+00:00"), remuneration=2_000)
    await env.pay("p2", 50_000, at("2026-03-01T20:59:00+00:00"), remuneration=1_000)
    await env.pay("p2", 30_000, at("2026-03-01T23:30:00+00:00"), remuneration=600)
    await env.details("p2", beneficiary="Provider Two", iban=P2_IBAN, account=P2_ACCOUNT, inn=P2_INN)
    await env.details("p1", beneficiary="Provider One", iban=P1_IBAN, account=P1_ACCOUNT)
    snap = await env.hub.catalog.get()
    async with env.hub.sessions() as s:
        (o,) = await order_service.create_orders(
            s, snap, actor="user:maker", through=dt.date(2026, 3, 2), now=at("2026-03-04T09:00:00+00:00")
        )
        await order_service.approve(s, o.id, "user:checker")
        await s.commit()
        return o


async def _import(env: SEnv, data: bytes, name: str) -> dict:  # type: ignore[type-arg]
    r = await env.http.post(
        "/api/v1/admin/bank-statements", params={"file_name": name}, content=data, headers=env.admin
    )
    assert r.status_code == 201, r.text
    body: dict = r.json()  # type: ignore[type-arg]
    return body


async def test_camt053_pays_the_order_and_tops_up_once(db_url: str) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        order = await _order(env)
        deposit_before = await env.balance("provider_deposit", "p1")
        data = camt053(
            [
                # our payment of the order: amount, end-to-end id and the provider's IBAN all match
                {
                    "amount": "1764.00",
                    "bank_ref": "B-1",
                    "e2e": order.number,
                    "iban": P2_IBAN,
                    "name": "Provider Two",
                },
                # money sent to prepaid p1's account: a top-up of its deposit
                {"amount": "5000.00", "bank_ref": "B-2", "iban": P1_IBAN, "text": "deposit"},
                # same amount and reference but someone else's account: not the order
                {
                    "amount": "1764.00",
                    "bank_ref": "B-3",
                    "e2e": order.number,
                    "iban": "DE02120300000000202051",
                },
                # an incoming payment and a pending entry: left alone
                {"amount": "10.00", "bank_ref": "B-4", "ind": "CRDT", "iban": P2_IBAN},
                {"amount": "1764.00", "bank_ref": "B-5", "e2e": order.number, "iban": P2_IBAN, "sts": "PDNG"},
            ]
        )
        first = await _import(env, data, "camt053-0305.xml")
        assert (first["format"], first["lines"], first["new_lines"], first["matched"]) == ("camt053", 4, 4, 2)
        assert first["orders_paid"] == [order.number] and first["topups"] == ["p1"]
        assert [ln["status"] for ln in first["new"]] == ["order", "topup", "unmatched", "unmatched"]

        r = await env.http.get(f"/api/v1/admin/payment-orders/{order.id}", headers=env.admin)
        assert r.json()["status"] == "paid" and r.json()["paid_by"] == "statement"
        assert await env.balance("provider_payable", "p2") == 0
        assert await env.balance("provider_deposit", "p1") == deposit_before + 500_000
        assert await env.entries("provider_payment") == 1 and await env.entries("topup") == 1

        again = await _import(env, data, "camt053-0305-again.xml")
        assert (again["new_lines"], again["repeated"], again["matched"]) == (0, 4, 0)
        assert await env.entries("provider_payment") == 1 and await env.entries("topup") == 1
        assert await env.balance("provider_deposit", "p1") == deposit_before + 500_000
        async with env.hub.read_sessions() as s:
            assert len((await s.scalars(select(StatementLine))).all()) == 4
            (topup,) = (await s.scalars(select(TopUp))).all()
            assert topup.amount == 500_000 and topup.reference.startswith("camt:")
            assert (await verify_ledger(s)).balanced

        r = await env.http.get(f"/api/v1/admin/bank-statements/{first['id']}", headers=env.admin)
        assert r.status_code == 200 and len(r.json()["new"]) == 4
        r = await env.http.get("/api/v1/admin/bank-statements", headers=env.admin)
        assert [s["new_lines"] for s in r.json()] == [0, 4]


async def test_1c_statement_pays_the_order_once(db_url: str) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        order = await _order(env)
        data = onec_statement(
            [
                {
                    "number": "777",
                    "amount": "1764.00",
                    "payee": "40702810900000000999",
                    "inn": "7709999999",
                    "text": f"order {order.number}",
                },  # wrong counterparty
                {
                    "number": str(order.id),
                    "amount": "1764.00",
                    "payee": P2_ACCOUNT,
                    "inn": P2_INN,
                    "name": "Provider Two",
                    "text": "Оплата по реестру",
                },  # our document number, the right account
                {"number": "15", "amount": "300.00", "payer": "40702810111111111111", "payee": OUR_ACCOUNT},
            ]
        )
        first = await _import(env, data, "kl_to_1c.txt")
        assert (first["format"], first["account"], first["new_lines"], first["orders_paid"]) == (
            "1c",
            OUR_ACCOUNT,
            3,
            [order.number],
        )
        assert [(ln["direction"], ln["status"]) for ln in first["new"]] == [
            ("debit", "unmatched"),
            ("debit", "order"),
            ("credit", "unmatched"),
        ]
        assert await env.balance("provider_payable", "p2") == 0
        again = await _import(env, data, "kl_to_1c.txt")
        assert again["repeated"] == 3 and again["orders_paid"] == []
        assert await env.entries("provider_payment") == 1


async def test_unapproved_or_different_amount_is_not_matched_and_bad_files_are_problems(db_url: str) -> None:
    async with settle_env(db_url, catalog(p2="Europe/Moscow")) as env:
        order = await _order(env)
        data = camt053([{"amount": "1764.01", "bank_ref": "X-1", "e2e": order.number, "iban": P2_IBAN}])
        body = await _import(env, data, "x.xml")
        assert body["orders_paid"] == [] and body["new"][0]["status"] == "unmatched"
        async with env.hub.read_sessions() as s:
            o = await s.get(PaymentOrder, order.id)
            assert o is not None and o.status == "approved"
        for bad, needle in (
            (b"<Document><nope/></Document>", "camt.053"),
            (b"<Document", "XML"),
            (
                "1CClientBankExchange\r\nРасчСчет=1\r\nСекцияДокумент=Платежное поручение\r\n".encode(
                    "cp1251"
                ),
                "КонецФайла",
            ),
            (b"hello", "not a camt.053"),
        ):
            r = await env.http.post("/api/v1/admin/bank-statements", content=bad, headers=env.admin)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert needle in r.json()["detail"]
        r = await env.http.post("/api/v1/admin/bank-statements", content=b"", headers=env.admin)
        assert r.status_code == 422
