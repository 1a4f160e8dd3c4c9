"""Encryption of tokens at rest with Fernet, with key rotation.

``SIDTOKENS_ENCRYPTION_KEYS`` holds one or more Fernet keys: the first encrypts,
all of them decrypt, so a new key is rolled out by putting it first and the old
ones are retired after ``sidtokens encrypt`` has rewritten every row.

Ciphertext is stored as ``fernet:<token>``. A value without that prefix is a
plaintext token written by an application before it adopted sid-tokens, and is
read as it is; no real SID token starts with the prefix.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.errors import ConfigurationError

PREFIX = "fernet:"


class TokenCipher:
    """Encrypts tokens for the database and reads both ciphertext and plaintext."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None
        self._primary = Fernet(keys[0]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def encrypt(self, token: str) -> str:
        """The stored form of ``token``: ciphertext when keys are set, else as is."""
        if self._fernet is None:
            return token
        return PREFIX + self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """The token behind a stored value, whichever key (or none) wrote it."""
        if not is_encrypted(stored):
            return stored
        if self._fernet is None:
            raise ConfigurationError(
                "a stored token is encrypted but SIDTOKENS_ENCRYPTION_KEYS is not set; "
                "set it to the keys that encrypted your tokens",
                variable="SIDTOKENS_ENCRYPTION_KEYS",
            )
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                "a stored token was encrypted with a key that is not in "
                "SIDTOKENS_ENCRYPTION_KEYS; add the old key after the new one",
                variable="SIDTOKENS_ENCRYPTION_KEYS",
            ) from None

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is already in the form :meth:`encrypt` would write."""
        if self._primary is None:
            return True
        if not is_encrypted(stored):
            return False
        try:
            self._primary.decrypt(stored.removeprefix(PREFIX).encode())
        except InvalidToken:
            return False
        return True


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)
