"""YAML typed into back-office forms is read with bounds: a short text whose aliases stand for a huge
structure (a "billion laughs") is refused with a readable message instead of being stored."""

from __future__ import annotations

import pytest
import yaml

from paymux.yaml_text import FIELD_CHARS, TooMuchYaml, expanded_values, load_field
from test_backoffice_ops_catalog import form_token, inputs, textarea
from test_backoffice_ops_support import ops_env
from test_backoffice_support import login


def laughs(levels: int) -> str:
    """A mapping whose last key stands for 10**levels strings, in a few hundred characters."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_field_is_read_within_bounds() -> None:
    assert load_field("url: http://x\nheaders: {a: b}\n") == {"url": "http://x", "headers": {"a": "b"}}
    shared = "a: &s {k: v}\nb: *s\nc: *s\n"  # a few aliases are fine
    assert load_field(shared)["c"] == {"k": "v"}
    with pytest.raises(TooMuchYaml, match="aliases"):
        load_field(laughs(6))
    with pytest.raises(TooMuchYaml, match="longer than"):
        load_field("a: " + "x" * FIELD_CHARS)
    assert isinstance(TooMuchYaml("x"), yaml.YAMLError)  # the forms' existing error handling applies


def test_expanded_values_counts_what_a_validator_would_visit() -> None:
    data = yaml.safe_load(laughs(3))  # 10 + 100 + 1000 strings under three keys
    assert expanded_values(data, 10**6) == 1 + 3 + (1 + 10) + (1 + 10 * 11) + (1 + 10 * (1 + 10 * 11))
    with pytest.raises(TooMuchYaml):
        expanded_values(data, 1000)


async def test_the_back_office_refuses_an_alias_bomb_in_a_provider_config(db_url: str) -> None:
    async with ops_env(db_url) as (_env, bo):
        await bo.user("op", "operator")
        await login(bo.http, "op")
        page = (await bo.http.get("/backoffice/catalog/providers/p1")).text
        data = {
            "csrf_token": form_token(page),
            "name": "Provider one",
            "enabled": "1",
            "protocol": "jsonhttp",
            "config": laughs(6),  # a million strings once expanded
            "timezone": "UTC",
            "settlement": "prepaid",
            "overdraft": textarea(page, "overdraft"),
            **{k: v for k, v in inputs(page).items() if k.startswith("breaker_")},
        }
        r = await bo.http.post("/backoffice/catalog/providers/p1", data=data)
        assert r.status_code == 422 and "aliases used too many times" in r.text, r.text[:300]
