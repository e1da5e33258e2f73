"""paymux.masking: which values are secret, how reads show them and how writes of a read keep them."""

from __future__ import annotations

import pytest

from paymux.masking import MASK, MaskedSecretError, is_masked, keep_secrets, looks_secret, mask_secrets
from paymux.providers.base import config_secret_keys, protocol_classes


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "smtp_password",
        "key_password",
        "password_hash",
        "hmac_secret",
        "webhook_secret",
        "PIN_SECRET",
        "token",
        "csrf_token",
        "private_key",
        "private_key_passphrase",
        "sign_key",
        "sign_passphrase",
        "api_key",
        "X-Api-Key",
        "apiKey",
        "clientSecret",
        "Authorization",
        "key",
        "credentials",
        "private_security_key",
        "PrivateSecurityKey",
        "PaymentKey",
        "shared_key",
    ],
)
def test_secret_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "username",
        "login",
        "url",
        "token_url",
        "rsa_public_key",
        "provider_public_key",
        "public_key",
        "host_key",
        "key_serial",
        "provider_key_serial",
        "private_key_file",
        "key_file",
        "password_changed_at",
        "period_key",
        "scope_key",
        "key_prefix",
        "ACCEPT_KEYS",
        "signing",
        "monkey",
    ],
)
def test_names_that_are_not_secret(name: str) -> None:
    assert not looks_secret(name)


def test_mask_secrets_masks_values_under_secret_keys_and_passwords_in_urls() -> None:
    data = {
        "url": "https://hub:pa55@provider.example/api?x=1",
        "plain": "https://provider.example/a@b",
        "token": "t0k3n",
        "params": {"prv_id": "17", "prv_password": "p"},
        "keys": [{"private_key": {"pem": "x"}}],
        "password": "",
        "secret": None,
        "has_secret": True,
        "sd": "17031",
    }
    assert mask_secrets(data, {"sd"}) == {
        "url": f"https://hub:{MASK}@provider.example/api?x=1",
        "plain": "https://provider.example/a@b",
        "token": MASK,
        "params": {"prv_id": "17", "prv_password": MASK},
        "keys": [{"private_key": MASK}],
        "password": "",  # nothing to hide: shown as it is
        "secret": None,
        "has_secret": True,
        "sd": MASK,  # declared secret by its owner
    }
    assert data["token"] == "t0k3n"  # a copy


def test_keep_secrets_puts_the_stored_values_back() -> None:
    stored = {
        "url": "https://hub:pa55@provider.example/api",
        "token": "t0k3n",
        "nested": {"password": "p", "list": [{"api_key": "k1"}, {"api_key": "k2"}]},
        "sd": "17031",
    }
    shown = mask_secrets(stored, {"sd"})
    assert keep_secrets(shown, stored, {"sd"}) == stored
    # changed values win; a value that merely contains *** is not a mask
    changed = {**shown, "token": "new", "pattern": "a***b"}
    assert keep_secrets(changed, stored, {"sd"}) == {**stored, "token": "new", "pattern": "a***b"}
    # a masked URL keeps the stored one only while the rest of the URL is the same
    with pytest.raises(MaskedSecretError, match=r"^url is the mask"):
        keep_secrets({"url": f"https://hub:{MASK}@elsewhere.example/api"}, stored)


@pytest.mark.parametrize(
    ("new", "stored", "where"),
    [
        ({"token": MASK}, {}, "token"),
        ({"token": MASK}, {"token": ""}, "token"),
        ({"a": {"password": MASK}}, {"a": {"password": None}}, "a.password"),
        (
            {"list": [{"password": "x"}, {"password": MASK}]},
            {"list": [{"password": "x"}]},
            r"list\[1\].password",
        ),
        ({"url": f"https://u:{MASK}@h/"}, {"url": "https://h/"}, "url"),
    ],
)
def test_a_mask_with_nothing_stored_is_refused(
    new: dict[str, object], stored: dict[str, object], where: str
) -> None:
    with pytest.raises(MaskedSecretError, match=f"^{where} is the mask"):
        keep_secrets(new, stored)


def test_is_masked() -> None:
    assert is_masked(MASK) and is_masked(f"sftp://u:{MASK}@h/x")
    assert not is_masked("a***") and not is_masked("https://u:pw@h/***") and not is_masked(None)


def test_every_protocol_declares_its_secret_config_keys() -> None:
    assert {name: sorted(config_secret_keys(name)) for name in protocol_classes()} == {
        "jsonhttp": ["token"],
        "osmp": ["key_password", "password"],
        "cyberplat": ["private_key", "private_key_passphrase"],
    }
    assert config_secret_keys("not-installed") == frozenset()
