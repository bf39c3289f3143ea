"""Bulk adds stay fast as the store grows: FaceIds sort in the order faces were indexed (their indexes grow at
one end), and they remain valid Rekognition FaceIds."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import botocore.session
import numpy as np

from facelens.store.ids import time_ordered_uuid
from tests.collections_fakes import identities, make_backend

FACE_ID = re.compile(botocore.session.get_session().get_service_model("rekognition")
                     .shape_for("FaceId").metadata["pattern"])


def test_face_ids_sort_in_the_order_faces_were_indexed(tmp_path: Path) -> None:
    backend = make_backend(tmp_path, floors=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors = identities(40, 1)[0]
    batches = []
    for start in range(0, 40, 10):
        batches.append(backend.collections.add_embeddings("c", vectors[start:start + 10]))
        time.sleep(0.002)  # the next call is a later millisecond
    assert all(max(earlier) < min(later) for earlier, later in itertools.pairwise(batches))
    listed = [face["FaceId"] for face in backend.call("ListFaces", {"CollectionId": "c", "MaxResults": 100})["Faces"]]
    assert sorted(listed) == sorted(face_id for batch in batches for face_id in batch)
    assert all(FACE_ID.fullmatch(face_id) and face_id[14] == "7" for face_id in listed)  # a version 7 UUID
    assert len(set(listed)) == 40
    backend.close()


def test_time_ordered_ids_follow_the_clock_and_stay_unique() -> None:
    ids = [time_ordered_uuid(ms * 1_000_000) for ms in range(1_700_000_000_000, 1_700_000_000_050)]
    assert ids == sorted(ids)
    same_ms = {time_ordered_uuid(1_700_000_000_000_000_000) for _ in range(10_000)}
    assert len(same_ms) == 10_000 and len({face_id[:13] for face_id in same_ms}) == 1
    assert all(FACE_ID.fullmatch(face_id) and face_id[19] in "89ab" for face_id in same_ms)  # RFC 9562 variant


def test_a_bulk_add_larger_than_one_insert_keeps_each_face_whole(tmp_path: Path) -> None:
    """`SqlSession.add_faces` inserts 1,000 faces per statement; 2,500 in one call come back in the order given,
    each FaceId with its own embedding, counted once, and found by its own embedding."""
    backend = make_backend(tmp_path, floors=False)
    backend.call("CreateCollection", {"CollectionId": "c"})
    vectors = np.random.default_rng(0).standard_normal((2500, 128)).astype(np.float32)
    face_ids = backend.collections.add_embeddings("c", vectors)
    assert backend.call("DescribeCollection", {"CollectionId": "c"})["FaceCount"] == 2500
    with backend.store.transaction() as session:
        pk = session.get_collection("c").pk
        stored = session.list_faces(pk, 0, 3000, embeddings=True)
    assert [face.face_id for face in stored] == face_ids  # seq order is the order given
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert all(np.allclose(face.embedding, unit[i], atol=1e-6) for i, face in enumerate(stored))
    for i in (0, 999, 1000, 2499):  # the vector index maps each seq to its face too
        assert [m.face.face_id for m in backend.search.by_embedding("c", unit[i], threshold=99)] == [face_ids[i]]
    backend.close()
