"""Provider libraries: an aggregator's service list imported into the catalog, a diff first."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from harness import hub_env
from paymux.audit.models import AuditEvent
from paymux.catalog.library import LibraryError, detect_format, read_rows, service_code

LIB = "/api/v1/admin/catalog/library"
HEADER = "code,name,category,currency,account_pattern,account_hint,min_amount,max_amount,fields,enabled\n"
# T2: the catalog's topup, routed to p2 as T2
CSV = (
    HEADER
    + "T2,Mobile top-up,mobile,RUB,^\\d{10}$,,1.00,10000.00,,true\n"
    + 'W-01,Water Tula,utilities,RUB,^\\d{8}$,"account, 8 digits",1.00,5000.00,period:^\\d{4}-\\d{2}$,true\n'
    + "NET 7,Fast Net,internet,RUB,,,10.00,,,\n"
)


def test_reading_files_and_their_errors() -> None:
    rows = read_rows(CSV.encode("utf-8-sig"), "csv")
    assert [r["code"] for r in rows] == ["T2", "W-01", "NET 7"] and rows[1][
        "account_hint"
    ] == "account, 8 digits"
    assert detect_format(b'[{"code": "x"}]') == "json" and detect_format(b"code,name") == "csv"
    assert read_rows(b'{"services": [{"code": "A"}]}', "json") == [{"code": "A"}]
    with pytest.raises(LibraryError, match="lacks category, currency"):
        read_rows(b"code,name\nA,B\n", "csv")
    with pytest.raises(LibraryError, match="unknown columns price"):
        read_rows(b"code,name,category,currency,price\n", "csv")
    with pytest.raises(LibraryError, match="not UTF-8"):
        read_rows(b"code,name,category,currency\nA,\xff,x,RUB\n", "csv")
    with pytest.raises(LibraryError, match="list of objects"):
        read_rows(b'{"a": 1}', "json")
    assert service_code("fastpay", "NET 7") == "fastpay-net-7"


async def test_diff_then_apply_keeps_other_routes_and_reruns_unchanged(db_url: str) -> None:
    async with hub_env(db_url) as env:
        r = await env.http.post(
            f"{LIB}?provider=p2", content=CSV, headers={**env.admin, "Content-Type": "text/csv"}
        )
        assert r.status_code == 200, r.text
        diff = r.json()
        assert diff["counts"] == {"added": 2, "changed": 1, "unchanged": 0, "missing": 0}, diff
        assert "changed topup (T2): category: 'other' -> 'mobile'" in diff["changes"]
        assert diff["applied"] is False and not diff["problems"]
        assert "added p2-w-01 (W-01)" in diff["changes"] and "added p2-net-7 (NET 7)" in diff["changes"]
        assert (await env.http.get("/api/v1/admin/services/p2-w-01", headers=env.admin)).status_code == 404

        r = await env.http.post(f"{LIB}?provider=p2&apply=true", content=CSV, headers=env.admin)
        assert r.status_code == 200 and r.json()["applied"] is True, r.text
        water = (await env.http.get("/api/v1/admin/services/p2-w-01", headers=env.admin)).json()
        assert (water["category"], water["max_amount"], water["account_hint"]) == (
            "utilities",
            "5000.00",
            "account, 8 digits",
        )
        assert water["fields"] == [{"name": "period", "pattern": r"^\d{4}-\d{2}$", "required": True}]
        assert (
            water["route"]["candidates"][0]["provider"] == "p2"
            and water["route"]["candidates"][0]["code"] == "W-01"
        )

        # the library renames the service it knows as T2: only that changes, the other routes stay
        renamed = CSV.replace("T2,Mobile top-up", "T2,Mobile top-up (all operators)")
        r = await env.http.post(f"{LIB}?provider=p2", content=renamed, headers=env.admin)
        assert r.json()["counts"]["changed"] == 1
        assert r.json()["changes"] == [
            "changed topup (T2): name: 'Mobile top-up' -> 'Mobile top-up (all operators)'"
        ]
        r = await env.http.post(f"{LIB}?provider=p2&apply=true", content=renamed, headers=env.admin)
        assert r.status_code == 200, r.text
        topup = (await env.http.get("/api/v1/admin/services/topup", headers=env.admin)).json()
        assert topup["name"] == "Mobile top-up (all operators)"
        assert [(c["provider"], c["code"]) for c in topup["route"]["candidates"]] == [
            ("p1", "T1"),
            ("p2", "T2"),
            ("p3", "T3"),
        ]
        again = await env.http.post(f"{LIB}?provider=p2", content=renamed, headers=env.admin)
        assert again.json()["counts"] == {"added": 0, "changed": 0, "unchanged": 3, "missing": 0}

        # a library without NET 7: reported missing, disabled on request
        shorter = "\n".join(line for line in renamed.splitlines() if not line.startswith("NET 7")) + "\n"
        r = await env.http.post(
            f"{LIB}?provider=p2&apply=true&disable_missing=true", content=shorter, headers=env.admin
        )
        assert (
            r.json()["counts"]["missing"] == 1 and "missing p2-net-7 (NET 7): disabled" in r.json()["changes"]
        )
        net = (await env.http.get("/api/v1/admin/services/p2-net-7", headers=env.admin)).json()
        assert net["enabled"] is False
        async with env.hub.read_sessions() as session:
            events = (
                await session.scalars(select(AuditEvent).where(AuditEvent.action == "catalog.library"))
            ).all()
        assert [e.target for e in events] == ["provider:p2"] * 3
        assert events[-1].after["summary"].startswith("0 added, 0 changed")


async def test_problems_are_listed_by_row_and_nothing_is_written(db_url: str) -> None:
    async with hub_env(db_url) as env:
        bad = (
            HEADER
            + "A1,Good,mobile,RUB,,,1.00,2.00,,\n"
            + "A2,Bad pattern,mobile,RUB,^(,,,,,\n"
            + "A3,Bad amount,mobile,RUB,,,1.005,,,\n"
            + "A1,Twice,mobile,RUB,,,,,,\n"
            + ",No code,mobile,RUB,,,,,,\n"
            + "T2,Other currency,mobile,EUR,,,,,,\n"
            + "A4,Bad flag,mobile,RUB,,,,,,maybe\n"
        )
        r = await env.http.post(f"{LIB}?provider=p2", content=bad, headers=env.admin)
        assert r.status_code == 200, r.text
        problems = r.json()["problems"]
        assert [p.split(":")[0] for p in problems] == [
            "row 3 (A2)",
            "row 4 (A3)",
            "row 5 (A1)",
            "row 6",
            "row 7 (T2)",
            "row 8 (A4)",
        ], problems
        assert (
            "appears twice" in problems[2]
            and "code missing" in problems[3]
            and "currency EUR differs" in problems[4]
        )
        r = await env.http.post(f"{LIB}?provider=p2&apply=true", content=bad, headers=env.admin)
        assert r.status_code == 422 and r.json()["problems"] == problems
        assert (await env.http.get("/api/v1/admin/services/p2-a1", headers=env.admin)).status_code == 404
        r = await env.http.post(f"{LIB}?provider=nope", content=CSV, headers=env.admin)
        assert r.status_code == 422 and "nope" in r.json()["detail"]
        r = await env.http.post(f"{LIB}?provider=p2", content=b"\xff\xfe", headers=env.admin)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        js = orjson.dumps(
            [{"code": "J1", "name": "Json", "category": "tv", "currency": "RUB", "fields": [{"name": "n"}]}]
        )
        r = await env.http.post(
            f"{LIB}?provider=p2", content=js, headers={**env.admin, "Content-Type": "application/json"}
        )
        assert r.json()["counts"]["added"] == 1, r.text
