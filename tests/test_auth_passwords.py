"""Password hashing and policy; the shipped common-password list is what the generator makes."""

from __future__ import annotations

from importlib.resources import files

import pytest

from paymux.auth.access import AccessRuleError, ip_allowed, parse_hours, parse_networks, within_hours
from paymux.auth.common_passwords import common_passwords, generate
from paymux.auth.passwords import PasswordPolicyError, check_policy, hash_password, verify_password


def test_argon2id_hash_and_verify() -> None:
    h = hash_password("a long enough passphrase")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "a long enough passphrase")
    assert not verify_password(h, "a long enough passphrasE")
    assert not verify_password(None, "anything at all")
    assert not verify_password("not-a-hash", "anything at all")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pass1", "at least 12"),
        ("Password1234", "too common"),
        ("qwertyuiop12", "too common"),
        ("aaaaaaaaaaaa", "too common"),
        ("abababababab", "too common"),
        ("my-name-is-alice!", "user name"),
    ],
)
def test_policy_refuses(password: str, reason: str) -> None:
    with pytest.raises(PasswordPolicyError, match=reason):
        check_policy(password, username="alice")


def test_policy_accepts_a_long_uncommon_password_without_rotation_rules() -> None:
    check_policy("violet kettle drums quietly", username="alice")


def test_shipped_list_is_the_generated_one() -> None:
    text = files("paymux.auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert lines == generate()
    assert len(common_passwords()) > 10_000 and all(len(p) >= 12 for p in common_passwords())


def test_networks_and_hours() -> None:
    nets = parse_networks("10.0.0.0/8, 2001:db8::/32 192.0.2.5")
    assert nets == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.5/32"]
    assert (
        ip_allowed("10.2.3.4", nets) and ip_allowed("2001:db8::1", nets) and not ip_allowed("11.0.0.1", nets)
    )
    assert ip_allowed("anything", []) and not ip_allowed("garbage", nets)
    with pytest.raises(AccessRuleError):
        parse_networks("10.0.0.0/33")
    rule = parse_hours([0, 1, 2, 3, 4], "09:00", "18:00")
    import datetime as dt

    monday_utc = dt.datetime(2026, 1, 5, 6, 30, tzinfo=dt.UTC)  # 09:30 in Moscow (UTC+3), a Monday
    assert within_hours(rule, "Europe/Moscow", monday_utc)
    assert not within_hours(rule, "UTC", monday_utc)  # 06:30 in UTC
    assert not within_hours(rule, "Europe/Moscow", monday_utc + dt.timedelta(days=5))  # Saturday
    with pytest.raises(AccessRuleError):
        parse_hours(None, "18:00", "09:00")
