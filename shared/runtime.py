"""What a process builds once from its settings: database, cache, cipher, client."""

from __future__ import annotations

import dataclasses
import functools

from sqlalchemy.orm import Session, sessionmaker

from shared import settings as settings_module
from shared.crypto import TokenCipher
from shared.database import sessions
from shared.oauth import SidClient
from shared.settings import Settings
from shared.token_cache import TokenCache


@dataclasses.dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    cache: TokenCache
    cipher: TokenCipher
    client: SidClient

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            sessions=sessions(settings.database_url),
            cache=TokenCache.from_url(
                settings.redis_url, margin_seconds=settings.cache_margin_seconds
            ),
            cipher=TokenCipher(settings.encryption_keys),
            client=SidClient(settings),
        )


@functools.cache
def get() -> Runtime:
    """The process-wide runtime, built from the environment on first use."""
    return Runtime.from_settings(settings_module.get())
