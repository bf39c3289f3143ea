"""One accountability gate whatever the entry point: the CompareFaces floor and the audit record are the same
through the backend, the Python API (`facelens.compare`, `facelens.search`) and the CLI (`facelens compare`,
`facelens search`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import facelens
from facelens import cli
from facelens.config import ServerSettings
from facelens.context import RequestContext
from facelens.service import build, build_faces
from facelens.store.open import open_store
from tests.collections_fakes import CALIBRATION, DIM, ScriptedAnalyzer, ScriptedFace, unit
from tests.conftest import encode


def audit_records(data_dir: Path) -> list[dict]:
    store = open_store(None, data_dir / "collections")
    try:
        with store.transaction() as session:
            return [row.record for row in session.audit_rows()]
    finally:
        store.close()


@pytest.fixture
def pair() -> tuple[ScriptedAnalyzer, bytes, bytes]:
    """Two scripted images whose faces are at cosine 0.3: Similarity 50 on the synthetic calibration."""
    analyzer = ScriptedAnalyzer()
    first, second = np.eye(DIM, dtype=np.float32)[:2]
    source = analyzer.image(10, [ScriptedFace((100, 100, 200, 220), first)])
    target = analyzer.image(20, [ScriptedFace((300, 100, 400, 220), unit(0.3 * first + np.sqrt(0.91) * second)[0])])
    return analyzer, source, target


def compare(backend, source: bytes, target: bytes, context: RequestContext) -> dict:
    return backend.call("CompareFaces", {"SourceImage": source, "TargetImage": target, "SimilarityThreshold": 0},
                        context)


# -- the gate itself: fast, no models
def test_compare_faces_is_raised_to_the_default_floor_without_a_data_directory(pair, tmp_path: Path) -> None:
    analyzer, source, target = pair
    backend = build_faces(ServerSettings(data_dir=tmp_path), analyzer=analyzer, calibration_for=lambda _: CALIBRATION)
    context = RequestContext()
    response = compare(backend, source, target, context)
    assert response["FaceMatches"] == [] and len(response["UnmatchedFaces"]) == 1  # Similarity 50 < floor 70
    assert context.disclosures["effective-threshold"] == "70.00"
    assert not (tmp_path / "collections").exists()  # no data directory given: nothing written anywhere


def test_compare_faces_through_the_backend_is_floored_and_audited(pair, tmp_path: Path) -> None:
    analyzer, source, target = pair
    settings = ServerSettings(data_dir=tmp_path)
    with build(settings, analyzer=analyzer, calibration_for=lambda _: CALIBRATION) as backend:
        response = compare(backend, source, target, RequestContext("FLKCALLER", purpose="case 9"))
        assert response["FaceMatches"] == []
        lowered = ServerSettings.from_env({"FACELENS_MIN_COMPARE_SIMILARITY": "40"}, data_dir=tmp_path / "other")
        with build(lowered, analyzer=analyzer, calibration_for=lambda _: CALIBRATION) as permissive:
            (match,) = compare(permissive, source, target, RequestContext())["FaceMatches"]
            assert match["Similarity"] == pytest.approx(50, abs=0.01)
    (record,) = [r for r in audit_records(tmp_path) if r["operation"] == "CompareFaces"]
    assert (record["key"], record["purpose"]) == ("FLKCALLER", "case 9")
    assert (record["requested_threshold"], record["effective_threshold"], record["similarities"]) == (0, 70, [])


# -- the Python API and the CLI, with the real models
def test_python_api_compare_and_search_are_floored_and_audited_in_the_data_directory(
        tmp_path: Path, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    data_dir = tmp_path / "data"
    without = facelens.compare(astronaut_jpeg, cameraman_jpeg, threshold=0)
    assert without["FaceMatches"] == []  # the floor holds without a data directory too
    assert facelens.compare(astronaut_jpeg, cameraman_jpeg, threshold=0, data_dir=data_dir,
                            purpose="ticket 1")["FaceMatches"] == []
    with build(ServerSettings(data_dir=data_dir)) as backend:
        backend.call("CreateCollection", {"CollectionId": "people"})
        backend.call("IndexFaces", {"CollectionId": "people", "Image": astronaut_jpeg})
    found = facelens.search("people", astronaut_jpeg, threshold=0, data_dir=data_dir, purpose="ticket 2")
    assert len(found["FaceMatches"]) == 1
    records = {r["operation"]: r for r in audit_records(data_dir)}
    compared, searched = records["CompareFaces"], records["SearchFacesByImage"]
    assert (compared["key"], compared["purpose"], compared["effective_threshold"]) == ("local-python", "ticket 1", 70)
    assert (searched["key"], searched["purpose"], searched["requested_threshold"]) == ("local-python", "ticket 2", 0)
    assert searched["effective_threshold"] == 80  # the collection's search floor
    assert searched["matches"][0]["FaceId"] == found["FaceMatches"][0]["Face"]["FaceId"]


def test_cli_compare_and_search_are_floored_and_audited(tmp_path: Path, astronaut: np.ndarray, astronaut_jpeg: bytes,
                                                       cameraman_jpeg: bytes, capsys: pytest.CaptureFixture) -> None:
    data_dir = tmp_path / "data"
    (tmp_path / "a.jpg").write_bytes(astronaut_jpeg)
    (tmp_path / "b.jpg").write_bytes(cameraman_jpeg)
    (tmp_path / "c.jpg").write_bytes(encode(np.ascontiguousarray(astronaut[:, ::-1])))  # mirrored: another photo
    assert cli.main(["compare", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--threshold", "0",
                     "--data-dir", str(data_dir), "--purpose", "case 3"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["FaceMatches"] == [] and "effective-threshold 70.00" in err
    assert cli.main(["index", "people", str(tmp_path / "a.jpg"), "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    assert cli.main(["search", "people", str(tmp_path / "c.jpg"), "--threshold", "10", "--data-dir",
                     str(data_dir), "--purpose", "case 4"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)["FaceMatches"]) == 1 and "effective-threshold 80.00" in err
    records = {r["operation"]: r for r in audit_records(data_dir)}
    assert (records["CompareFaces"]["key"], records["CompareFaces"]["purpose"]) == ("local-cli", "case 3")
    assert records["CompareFaces"]["effective_threshold"] == 70
    assert (records["SearchFacesByImage"]["purpose"], records["SearchFacesByImage"]["effective_threshold"]) == (
        "case 4", 80)

