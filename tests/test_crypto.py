"""Tokens are encrypted at rest, keys rotate, and plaintext rows are still read."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.crypto import TokenCipher, is_encrypted
from shared.errors import ConfigurationError

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_encrypted_tokens_read_back_and_hide_the_token() -> None:
    """A stored token is ciphertext that decrypts to the original."""
    cipher = TokenCipher((NEW,))

    stored = cipher.encrypt("sim_rt_secret")

    assert is_encrypted(stored)
    assert "sim_rt_secret" not in stored
    assert cipher.decrypt(stored) == "sim_rt_secret"


def test_a_rotated_key_still_reads_old_ciphertext_and_marks_it_stale() -> None:
    """With a new key first, old ciphertext still decrypts and is marked stale."""
    stored_under_old = TokenCipher((OLD,)).encrypt("token")
    rotated = TokenCipher((NEW, OLD))

    assert rotated.decrypt(stored_under_old) == "token"
    assert not rotated.is_current(stored_under_old)
    assert rotated.is_current(rotated.encrypt("token"))


def test_plaintext_rows_from_before_adoption_are_read_as_they_are() -> None:
    """A plaintext row written before adopting sid-tokens is still read."""
    cipher = TokenCipher((NEW,))

    assert cipher.decrypt("legacy-plaintext-token") == "legacy-plaintext-token"
    assert not cipher.is_current("legacy-plaintext-token")


def test_without_keys_tokens_are_stored_as_they_are() -> None:
    """Development without keys stores plaintext and says so through ``enabled``."""
    cipher = TokenCipher(())

    assert not cipher.enabled
    assert cipher.encrypt("token") == "token"


@pytest.mark.parametrize(
    "keys", [pytest.param((), id="no-keys"), pytest.param((NEW,), id="wrong-key")]
)
def test_ciphertext_without_its_key_names_the_setting(keys: tuple[str, ...]) -> None:
    """Ciphertext no configured key opens fails naming the setting."""
    stored = TokenCipher((OLD,)).encrypt("token")

    with pytest.raises(ConfigurationError) as caught:
        TokenCipher(keys).decrypt(stored)

    assert caught.value.variable == "SIDTOKENS_ENCRYPTION_KEYS"
