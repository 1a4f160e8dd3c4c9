"""``sidtokens encrypt`` brings every stored token under the current key, resumably."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import TokenCipher, is_encrypted
from shared.database import sessions as make_sessions
from shared.errors import ConfigurationError
from shared.models import User
from shared.rekey import progress_bar, rekey

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = make_sessions(database_url)
    with factory() as session:
        session.execute(sa.delete(User))
        session.commit()
    yield factory
    with factory() as session:
        session.execute(sa.delete(User))
        session.commit()


def _insert(
    factory: sessionmaker[Session], access: str | None, refresh: str | None
) -> str:
    with factory() as session:
        user_id = session.scalar(
            sa.insert(User)
            .values(
                id=str(secrets.randbits(40)),
                sid_access_token=access,
                sid_refresh_token=refresh,
            )
            .returning(User.id)
        )
        session.commit()
    assert user_id is not None
    return user_id


def _stored(
    factory: sessionmaker[Session], user_id: str
) -> tuple[str | None, str | None]:
    with factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.sid_access_token, user.sid_refresh_token


def test_plaintext_and_old_key_rows_end_up_under_the_first_key(
    sessions: sessionmaker[Session],
) -> None:
    """Legacy plaintext and old-key ciphertext are rewritten; values are unchanged."""
    old = TokenCipher((OLD,))
    plain = _insert(sessions, "at-plain", "rt-plain")
    under_old = _insert(sessions, old.encrypt("at-old"), old.encrypt("rt-old"))
    never = _insert(sessions, None, None)
    rotated = TokenCipher((NEW, OLD))
    current = TokenCipher((NEW,))

    report = rekey(sessions, rotated)

    assert report.rewritten == 2
    for user_id, expected in ((plain, "plain"), (under_old, "old")):
        access, refresh = _stored(sessions, user_id)
        assert access is not None and refresh is not None
        assert is_encrypted(access) and is_encrypted(refresh)
        assert current.decrypt(access) == f"at-{expected}"
        assert current.decrypt(refresh) == f"rt-{expected}"
    assert _stored(sessions, never) == (None, None)


def test_a_second_run_finds_nothing_left_to_do(sessions: sessionmaker[Session]) -> None:
    """Rerunning after a finished (or interrupted) run rewrites only what is left."""
    cipher = TokenCipher((NEW,))
    for _ in range(3):
        _insert(sessions, "at-" + secrets.token_hex(4), "rt-" + secrets.token_hex(4))
    rekey(sessions, cipher)

    again = rekey(sessions, cipher)

    assert again.examined == 3
    assert again.rewritten == 0


def test_progress_is_drawn_and_ends_with_the_total(
    sessions: sessionmaker[Session],
) -> None:
    """The progress bar reports rows done out of the total."""
    _insert(sessions, "at", "rt")
    stream = io.StringIO()

    rekey(sessions, TokenCipher((NEW,)), progress_bar(stream))

    assert "1/1 rows, 1 rewritten" in stream.getvalue()
    assert stream.getvalue().endswith("\n")


def test_without_keys_there_is_nothing_to_encrypt_with(
    sessions: sessionmaker[Session],
) -> None:
    """Encrypting without SIDTOKENS_ENCRYPTION_KEYS says which setting is missing."""
    with pytest.raises(ConfigurationError) as caught:
        rekey(sessions, TokenCipher(()))

    assert caught.value.variable == "SIDTOKENS_ENCRYPTION_KEYS"


def test_an_interrupted_run_keeps_its_batches_and_a_rerun_finishes(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the first batch leaves it committed; running again does the rest."""
    monkeypatch.setattr("shared.rekey.BATCH_SIZE", 2)
    ids = [_insert(sessions, f"at-{n}", f"rt-{n}") for n in range(5)]
    cipher = TokenCipher((NEW,))

    def interrupt(report: object, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rekey(sessions, cipher, interrupt)
    done_before = sum(is_encrypted(_stored(sessions, u)[1] or "") for u in ids)
    finished = rekey(sessions, cipher)

    assert done_before == 2
    assert finished.rewritten == 3
    assert all(is_encrypted(_stored(sessions, u)[1] or "") for u in ids)
