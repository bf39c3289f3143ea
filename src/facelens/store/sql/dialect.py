"""What differs between the SQL databases the metadata store runs on, in one place.

The session's statements are written once, with `?` placeholders, in SQL both databases read alike (upserts with
`ON CONFLICT ... DO UPDATE SET x = excluded.x`, `RETURNING`, `coalesce`). A `Dialect` renders them for its
driver and names the few statements that differ:
- placeholders: sqlite3 takes `?` (qmark) as written; psycopg takes `%s` (format), so `render` turns each `?`
  outside a quoted literal into `%s` and doubles every `%`;
- the change log's high-water mark: SQLite's `sqlite_sequence` row, PostgreSQL's `pg_sequence_last_value`;
- pruning the change log: SQLite prunes what a persisted index reflects; PostgreSQL keeps it, since every
  replica's vector cache catches up from the one shared log;
- claiming a video job: PostgreSQL locks the row it claims `FOR UPDATE SKIP LOCKED`, so concurrent replicas
  claim different jobs (SQLite serializes write transactions, so a plain SELECT is enough).
Transactions (begin, isolation, the writers' lock) are the stores' business: `sqlite.py`, `postgres.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol


class Cursor(Protocol):
    """What the session reads of a DB-API cursor (sqlite3's and psycopg's alike)."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """What the session asks of a connection: `execute` returning a cursor (sqlite3.Connection and
    psycopg.Connection both offer it), and `cursor()` for `executemany`."""

    def execute(self, sql: str, params: Sequence[Any]) -> Cursor: ...

    def cursor(self) -> Cursor: ...


_LITERAL = re.compile(r"('(?:[^']|'')*')")  # a single-quoted SQL string literal ('' escapes a quote)


@lru_cache(maxsize=1024)
def format_placeholders(sql: str) -> str:
    """`sql` with `?` placeholders for a driver of the format paramstyle: each `?` outside a string literal
    becomes `%s`, and every `%` (inside literals too, since the driver scans the whole text) becomes `%%`."""
    parts = _LITERAL.split(sql.replace("%", "%%"))
    return "".join(part if i % 2 else part.replace("?", "%s") for i, part in enumerate(parts))


@dataclass(frozen=True)
class Dialect:
    name: str
    paramstyle: str  # "qmark" (as written) or "format" (`%s`)
    high_water_sql: str  # one row, one column: the last change-log sequence number (no row or NULL: none yet)
    prunes_changes: bool  # whether prune_changes drops change-log entries
    claim_lock: str  # appended to the SELECT that picks the job to claim

    def render(self, sql: str) -> str:
        """`sql` (written with `?` placeholders) as this dialect's driver takes it."""
        return sql if self.paramstyle == "qmark" else format_placeholders(sql)


SQLITE = Dialect("sqlite", paramstyle="qmark", prunes_changes=True, claim_lock="",
                 high_water_sql="SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
POSTGRESQL = Dialect("postgresql", paramstyle="format", prunes_changes=False, claim_lock=" FOR UPDATE SKIP LOCKED",
                     high_water_sql="SELECT pg_sequence_last_value('changes_seq_seq')")
