"""`facelens index` / `facelens search`: bulk indexing of a folder or glob with the real models, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelens import bulk, cli
from facelens.config import ServerSettings
from facelens.service import build
from tests.conftest import encode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, cameraman: np.ndarray) -> Path:
    """people/eileen/*.jpg (4 photos), people/cameraman/one.png, people/empty/wall.jpg, people/notes/bad.jpg."""
    root = tmp_path_factory.mktemp("people")
    for name, pixels in {
        "eileen/a.jpg": astronaut[:400, :400],
        "eileen/b.jpg": cv2.resize(np.ascontiguousarray(astronaut[30:-30, 30:-30]), (360, 360)),
        "eileen/c d.jpg": astronaut[:, ::-1],
        "eileen/e.jpg": cv2.convertScaleAbs(astronaut, alpha=1.15, beta=12),
        "cameraman/one.png": cameraman,
        "empty/wall.jpg": np.full((200, 300, 3), 90, np.uint8),
    }.items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(encode(np.ascontiguousarray(pixels), "PNG" if name.endswith(".png") else "JPEG"))
    (root / "notes").mkdir()
    (root / "notes" / "bad.jpg").write_bytes(b"not an image")
    (root / "notes" / "readme.txt").write_text("ignored: not an image suffix")
    return root


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}


def faces_of(data_dir: Path, collection: str) -> list[dict]:
    with build(ServerSettings(data_dir=data_dir)) as backend:  # what `facelens serve --data-dir` opens
        return backend.call("ListFaces", {"CollectionId": collection, "MaxResults": 4096})["Faces"]


def test_index_a_folder_then_search(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = str(tmp_path / "data")
    code, report = run(capsys, "index", "people", str(folder), "--external-id-from", "parent", "--data-dir", data,
                       "--batch", "3")
    assert code == 0
    assert report == {"Files": 7, "SkippedAlreadyIndexed": 0, "IndexedImages": 6, "IndexedFaces": 5,
                      "UnindexedFaces": 0, "ImagesWithoutFaces": 1, "FailedImages": 1, "CollectionFaceCount": 5}
    assert sorted(f["ExternalImageId"] for f in faces_of(tmp_path / "data", "people")) == ["cameraman"] + ["eileen"] * 4
    code, found = run(capsys, "search", "people", str(folder / "eileen" / "a.jpg"), "--data-dir", data)
    assert code == 0 and [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["eileen"] * 4
    assert found["FaceMatches"][0]["Similarity"] > 90  # the same photo
    assert run(capsys, "search", "people", str(folder / "empty" / "wall.jpg"), "--data-dir", data)[0] == 2
    assert run(capsys, "search", "nobody", str(folder / "eileen" / "a.jpg"), "--data-dir", data)[0] == 2


def test_glob_and_external_ids(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = str(tmp_path / "data")
    code, report = run(capsys, "index", "g", str(folder / "eileen" / "*.jpg"), "--data-dir", data)
    assert code == 0 and report["Files"] == 4 and report["IndexedFaces"] == 4
    assert sorted(f["ExternalImageId"] for f in faces_of(tmp_path / "data", "g")) == ["a.jpg", "b.jpg", "c_d.jpg",
                                                                                      "e.jpg"]
    assert bulk.external_id(Path("x/Jos\u00e9 Mar\u00eda/p 1.jpg"), "parent") == "Jos__Mar_a"
    assert bulk.external_id(Path("x/y/p 1.jpg"), "stem") == "p_1" and bulk.external_id(Path("p.jpg"), "none") is None
    assert run(capsys, "index", "g", str(tmp_path / "nothing-here" / "*.jpg"), "--data-dir", data)[0] == 2


def test_an_interrupted_run_resumes_without_duplicates(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       ) -> None:
    data = str(tmp_path / "data")

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C once the first batch is stored, before the second

    with build(ServerSettings(data_dir=tmp_path / "data")) as backend:
        backend.call("CreateCollection", {"CollectionId": "r"})
        with pytest.raises(KeyboardInterrupt):
            bulk.index_files(backend.collections, "r", bulk.image_files(str(folder)), batch=2, progress=interrupt)
    first = faces_of(tmp_path / "data", "r")
    assert 0 < len(first) <= 2  # the first batch (two files) is stored, the second is not
    code, report = run(capsys, "index", "r", str(folder), "--batch", "2", "--data-dir", data)
    assert code == 0 and report["SkippedAlreadyIndexed"] == 2 and report["CollectionFaceCount"] == 5
    faces = faces_of(tmp_path / "data", "r")
    assert {f["FaceId"] for f in first} <= {f["FaceId"] for f in faces}
    assert sorted(f["ExternalImageId"] for f in faces) == ["a.jpg", "b.jpg", "c_d.jpg", "e.jpg", "one.png"]
    _, again = run(capsys, "index", "r", str(folder), "--data-dir", data)  # everything done: nothing changes
    assert again["SkippedAlreadyIndexed"] == 6 and again["IndexedImages"] == 0 and again["CollectionFaceCount"] == 5


def test_batches_in_flight_together_index_what_one_at_a_time_does(folder: Path, tmp_path: Path) -> None:
    files = bulk.image_files(str(folder))
    reports, stored = [], []
    for workers in (1, 3):
        with build(ServerSettings(data_dir=tmp_path / f"data{workers}")) as backend:
            backend.call("CreateCollection", {"CollectionId": "w"})
            seen: list[int] = []
            reports.append(bulk.index_files(backend.collections, "w", files, batch=1, workers=workers,
                                            progress=seen.append, external_id_from="stem"))
            assert seen == [1] * len(files)  # every batch reported once, in order
        stored.append(sorted((f["ExternalImageId"], round(f["BoundingBox"]["Left"], 4))
                             for f in faces_of(tmp_path / f"data{workers}", "w")))
    one, many = reports
    assert (many.indexed_images, many.faces, many.no_face) == (one.indexed_images, one.faces, one.no_face) == (
        6, 5, [str(folder / "empty" / "wall.jpg")])
    assert [path for path, _ in many.failed] == [path for path, _ in one.failed] == [str(folder / "notes" / "bad.jpg")]
    assert stored[0] == stored[1]
