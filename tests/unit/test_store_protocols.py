"""The store's session protocols: one per concern, together exactly the `Session` every store yields; the one
SQL session implements all of them on SQLite and on PostgreSQL; the dialects render what they claim."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facelens.store import repos
from facelens.store.records import NewFace
from facelens.store.sql.dialect import POSTGRESQL, SQLITE, format_placeholders
from facelens.store.sql.postgres import PostgresMetadataStore
from facelens.store.sql.session import SqlSession
from facelens.store.sql.sqlite import SqliteMetadataStore
from tests.pg_fixtures import postgres_url  # noqa: F401 - fixture

# Every operation a session offers (those before the split into concerns, and embeddings_of): none lost.
OPERATIONS = {
    "create_collection", "get_collection", "delete_collection", "list_collections", "count_faces", "count_users",
    "add_faces", "delete_faces", "faces_by_id", "faces_by_seq", "list_faces", "embeddings", "embeddings_of",
    "create_user", "get_user", "delete_user", "list_users", "set_user_status", "associate",
    "imported", "mark_imported",
    "high_water", "log_floor", "changes_since", "prune_changes", "vector_mark", "set_vector_mark",
    "retention_policies", "expired_faces", "get_policy", "put_policy", "append_audit", "audit_rows",
    "audit_head", "audit_index",
    "recall", "remember", "forget_tokens_before", "secret",
    "create_job", "get_job", "claim_job", "renew_job", "requeue_interrupted", "finish_job", "set_job_metadata",
    "job_results",
    "add_face_crops", "face_crop", "crops_of",
}


def members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")} | set(vars(protocol).get(
        "__annotations__", {}))


def test_the_concerns_partition_the_session() -> None:
    seen: set[str] = set()
    for concern in repos.CONCERNS:
        assert not members(concern) & seen, concern
        seen |= members(concern)
    assert seen == OPERATIONS | {"lease_seconds"}
    assert set(repos.Session.__mro__) >= set(repos.CONCERNS)
    public = {name for name in vars(SqlSession) if not name.startswith("_")} | {"lease_seconds"}
    assert public == seen  # the SQL session offers exactly the protocols' operations


def test_the_sql_session_has_the_protocols_signatures() -> None:
    for concern in repos.CONCERNS:
        for name in members(concern) - {"lease_seconds"}:
            assert inspect.signature(getattr(SqlSession, name)) == inspect.signature(getattr(concern, name)), name


def _satisfies_every_protocol(session: object) -> None:
    for protocol in (*repos.CONCERNS, repos.Session):
        assert isinstance(session, protocol), protocol.__name__


def test_the_sqlite_session_satisfies_every_protocol(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path, lease_seconds=5)
    with store.transaction() as session:
        _satisfies_every_protocol(session)
        assert session.dialect is SQLITE and session.lease_seconds == 5
    store.close()


def test_the_postgres_session_satisfies_every_protocol(postgres_url: str) -> None:  # noqa: F811
    store = PostgresMetadataStore(postgres_url, max_size=1, lease_seconds=5)
    with store.transaction() as session:
        _satisfies_every_protocol(session)
        assert session.dialect is POSTGRESQL and session.lease_seconds == 5
        assert session.high_water() == 0 and session.secret()
    store.close()


def test_placeholders_are_rendered_for_the_driver() -> None:
    sql = "SELECT x FROM t WHERE a = ? AND b IN (?,?) AND c = '?' AND d = 'it''s ?%'"
    assert SQLITE.render(sql) == sql
    assert POSTGRESQL.render(sql) == "SELECT x FROM t WHERE a = %s AND b IN (%s,%s) AND c = '?' AND d = 'it''s ?%%'"
    assert format_placeholders("SELECT 1") == "SELECT 1"


class _Recorder:
    """A connection that records the statements it is given and has no rows."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple]] = []
        self.rowcount = 0

    def execute(self, sql: str, params: Sequence[Any]) -> _Recorder:
        self.statements.append((sql, tuple(params)))
        return self

    def cursor(self) -> _Recorder:
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements += [(sql, tuple(row)) for row in rows]

    def fetchone(self) -> None:
        return None

    def close(self) -> None:
        pass


def _statements(dialect: Any, call: str, *args: Any) -> list[str]:
    connection = _Recorder()
    getattr(SqlSession(connection, dialect), call)(*args)  # type: ignore[arg-type]
    return [sql for sql, _ in connection.statements]


def test_the_dialects_differ_where_they_say() -> None:
    assert _statements(SQLITE, "high_water") == ["SELECT seq FROM sqlite_sequence WHERE name = 'changes'"]
    assert _statements(POSTGRESQL, "high_water") == ["SELECT pg_sequence_last_value('changes_seq_seq')"]
    assert _statements(SQLITE, "prune_changes", 1, 10) == [
        "DELETE FROM changes WHERE collection = ? AND seq <= ?",
        "UPDATE collections SET log_floor = max(log_floor, ?) WHERE pk = ?"]
    assert _statements(POSTGRESQL, "prune_changes", 1, 10) == []  # every replica reads the one shared log
    assert _statements(SQLITE, "claim_job") == [
        "SELECT job_id FROM video_jobs WHERE status = ? ORDER BY created LIMIT 1"]
    assert _statements(POSTGRESQL, "claim_job", "job-1") == [
        "SELECT job_id FROM video_jobs WHERE status = %s AND job_id = %s ORDER BY created LIMIT 1 "
        "FOR UPDATE SKIP LOCKED"]
    assert _statements(POSTGRESQL, "get_user", 1, "u") == [
        "SELECT pk, user_id, status FROM users WHERE collection = %s AND user_id = %s"]


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=lambda d: d.name)
def test_an_empty_batch_issues_no_statement(dialect: Any) -> None:
    assert _statements(dialect, "mark_imported", 1, []) == []


def _embeddings_of_what_is_stored(store: Any) -> None:
    vectors = np.random.default_rng(0).standard_normal((5, 128)).astype(np.float32)
    with store.transaction(write=True) as session:
        pk = session.create_collection("c", "arn:c", "v1", {}).pk
        seqs = session.add_faces(pk, [NewFace(f"face-{i}", "image", None, {}, 99.0, "v1", vector)
                                      for i, vector in enumerate(vectors)])
        session.delete_faces(pk, [seqs[1]])
    with store.transaction() as session:
        found, matrix = session.embeddings_of(pk, [seqs[4], seqs[1], seqs[0], 10**9])
        assert found.tolist() == [seqs[0], seqs[4]]  # in seq order, the deleted and the unknown left out
        assert matrix.dtype == np.float32 and np.array_equal(matrix, vectors[[0, 4]])
        none, empty = session.embeddings_of(pk, [])
        assert none.shape == (0,) and empty.shape == (0, 0)
    store.close()


def test_embeddings_of_on_sqlite(tmp_path: Path) -> None:
    _embeddings_of_what_is_stored(SqliteMetadataStore(tmp_path))


def test_embeddings_of_on_postgres(postgres_url: str) -> None:  # noqa: F811
    _embeddings_of_what_is_stored(PostgresMetadataStore(postgres_url, max_size=1))
