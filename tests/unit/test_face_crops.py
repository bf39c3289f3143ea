"""Face crops in process (scripted analyzer, SQLite store): none without the policy's KeepFaceCrops; with it, one
96x96 JPEG of the face's region per face, from IndexFaces and from the bulk path (`facelens index`), audited as
kept; a face at the image's edge is cropped inside the image."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelens.domain.face_crops import SIZE, face_crop
from facelens.service import Backend
from tests.collections_fakes import ScriptedAnalyzer, ScriptedFace, identities, make_backend


@pytest.fixture
def analyzer() -> ScriptedAnalyzer:
    return ScriptedAnalyzer()


@pytest.fixture
def backend(tmp_path: Path, analyzer: ScriptedAnalyzer) -> Iterator[Backend]:
    backend = make_backend(tmp_path / "data", analyzer)
    yield backend
    backend.close()


def crop_of(backend: Backend, face_id: str) -> bytes | None:
    assert backend.collections is not None
    return backend.collections.face_crop(collection_id="c", face_id=face_id)


def test_crops_only_with_the_policy_from_both_indexing_paths(backend: Backend, analyzer: ScriptedAnalyzer) -> None:
    vectors, _ = identities(3, 1)
    backend.call("CreateCollection", {"CollectionId": "c"})
    image = analyzer.image(90, [ScriptedFace((100, 100, 200, 220), vectors[0])])
    before = backend.call("IndexFaces", {"CollectionId": "c", "Image": image})["FaceRecords"][0]["Face"]["FaceId"]
    assert crop_of(backend, before) is None
    assert backend.call("GetCollectionPolicy", {"CollectionId": "c"})["EffectivePolicy"]["KeepFaceCrops"] is False

    backend.call("PutCollectionPolicy", {"CollectionId": "c", "Policy": {"KeepFaceCrops": True}})
    after = backend.call("IndexFaces", {"CollectionId": "c", "Image": image})["FaceRecords"][0]["Face"]["FaceId"]
    jpeg = crop_of(backend, after)
    assert jpeg is not None
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert pixels.shape == (SIZE, SIZE, 3) and abs(float(pixels.mean()) - 90) < 3  # the grey of that image
    bulk = backend.collections.index_images("c", [("a.png", analyzer.image(150, [
        ScriptedFace((10, 10, 110, 130), vectors[1]), ScriptedFace((300, 100, 380, 200), vectors[2])]), "a")])
    bulk_ids = [record.stored.face_id for record in bulk[0].indexed]
    assert len(bulk_ids) == 2 and all(crop_of(backend, face_id) for face_id in bulk_ids)
    assert backend.collections.faces_with_crops(collection_id="c", face_ids=[before, after, *bulk_ids]) == {
        after, *bulk_ids}
    with backend.store.transaction() as session:
        records = [json.loads(row.text) for row in session.audit_rows() if row.operation == "IndexFaces"]
    assert [r.get("face_crops_kept") for r in records] == [None, 1, 2]

    backend.call("DeleteFaces", {"CollectionId": "c", "FaceIds": [after]})
    assert crop_of(backend, after) is None and crop_of(backend, bulk_ids[0]) is not None


def test_a_face_at_the_edge_is_cropped_inside_the_image() -> None:
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :100] = 255  # white left half, black right half
    thumbnail = np.asarray(Image.open(io.BytesIO(face_crop(pixels, np.array([0, 0, 40, 50], np.float32)))))
    assert thumbnail.shape == (SIZE, SIZE, 3) and thumbnail.mean() > 240  # all from the white half, no padding
