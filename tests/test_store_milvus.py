"""Milvus (Lite's gRPC server, reached like a cluster) as the vector store shared by replicas on PostgreSQL:
writes through one replica found through the others, deletes and stray vectors never returned, `facelens
reindex` refilling a collection lost from Milvus; and embedded Milvus Lite beside SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.cli import main
from facelens.collections import FaceCollections
from facelens.store.milvus import MilvusVectors, client_uri
from facelens.store.postgres import PostgresMetadataStore
from tests.collections_fakes import CALIBRATION, DIM, ScriptedAnalyzer, unit
from tests.pg_fixtures import postgres_url  # noqa: F401 - fixture


@pytest.fixture
def replicas(postgres_url: str, milvus: str, tmp_path: Path,  # noqa: F811
             monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FaceCollections]]:
    monkeypatch.setenv("FACELENS_VECTOR_URL", milvus)
    backends = [FaceCollections(tmp_path / f"replica-{i}", ScriptedAnalyzer, lambda _: CALIBRATION,
                                store=PostgresMetadataStore(postgres_url)) for i in range(3)]
    yield backends
    for backend in backends:
        backend.close()


def test_urls() -> None:
    assert client_uri("milvus://db.internal:19530") == ("http://db.internal:19530", "FLAT")
    assert client_uri("milvus+https://db:443?index=hnsw") == ("https://db:443", "HNSW")
    assert client_uri("milvus:///var/lib/facelens/milvus.db") == ("/var/lib/facelens/milvus.db", "FLAT")


def test_replicas_share_one_milvus(replicas: list[FaceCollections]) -> None:
    first, second, third = replicas
    assert all(isinstance(backend.cache, MilvusVectors) for backend in replicas)
    first.create_collection({"CollectionId": "c"})
    people = unit(np.random.default_rng(5).standard_normal((50, DIM)))
    face_ids = second.add_embeddings("c", people)
    for backend in replicas:
        for i in (0, 17, 49):
            assert [m["Face"]["FaceId"] for m in backend.search_embedding("c", people[i], threshold=90)] == [
                face_ids[i]]
    third.delete_faces({"CollectionId": "c", "FaceIds": face_ids[:10]})
    for backend in replicas:
        assert backend.search_embedding("c", people[3], threshold=90) == []
        assert backend.cache.count(1) == 40

    # a vector Milvus holds but the database does not (written behind FaceLens's back) is never returned
    first.cache.client.upsert(first.cache.name(1), [{"id": 10**9, "vector": people[20].tolist()}])
    found = second.search_embedding("c", people[20], threshold=50)
    assert [m["Face"]["FaceId"] for m in found] == [face_ids[20]]


def test_reindex_refills_a_collection_lost_from_milvus(replicas: list[FaceCollections], postgres_url: str,  # noqa: F811
                                                       milvus: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, _ = replicas
    first.create_collection({"CollectionId": "kept"})
    people = unit(np.random.default_rng(6).standard_normal((12, DIM)))
    face_ids = first.add_embeddings("kept", people)
    assert second.search_embedding("kept", people[4], threshold=90)
    first.cache.client.drop_collection(first.cache.name(1))  # Milvus lost it (a new cluster, a mistake)
    assert [m["Face"]["FaceId"] for m in second.search_embedding("kept", people[5], threshold=90)] == [
        face_ids[5]]  # a search finds the collection gone and refills it from the database
    first.cache.client.drop_collection(first.cache.name(1))
    monkeypatch.setenv("FACELENS_DATABASE_URL", postgres_url)
    assert main(["reindex", "--data-dir", str(tmp_path / "cli")]) == 0
    for backend in replicas:
        assert [m["Face"]["FaceId"] for m in backend.search_embedding("kept", people[4], threshold=90)] == [
            face_ids[4]]
    assert main(["reindex", "nope", "--data-dir", str(tmp_path / "cli")]) == 2


def test_embedded_milvus_lite_beside_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELENS_VECTOR_URL", f"milvus://{tmp_path / 'milvus.db'}")
    with FaceCollections(tmp_path / "data", ScriptedAnalyzer, lambda _: CALIBRATION) as backend:
        backend.create_collection({"CollectionId": "c"})
        people = unit(np.random.default_rng(7).standard_normal((5, DIM)))
        face_ids = backend.add_embeddings("c", people)
        assert isinstance(backend.cache, MilvusVectors)
        assert [m["Face"]["FaceId"] for m in backend.search_embedding("c", people[1], threshold=90)] == [face_ids[1]]
