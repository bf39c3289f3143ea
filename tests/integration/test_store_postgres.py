"""The PostgreSQL store shared by several backends ("replicas" in one process, each with its own vector cache):
a face written through one is found through another at once, the audit chain stays linear under concurrent
writers, a video job is claimed by exactly one worker and taken over when its worker's claim expires, and the
schema is versioned."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from facelens.accountability import audit
from facelens.service import Backend
from facelens.store.jobs import QUEUED, RUNNING, SUCCEEDED
from facelens.store.sql.postgres import SCHEMA_VERSION, PostgresMetadataStore
from tests.collections_fakes import DIM, make_backend, unit
from tests.pg_fixtures import postgres_url  # noqa: F401 - fixture


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[Backend]]:  # noqa: F811
    backends = [make_backend(tmp_path / f"replica-{i}", store=PostgresMetadataStore(postgres_url))
                for i in range(3)]
    yield backends
    for backend in backends:
        backend.close()


def test_a_face_written_through_one_replica_is_found_through_the_others(replicas: list[Backend]) -> None:
    first, second, third = replicas
    first.call("CreateCollection", {"CollectionId": "c"})
    people = unit(np.random.default_rng(1).standard_normal((4, DIM)))
    for backend in replicas:  # every cache is warm before the writes it has to learn of
        assert backend.search.by_embedding("c", people[0], threshold=90) == []
    face_ids = second.collections.add_embeddings("c", people)
    for backend in replicas:
        found = backend.search.by_embedding("c", people[2], threshold=90)
        assert [m.face.face_id for m in found] == [face_ids[2]]
    third.call("DeleteFaces", {"CollectionId": "c", "FaceIds": [face_ids[2]]})
    for backend in replicas:  # a deleted face is never returned, whatever a cache still holds
        assert backend.search.by_embedding("c", people[2], threshold=90) == []
    assert first.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 3


def test_the_audit_chain_stays_linear_under_concurrent_writers(replicas: list[Backend]) -> None:
    replicas[0].call("CreateCollection", {"CollectionId": "c"})
    rng = np.random.default_rng(2)
    vectors = unit(rng.standard_normal((60, DIM)))
    errors: list[BaseException] = []

    def write(backend: Backend, part: np.ndarray) -> None:
        try:
            for vector in part:
                backend.collections.add_embeddings("c", vector[None, :])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(backend, vectors[i::3])) for i, backend in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with replicas[1].store.transaction() as session:
        rows = session.audit_rows(0, 1000)
    assert len(rows) == 61 and [row.seq for row in rows] == list(range(1, 62))
    assert audit.verify(rows).ok
    assert replicas[2].call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 60


def test_a_job_is_claimed_once_and_taken_over_when_its_claim_expires(replicas: list[Backend],
                                                                      postgres_url: str) -> None:  # noqa: F811
    with replicas[0].store.transaction(write=True) as session:
        for i in range(5):
            session.create_job(f"job-{i}", "FaceDetection", {"Video": {}}, "k", None)
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(backend: Backend) -> None:
        while True:
            with backend.store.transaction(write=True) as session:
                job = session.claim_job()
            if job is None:
                return
            with lock:
                claimed.append(job.job_id)

    threads = [threading.Thread(target=claim, args=(backend,)) for backend in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == [f"job-{i}" for i in range(5)]  # each exactly once

    with replicas[1].store.transaction(write=True) as session:
        assert session.requeue_interrupted(expired_only=True) == 0  # claims are fresh: nobody takes them over
    with psycopg.connect(postgres_url, autocommit=True) as db:  # the worker of job-3 died a minute ago
        db.execute("UPDATE video_jobs SET lease_until = %s WHERE job_id = 'job-3'", (time.time() - 1,))
    with replicas[2].store.transaction(write=True) as session:
        assert session.requeue_interrupted(expired_only=True) == 1
        assert session.get_job("job-3").status == QUEUED and session.get_job("job-2").status == RUNNING
        job = session.claim_job()
    assert job is not None and job.job_id == "job-3" and job.attempts == 2
    with replicas[0].store.transaction(write=True) as session:
        session.finish_job("job-3", SUCCEEDED, None, {"Codec": "h264"}, [])
        assert session.get_job("job-3").status == SUCCEEDED


def test_schema_is_versioned_and_migrated_once(postgres_url: str) -> None:  # noqa: F811
    stores = [PostgresMetadataStore(postgres_url) for _ in range(2)]  # the second finds it done
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM facelens_schema").fetchall() == [(SCHEMA_VERSION,)]
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute("INSERT INTO audit VALUES (1, 0, NULL, 'x', '{}', '', '')")
            db.execute("UPDATE audit SET record = '{}'")
    for store in stores:
        store.close()
