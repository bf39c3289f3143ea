"""Milvus (a real Milvus standalone server, reached like a cluster) as the vector store shared by replicas on
PostgreSQL: writes through one replica found through the others, deletes and stray vectors never returned,
`facelens reindex` refilling a collection lost from Milvus, and the index the URL names built and searched with
its parameters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.cli import main
from facelens.config import ServerSettings, StoreSettings
from facelens.service import Backend
from facelens.store.milvus import MilvusIndex, MilvusVectors, client_uri, index_of
from facelens.store.sql.postgres import PostgresMetadataStore
from tests.collections_fakes import DIM, make_backend, unit
from tests.pg_fixtures import postgres_url  # noqa: F401 - fixture


@pytest.fixture
def replicas(postgres_url: str, milvus: str, tmp_path: Path,  # noqa: F811
             ) -> Iterator[list[Backend]]:
    backends = [make_backend(tmp_path / f"replica-{i}", store=PostgresMetadataStore(postgres_url),
                             settings=ServerSettings(data_dir=tmp_path / f"replica-{i}",
                                                     store=StoreSettings(vector_url=milvus)))
                for i in range(3)]
    yield backends
    for backend in backends:
        backend.close()


def test_urls() -> None:
    assert client_uri("milvus://db.internal:19530") == ("http://db.internal:19530", "FLAT")
    assert client_uri("milvus+https://db:443?index=hnsw") == ("https://db:443", "HNSW")
    assert index_of("milvus://db:19530") == MilvusIndex("FLAT", {}, {})
    assert index_of("milvus://db:19530?index=hnsw") == MilvusIndex("HNSW", {"M": 48, "efConstruction": 500},
                                                                   {"ef": 1024})
    assert index_of("milvus://db:19530?index=IVF_SQ8&nlist=4096&nprobe=32") == MilvusIndex(
        "IVF_SQ8", {"nlist": 4096}, {"nprobe": 32})
    assert index_of("milvus://db?index=HNSW&ef=16").search_params(64) == {"metric_type": "IP",
                                                                          "params": {"ef": 64}}
    with pytest.raises(ValueError, match="Milvus server"):
        client_uri("milvus:///var/lib/facelens/milvus.db")


def test_replicas_share_one_milvus(replicas: list[Backend]) -> None:
    first, second, third = replicas
    assert all(isinstance(backend.vectors, MilvusVectors) for backend in replicas)
    first.call("CreateCollection", {"CollectionId": "c"})
    people = unit(np.random.default_rng(5).standard_normal((50, DIM)))
    face_ids = second.collections.add_embeddings("c", people)
    for backend in replicas:
        for i in (0, 17, 49):
            assert [m.face.face_id for m in backend.search.by_embedding("c", people[i], threshold=90)] == [
                face_ids[i]]
    third.call("DeleteFaces", {"CollectionId": "c", "FaceIds": face_ids[:10]})
    for backend in replicas:
        assert backend.search.by_embedding("c", people[3], threshold=90) == []
        assert backend.vectors.count(1) == 40

    # a vector Milvus holds but the database does not (written behind FaceLens's back) is never returned
    first.vectors.client.upsert(first.vectors.name(1), [{"id": 10**9, "vector": people[20].tolist()}])
    found = second.search.by_embedding("c", people[20], threshold=50)
    assert [m.face.face_id for m in found] == [face_ids[20]]


def test_reindex_refills_a_collection_lost_from_milvus(replicas: list[Backend], postgres_url: str,  # noqa: F811
                                                       milvus: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, _ = replicas
    first.call("CreateCollection", {"CollectionId": "kept"})
    people = unit(np.random.default_rng(6).standard_normal((12, DIM)))
    face_ids = first.collections.add_embeddings("kept", people)
    assert second.search.by_embedding("kept", people[4], threshold=90)
    first.vectors.client.drop_collection(first.vectors.name(1))  # Milvus lost it (a new cluster, a mistake)
    assert [m.face.face_id for m in second.search.by_embedding("kept", people[5], threshold=90)] == [
        face_ids[5]]  # a search finds the collection gone and refills it from the database
    first.vectors.client.drop_collection(first.vectors.name(1))
    monkeypatch.setenv("FACELENS_DATABASE_URL", postgres_url)
    assert main(["reindex", "--data-dir", str(tmp_path / "cli")]) == 0
    for backend in replicas:
        assert [m.face.face_id for m in backend.search.by_embedding("kept", people[4], threshold=90)] == [
            face_ids[4]]
    assert main(["reindex", "nope", "--data-dir", str(tmp_path / "cli")]) == 2


def test_the_url_names_the_index_and_its_parameters(postgres_url: str, milvus: str,  # noqa: F811
                                                    tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", store=StoreSettings(
        vector_url=f"{milvus}?index=HNSW&M=8&efConstruction=64&ef=16"))  # ef < the 64 candidates asked
    with make_backend(tmp_path / "data", store=PostgresMetadataStore(postgres_url), settings=settings) as backend:
        backend.call("CreateCollection", {"CollectionId": "c"})
        people = unit(np.random.default_rng(7).standard_normal((1500, DIM)))  # Milvus indexes >= 1,024 rows
        face_ids = backend.collections.add_embeddings("c", people)
        assert backend.vectors.count(1) == 1500
        client, name = backend.vectors.client, backend.vectors.name(1)
        client.flush(name)  # seal the segment, so that Milvus builds the HNSW index on it and searches that
        deadline = time.monotonic() + 120
        while int(client.describe_index(name, "vector").get("indexed_rows", 0)) < 1500:
            assert time.monotonic() < deadline, client.describe_index(name, "vector")
            time.sleep(0.5)
        client.release_collection(name)
        client.load_collection(name)
        described = client.describe_index(name, "vector")
        assert (described["index_type"], described["metric_type"]) == ("HNSW", "IP")
        assert (int(described["M"]), int(described["efConstruction"])) == (8, 64)
        for i in (1, 750, 1499):
            assert [m.face.face_id for m in backend.search.by_embedding("c", people[i], threshold=90)] == [
                face_ids[i]]
