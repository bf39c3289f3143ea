"""Accountability over the wire, in process: the ASGI app over a backend with the scripted analyzer and the
synthetic calibration. Floors, their headers, the purpose header and its audit record, RequirePurpose, and
registry-derived key scopes, in milliseconds. (tests/integration/test_api_accountability.py runs the same
promises through a real `facelens serve` and boto3.)"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.context import KeyScope
from tests.collections_fakes import DIM, ScriptedAnalyzer, ScriptedFace, identities, make_backend, unit
from tests.service_fixtures import signed

URL = "http://testserver"
KEYS = {"FLKADMIN": "a-secret", "FLKREADER": "r-secret", "FLKPLAIN": "p-secret"}
SCOPES = {"FLKADMIN": KeyScope(admin=True), "FLKREADER": KeyScope(read_only=True)}


@pytest.fixture
def analyzer() -> ScriptedAnalyzer:
    return ScriptedAnalyzer()


@pytest.fixture
def api(tmp_path: Path, analyzer: ScriptedAnalyzer) -> Iterator[TestClient]:
    settings = ServerSettings.from_env({}, data_dir=tmp_path, warmup=False)
    backend = make_backend(tmp_path, analyzer)
    with TestClient(create_app(settings, backend, keys=KEYS, scopes=SCOPES), raise_server_exceptions=False) as c:
        yield c


def call(api: TestClient, operation: str, params: dict, key: str = "FLKADMIN", purpose: str | None = None):
    body = json.dumps(params).encode()
    headers = {"x-facelens-purpose": purpose} if purpose else None
    url, signed_headers = signed(URL, operation, body, key_id=key, secret=KEYS[key], headers=headers)
    return api.post(url, content=body, headers=signed_headers)


def image(analyzer: ScriptedAnalyzer, level: int, vector: np.ndarray) -> dict:
    return {"Bytes": base64.b64encode(analyzer.image(level, [ScriptedFace((100, 80, 220, 230), vector)])).decode()}


def audit(api: TestClient) -> list[dict]:
    rows = call(api, "ListAuditRecords", {}).json()["AuditRecords"]
    return [json.loads(row["Record"]) for row in rows]


def test_a_search_is_answered_at_the_floor_disclosed_and_audited_with_its_purpose(
        api: TestClient, analyzer: ScriptedAnalyzer) -> None:
    vectors, _ = identities(5, 1)
    assert call(api, "CreateCollection", {"CollectionId": "c"}).status_code == 200
    for i, vector in enumerate(vectors):
        assert call(api, "IndexFaces", {"CollectionId": "c", "Image": image(analyzer, 10 + i, vector)}).status_code \
            == 200
    probe = image(analyzer, 50, unit(vectors[0] + 0.05 * np.eye(DIM, dtype=np.float32)[3])[0])
    response = call(api, "SearchFacesByImage", {"CollectionId": "c", "Image": probe, "FaceMatchThreshold": 0},
                    key="FLKPLAIN", purpose="case 7")
    assert response.status_code == 200, response.text
    assert response.headers["x-facelens-effective-threshold"] == "80.00"  # asked 0, answered at the floor
    assert float(response.headers["x-facelens-false-match-probability"]) < 1e-4
    assert all(match["Similarity"] >= 80 for match in response.json()["FaceMatches"])
    (record,) = [r for r in audit(api) if r["operation"] == "SearchFacesByImage"]
    assert (record["key"], record["purpose"], record["requested_threshold"], record["effective_threshold"]) == (
        "FLKPLAIN", "case 7", 0, 80)


def test_compare_faces_over_the_wire_is_floored_and_audited(api: TestClient, analyzer: ScriptedAnalyzer) -> None:
    first, second = np.eye(DIM, dtype=np.float32)[:2]
    source, target = image(analyzer, 60, first), image(analyzer, 61, unit(0.3 * first + np.sqrt(0.91) * second)[0])
    response = call(api, "CompareFaces", {"SourceImage": source, "TargetImage": target, "SimilarityThreshold": 10},
                    key="FLKPLAIN")
    assert response.status_code == 200
    assert response.json()["FaceMatches"] == [] and len(response.json()["UnmatchedFaces"]) == 1  # 50 < 70
    assert response.headers["x-facelens-effective-threshold"] == "70.00"
    (record,) = [r for r in audit(api) if r["operation"] == "CompareFaces"]
    assert (record["key"], record["effective_threshold"]) == ("FLKPLAIN", 70)


def test_require_purpose_refuses_and_audits_a_search_without_one(api: TestClient, analyzer: ScriptedAnalyzer) -> None:
    vectors, _ = identities(2, 1)
    call(api, "CreateCollection", {"CollectionId": "p"})
    call(api, "IndexFaces", {"CollectionId": "p", "Image": image(analyzer, 70, vectors[0])})
    assert call(api, "PutCollectionPolicy", {"CollectionId": "p", "Policy": {"RequirePurpose": True}}).status_code \
        == 200
    face_id = call(api, "ListFaces", {"CollectionId": "p"}).json()["Faces"][0]["FaceId"]
    refused = call(api, "SearchFaces", {"CollectionId": "p", "FaceId": face_id}, key="FLKPLAIN")
    assert (refused.status_code, refused.json()["__type"]) == (400, "AccessDeniedException")
    answered = call(api, "SearchFaces", {"CollectionId": "p", "FaceId": face_id}, key="FLKPLAIN", purpose="case 8")
    assert answered.status_code == 200
    searches = [r for r in audit(api) if r["operation"] == "SearchFaces"]
    assert [(r["outcome"], r["purpose"]) for r in searches] == [("denied", None), ("ok", "case 8")]


def test_key_scopes_follow_the_registry(api: TestClient, analyzer: ScriptedAnalyzer) -> None:
    call(api, "CreateCollection", {"CollectionId": "r"})
    denied = call(api, "IndexFaces", {"CollectionId": "r", "Image": image(analyzer, 80, identities(1, 1)[0][0])},
                  key="FLKREADER")
    assert (denied.status_code, denied.json()["__type"]) == (400, "AccessDeniedException")
    # GetFaceSearch only reads: a read-only key reaches the operation (and learns the job does not exist)
    missing = call(api, "GetFaceSearch", {"JobId": "0" * 32}, key="FLKREADER")
    assert missing.json()["__type"] == "ResourceNotFoundException"
    assert call(api, "ListAuditRecords", {}, key="FLKPLAIN").json()["__type"] == "AccessDeniedException"
