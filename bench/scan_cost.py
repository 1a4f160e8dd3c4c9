"""What one scan's claim costs with 1,000,000 users and 1,000 due, against a baseline.

    uv run python bench/scan_cost.py [--users N] [--due N] [--batch N] [--runs N]

The scan claims due users through the partial index ``ix_users_sid_refresh_due``
(``WHERE sid_status = 'connected'``, ordered by ``sid_refresh_at``), so its cost
should follow the number of due users, not the size of the table. This measures
that claim exactly as the worker runs it (:data:`worker.claims.CLAIM_DUE`: the
``SKIP LOCKED`` select in a materialized CTE, then the lease update), and beside
it, in the same run on the same data, the same claim once the index is dropped,
which is what any query for due rows costs without it: a full pass over the table.

Steps: create a scratch database on the server of ``DATABASE_URL`` (default: the
local server), create the schema with ``sidtokens migrate``'s code, fill ``users``
with ``generate_series`` (5 % never connected, due times spread over the next
hour, ``--due`` of them already due), ``VACUUM ANALYZE``, then time ``--runs``
claims of ``--batch`` users, each in a transaction that is rolled back so every
run sees the same due users. The same for the backlog query the scan uses for
its gauges. The baseline runs fewer times (it is slow) under a statement
timeout. The database is dropped at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe

from shared.database import migrate
from worker.claims import CLAIM_DUE

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LEASE_SECONDS = 120.0
BASELINE_TIMEOUT_MS = 60_000
INDEX = "ix_users_sid_refresh_due"

FILL = sa.text(
    """
    INSERT INTO users (id, sid_status, sid_access_token, sid_refresh_token,
                       sid_expires_at, sid_refresh_at, sid_refresh_version)
    SELECT n,
           CASE WHEN n % 20 = 7 THEN NULL ELSE 'connected' END,
           'fernet:' || repeat(md5(n::text), 6),
           'fernet:' || repeat(md5((n + 1)::text), 6),
           now() + interval '1 hour',
           CASE WHEN n % :every = 0
                THEN now() - make_interval(secs => (n % 600) + 1)
                ELSE now() + make_interval(secs => 60 + (n % 3540))
           END,
           0
    FROM generate_series(1, :users) AS n
    """
)
# The claim's CTE on its own: finding and locking the due users, without the update.
FIND_DUE = sa.text(
    """
    SELECT id FROM users
    WHERE sid_status = 'connected' AND sid_refresh_at <= now()
    ORDER BY sid_refresh_at
    LIMIT :limit
    FOR NO KEY UPDATE SKIP LOCKED
    """
)
BACKLOG = sa.text(
    """
    SELECT count(*), min(sid_refresh_at) FROM users
    WHERE sid_status = 'connected' AND sid_refresh_at <= now()
    """
)


def _server_url() -> URL:
    url = make_url(os.environ.get("DATABASE_URL", DEFAULT_SERVER))
    return url.set(drivername="postgresql+psycopg")


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database on the server, dropped when the block ends."""
    name = f"sidtokens_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(
        _server_url().set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    url = _server_url().set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()


