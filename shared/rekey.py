"""``sidtokens encrypt``: bring every stored token under the current encryption key.

Plaintext rows (written before encryption was configured) and rows encrypted under
an older key are rewritten with the first key of ``SIDTOKENS_ENCRYPTION_KEYS``.
The work goes in batches by id, each its own short transaction, so it can be
interrupted at any moment and simply run again: rows already current are skipped.

Each row is rewritten only if its tokens and refresh version are still the ones
read, so a refresh or connect committing at the same moment is never undone; such
a row is already written under the current key by its writer anyway.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TextIO

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import TokenCipher
from shared.errors import ConfigurationError
from shared.models import User

BATCH_SIZE = 500


@dataclasses.dataclass
class RekeyReport:
    examined: int = 0
    rewritten: int = 0
    raced: int = 0


def _is_current(cipher: TokenCipher, stored: str | None) -> bool:
    return stored is None or cipher.is_current(stored)


def _rewrite(cipher: TokenCipher, stored: str | None) -> str | None:
    return None if stored is None else cipher.encrypt(cipher.decrypt(stored))


def _rekey_batch(
    session: Session, cipher: TokenCipher, after: str | None, report: RekeyReport
) -> str | None:
    """Rewrite one batch of rows after id ``after``; returns the last id seen."""
    query = (
        sa.select(
            User.id,
            User.sid_access_token,
            User.sid_refresh_token,
            User.sid_refresh_version,
        )
        .where(
            sa.or_(
                User.sid_access_token.is_not(None), User.sid_refresh_token.is_not(None)
            )
        )
        .order_by(User.id)
        .limit(BATCH_SIZE)
    )
    if after is not None:
        query = query.where(User.id > after)
    rows = session.execute(query).all()
    for user_id, access, refresh, version in rows:
        report.examined += 1
        if _is_current(cipher, access) and _is_current(cipher, refresh):
            continue
        changed = session.execute(
            sa.update(User)
            .where(
                User.id == user_id,
                User.sid_refresh_version == version,
                User.sid_access_token.is_not_distinct_from(access),
                User.sid_refresh_token.is_not_distinct_from(refresh),
            )
            .values(
                sid_access_token=_rewrite(cipher, access),
                sid_refresh_token=_rewrite(cipher, refresh),
            )
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            report.rewritten += 1
        else:
            report.raced += 1
    session.commit()
    return str(rows[-1][0]) if rows else None


def _count(session: Session) -> int:
    total: int = (
        session.scalar(
            sa.select(sa.func.count()).where(
                sa.or_(
                    User.sid_access_token.is_not(None),
                    User.sid_refresh_token.is_not(None),
                )
            )
        )
        or 0
    )
    return total


def rekey(
    sessions: sessionmaker[Session],
    cipher: TokenCipher,
    progress: Callable[[RekeyReport, int], None] | None = None,
) -> RekeyReport:
    """Rewrite every token not yet under the current key; safe to stop and rerun."""
    if not cipher.enabled:
        raise ConfigurationError(
            "SIDTOKENS_ENCRYPTION_KEYS is not set, so there is no key to encrypt "
            "with; set it first",
            variable="SIDTOKENS_ENCRYPTION_KEYS",
        )
    report = RekeyReport()
    with sessions() as session:
        total = _count(session)
    after: str | None = None
    while True:
        with sessions() as session:
            after = _rekey_batch(session, cipher, after, report)
        if progress is not None:
            progress(report, total)
        if after is None:
            return report


def progress_bar(stream: TextIO = sys.stderr) -> Callable[[RekeyReport, int], None]:
    """A one-line progress bar with a rate, redrawn in place."""
    started = time.monotonic()

    def draw(report: RekeyReport, total: int) -> None:
        done = min(report.examined, total) if total else 0
        share = done / total if total else 1.0
        filled = int(share * 30)
        rate = report.examined / max(time.monotonic() - started, 1e-6)
        stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%} "
            f"{done}/{total} rows, {report.rewritten} rewritten, {rate:,.0f} rows/s"
        )
        if share >= 1.0:
            stream.write("\n")
        stream.flush()

    return draw
