"""One face path (issue 12, item 4): `analysis.find_faces` is what the service, video and `facelens eval` run.

The identity test uses the real models: an image embedded by the evaluation and the same bytes through the path
the collection backend runs (IndexFaces / SearchFacesByImage) give bit-identical embeddings, the largest face
included when it is not the most central one. The contract tests use a scripted analyzer (no models).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelens import errors
from facelens.analysis import FaceSet, find_faces, find_faces_in
from facelens.imaging import DecodedImage
from facelens.pipeline import Face
from tests.conftest import encode


@pytest.fixture(scope="module")
def off_centre_pair(astronaut: np.ndarray, cameraman: np.ndarray) -> np.ndarray:
    """Eileen Collins large in the top-left corner, the cameraman small in the very centre."""
    canvas = np.full((1024, 1024, 3), 120, np.uint8)
    canvas[:512, :512] = astronaut
    canvas[384:640, 384:640] = cv2.resize(cameraman, (256, 256), interpolation=cv2.INTER_AREA)
    return canvas


def test_eval_embeds_exactly_what_the_service_embeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     astronaut_jpeg: bytes, cameraman_jpeg: bytes,
                                                     off_centre_pair: np.ndarray) -> None:
    from facelens.eval.dataset import FACE_PATH_VERSION, embed_with_pipeline
    from facelens.pipeline import default_analyzer

    pair_jpeg = encode(off_centre_pair)
    images = {"astronaut": astronaut_jpeg, "cameraman": cameraman_jpeg, "pair": pair_jpeg}
    root = tmp_path / "faces"
    for name, data in images.items():
        (root / name).mkdir(parents=True)
        (root / name / f"{name}_0001.jpg").write_bytes(data)
    monkeypatch.setenv("FACELENS_CACHE", str(tmp_path / "cache"))
    analyzer = default_analyzer()
    version = analyzer.model_version

    embedded = embed_with_pipeline(root)

    assert analyzer.model_version == version  # the evaluation changed no model state
    assert [path.parent.name for path in embedded.dataset.paths] == list(images)
    assert embedded.embeddings.found.all()
    for row, data in enumerate(images.values()):
        service = find_faces_in(analyzer, data, None, embed=None)  # what the collection backend runs
        largest = service.passed[0]
        assert largest.embedding is not None and largest.embedding.dtype == np.float32
        assert np.array_equal(embedded.vectors[row], largest.embedding)
        assert np.array_equal(embedded.embeddings.boxes[row], largest.box)

    pair = find_faces_in(analyzer, pair_jpeg, None, embed=None).passed
    assert len(pair) == 2 and pair[0].area > pair[1].area
    centre = np.array([512.0, 512.0])
    centres = [np.hypot(*((face.box[:2] + face.box[2:]) / 2 - centre)) for face in pair]
    assert centres[1] < centres[0]  # the smaller face is the central one, and the evaluation did not take it
    assert float(embedded.vectors[2] @ pair[1].embedding) < 0.5
    alone = find_faces_in(analyzer, astronaut_jpeg, None, embed=1).passed[0]
    assert float(embedded.vectors[2] @ alone.embedding) > 0.9

    again = embed_with_pipeline(root)  # from the cache, keyed by the face path: the same vectors
    assert np.array_equal(again.vectors, embedded.vectors)
    (cached,) = (tmp_path / "cache").iterdir()
    assert FACE_PATH_VERSION in cached.name and version in cached.name


# -- the contract of find_faces, on a scripted analyzer
class Scripted:
    """Faces given per image by the grey level of its first pixel; records the model calls it gets."""

    def __init__(self, scenes: dict[int, list[tuple[tuple[float, float, float, float], float]]]) -> None:
        self.scenes = scenes
        self.calls: list[tuple[str, object]] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        self.calls.append(("detect", len(images)))
        out = []
        for image in images:
            faces = []
            for box, confidence in self.scenes.get(int(image[0, 0, 0]), []):
                x1, y1, x2, y2 = box
                landmarks = np.tile([(x1 + x2) / 2, (y1 + y2) / 2], (5, 1)).astype(np.float32)
                faces.append(Face(box=np.array(box, np.float32), landmarks=landmarks, confidence=confidence))
            out.append(faces)
        return out

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None:
        self.calls.append(("describe", frozenset(fields)))
        for face in faces:
            if "Pose" in fields:
                face.pose = (0.0, 0.0, 0.0)
            if "Quality" in fields:
                face.quality = (50.0, 50.0)

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> None:
        self.calls.append(("embed", [len(per) for per in faces]))
        for per in faces:
            for face in per:
                face.embedding = np.array([face.area, 1.0], np.float32)


def frame(level: int) -> DecodedImage:
    return DecodedImage(np.full((300, 300, 3), level, np.uint8), "VIDEO")


SCENES = {
    10: [((0, 0, 20, 20), 99.0), ((0, 0, 100, 100), 99.0), ((100, 100, 150, 150), 50.0)],  # small, large, dim
    20: [((10, 10, 90, 90), 99.0)],
    30: [],
}


def areas(found: FaceSet) -> list[float]:
    return [face.area for face, _ in found.faces]


def test_largest_first_limits_and_one_batch_per_model() -> None:
    analyzer = Scripted(SCENES)
    a, b, c = find_faces(analyzer, [frame(10), frame(20), frame(30)], None, limit=(2, 5, 5), embed=None)
    assert isinstance(a, FaceSet) and isinstance(b, FaceSet) and isinstance(c, FaceSet)
    assert areas(a) == [10_000.0, 2_500.0] and areas(b) == [6_400.0] and c.faces == []
    assert all(reasons == [] for _, reasons in a.faces)  # NONE filters nothing
    assert analyzer.calls == [("detect", 3), ("embed", [2, 1])]  # no fields: not described; one embed batch
    assert all(face.embedding is not None for face in a.passed + b.passed)


def test_quality_filter_adds_the_fields_it_needs_and_only_passing_faces_are_embedded() -> None:
    analyzer = Scripted(SCENES)
    (found,) = find_faces(analyzer, [frame(10)], {"Landmarks"}, quality_filter="MEDIUM", embed=1)
    assert isinstance(found, FaceSet)
    assert ("describe", frozenset({"Landmarks", "Pose", "Quality"})) in analyzer.calls
    reasons = [r for _, r in found.faces]
    assert reasons == [[], ["LOW_CONFIDENCE"], ["SMALL_BOUNDING_BOX"]]  # large, dim, small
    assert [face.area for face in found.passed] == [10_000.0]
    embedded = [face for face, _ in found.faces if face.embedding is not None]
    assert embedded == found.passed[:1]


def test_embed_counts_and_decoding_errors_in_their_slots(astronaut_jpeg: bytes) -> None:
    analyzer = Scripted(SCENES)
    results = find_faces(analyzer, [frame(10), b"not an image", frame(20)], None, embed=0)
    assert isinstance(results[1], errors.InvalidImageFormatException)
    assert ("embed", [3]) not in analyzer.calls and all(call[0] != "embed" for call in analyzer.calls)
    find_faces(analyzer, [frame(10), frame(20)], None, embed=2)
    assert analyzer.calls[-1] == ("embed", [2, 1])
    with pytest.raises(errors.ImageTooLargeException):
        find_faces_in(analyzer, astronaut_jpeg, None, max_bytes=100)
    decoded = find_faces_in(analyzer, astronaut_jpeg, None)
    assert decoded.image.width == 512 and decoded.faces == []  # decoded from bytes; no scripted faces
