"""A handful of a SID user's synced documents, for the query endpoint to search.

Answers are deterministic: the same user, query and limit always give the same
results, so tests can compare them. Scores grow with the share of query words found
in a document, with a small stable tiebreak so no two documents score the same.
"""

from __future__ import annotations

import hashlib
import re

WORD = re.compile(r"[a-z0-9]+")

CORPUS: tuple[tuple[str, str, str], ...] = (
    (
        "gdrive",
        "Quarterly planning notes",
        "Goals for the quarter: ship the token refresher, cut p99 latency, "
        "and hire two engineers.",
    ),
    (
        "notion",
        "Onboarding checklist",
        "Laptop, accounts, the on-call rota and a first small pull request.",
    ),
    (
        "gmail",
        "Re: flight to Lisbon",
        "Your booking is confirmed. Departure 09:40, seat 14C, one checked bag.",
    ),
    (
        "dropbox",
        "Kitchen renovation budget",
        "Cabinets, worktop and tiles come to about 14,000 euros before labour.",
    ),
    (
        "notion",
        "Reading list",
        "Designing Data-Intensive Applications; The Pragmatic Programmer; "
        "Working in Public.",
    ),
    (
        "gmail",
        "Dentist appointment reminder",
        "A reminder of your check-up on Tuesday at 15:30. Reply to reschedule.",
    ),
    (
        "gdrive",
        "Incident review: token expiry",
        "Access tokens expired because refresh tokens were reused by two workers "
        "at once; the provider revoked the family.",
    ),
    (
        "custom",
        "Recipe: lemon risotto",
        "Arborio rice, stock, one lemon, parmesan and patience.",
    ),
)


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def _tiebreak(sid_user: str, query: str, title: str) -> float:
    digest = hashlib.sha256(f"{sid_user}\0{query}\0{title}".encode()).digest()
    return digest[0] / 255 / 100


def _score(sid_user: str, query: str, title: str, text: str) -> float:
    asked = _words(query)
    found = len(asked & _words(f"{title} {text}")) / max(1, len(asked))
    return min(1.0, round(0.2 + 0.79 * found + _tiebreak(sid_user, query, title), 4))


def search(sid_user: str, query: str, limit: int) -> list[dict[str, object]]:
    """The ``limit`` best documents for ``query``, best first."""
    ranked = sorted(
        (
            (_score(sid_user, query, title, text), kind, title, text)
            for kind, title, text in CORPUS
        ),
        reverse=True,
    )
    return [
        {"score": score, "title": title, "kind": kind, "text": text}
        for score, kind, title, text in ranked[:limit]
    ]