def fill(engine: sa.Engine, users: int, due: int) -> float:
    """Fill ``users`` and build the index afterwards (faster than row by row)."""
    began = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL synchronous_commit = off"))
        connection.execute(sa.text(f"DROP INDEX {INDEX}"))
        connection.execute(FILL, {"users": users, "every": max(1, users // due)})
        connection.execute(
            sa.text(
                f"CREATE INDEX {INDEX} ON users (sid_refresh_at) "
                "WHERE sid_status = 'connected'"
            )
        )
    vacuum(engine)
    return time.perf_counter() - began


def vacuum(engine: sa.Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("VACUUM ANALYZE users"))


def timed(
    engine: sa.Engine, runs: int, statement: Callable[[Connection], object]
) -> list[float]:
    """Milliseconds per run, each in its own transaction, rolled back.

    Rolled-back claims leave dead index entries behind, as real claims do until
    autovacuum passes; each group starts from a vacuumed table so one group's
    leftovers do not slow the next.
    """
    vacuum(engine)
    samples = []
    for _ in range(runs):
        with engine.connect() as connection:
            connection.execute(
                sa.text(f"SET statement_timeout = {BASELINE_TIMEOUT_MS}")
            )
            began = time.perf_counter()
            statement(connection)
            samples.append((time.perf_counter() - began) * 1000)
            connection.rollback()
    return samples


def claim(batch: int) -> Callable[[Connection], object]:
    def run(connection: Connection) -> object:
        claimed = connection.execute(
            CLAIM_DUE, {"limit": batch, "lease": LEASE_SECONDS}
        ).all()
        assert len(claimed) == batch, f"claimed {len(claimed)}, expected {batch}"
        return claimed

    return run


def find_due(batch: int) -> Callable[[Connection], object]:
    def run(connection: Connection) -> object:
        return connection.execute(FIND_DUE, {"limit": batch}).all()

    return run


def backlog(connection: Connection) -> object:
    return connection.execute(BACKLOG).one()


def plan(engine: sa.Engine, batch: int) -> str:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("EXPLAIN (ANALYZE, BUFFERS) " + CLAIM_DUE.text),
            {"limit": batch, "lease": LEASE_SECONDS},
        ).scalars()
        text = "\n".join(f"    {line}" for line in rows)
        connection.rollback()
    return text


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered):8.2f} ms   p95 {p95:8.2f} ms   "
        f"min {ordered[0]:8.2f} ms   ({len(ordered)} runs)"
    )


def machine(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        version = connection.scalar(sa.text("SELECT version()"))
        size = connection.scalar(
            sa.text("SELECT pg_size_pretty(pg_total_relation_size('users'))")
        )
        index_size = connection.scalar(
            sa.text(f"SELECT pg_size_pretty(pg_relation_size('{INDEX}'))")
        )
    return [
        f"machine:    {describe()}",
        f"postgresql: {version}",
        f"users:      {size} with indexes; the partial due index is {index_size}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=500, help="users per claim")
    parser.add_argument("--runs", type=int, default=30, help="timed claims")
    parser.add_argument("--baseline-runs", type=int, default=5)
    args = parser.parse_args()

    with scratch_database() as url:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        print(f"filling {args.users:,} users, {args.due:,} due ...", flush=True)
        seconds = fill(engine, args.users, args.due)
        print(f"filled and analysed in {seconds:.1f} s\n")
        for line in machine(engine):
            print(line)

        indexed = timed(engine, args.runs, claim(args.batch))
        indexed_find = timed(engine, args.runs, find_due(args.batch))
        indexed_backlog = timed(engine, args.runs, backlog)
        indexed_plan = plan(engine, args.batch)
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP INDEX {INDEX}"))
        baseline = timed(engine, args.baseline_runs, claim(args.batch))
        baseline_find = timed(engine, args.baseline_runs, find_due(args.batch))
        baseline_backlog = timed(engine, args.baseline_runs, backlog)
        baseline_plan = plan(engine, args.batch)
        engine.dispose()

    report = [
        (
            f"claim of {args.batch} due users (the worker's statement)",
            indexed,
            baseline,
        ),
        (
            "finding and locking them (the claim's CTE alone)",
            indexed_find,
            baseline_find,
        ),
        (
            "backlog gauge (count and oldest of the due users)",
            indexed_backlog,
            baseline_backlog,
        ),
    ]
    for title, with_index, without in report:
        ratio = statistics.median(without) / statistics.median(with_index)
        print(f"\n{title}:")
        print(f"  partial index   {summary(with_index)}")
        print(f"  index dropped   {summary(without)}")
        print(f"  ratio           {ratio:.0f}x")
    print(f"\nplan with the partial index:\n{indexed_plan}")
    print(f"\nplan without it:\n{baseline_plan}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
