"""The operation registry against botocore's service models: every Rekognition operation is either registered
(and answered by its wire adapter, `facelens.api.wire`) or answered NotImplementedException over HTTP; key scopes come
from the registry's classification."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from facelens import errors, operations, service_model
from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.context import KeyScope
from tests.collections_fakes import make_backend
from tests.service_fixtures import KEY_ID, SECRET, signed

ALL = sorted(service_model.model().operation_names)
OURS = sorted(service_model.admin_model().operation_names)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    backend = make_backend(tmp_path_factory.mktemp("registry"))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, backend) -> TestClient:
    settings = ServerSettings.from_env({}, data_dir=tmp_path_factory.mktemp("api"), warmup=False)
    with TestClient(create_app(settings, backend, keys={KEY_ID: SECRET}, scopes={KEY_ID: KeyScope(admin=True)}),
                    raise_server_exceptions=False) as client:
        yield client


def test_every_registered_operation_exists_in_a_service_model_and_has_its_wire_adapter() -> None:
    for name, entry in operations.OPERATIONS.items():
        model = service_model.admin_model() if entry.facelens else service_model.model()
        assert name in model.operation_names, name
        handler = entry.handler
        assert callable(handler) and re.fullmatch(r"facelens\.api\.wire(_\w+)?", handler.__module__), name
        assert handler.__name__ == re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(), name  # IndexFaces: index_faces
    assert set(OURS) <= set(operations.OPERATIONS)  # FaceLens's own operations are all implemented


@pytest.mark.parametrize("name", [n for n in ALL if n not in operations.OPERATIONS])
def test_every_other_rekognition_operation_is_answered_not_implemented(api: TestClient, name: str) -> None:
    url, headers = signed("http://testserver", name, b"{}")
    response = api.post(url, content=b"{}", headers=headers)
    assert response.status_code == 400
    assert response.json()["__type"] == "NotImplementedException" and name in response.json()["Message"]


def test_scopes_come_from_the_registry() -> None:
    assert {n for n, op in operations.OPERATIONS.items() if op.read_only} == operations.READ_ONLY_OPERATIONS
    # Get* of a video job only reads (its Start* is the identification that is refused to read-only keys)
    assert {"GetFaceSearch", "GetFaceDetection", "SearchFacesByImage", "GetCollectionPolicy"} <= \
        operations.READ_ONLY_OPERATIONS
    assert not {"StartFaceSearch", "StartFaceDetection", "IndexFaces", "PutCollectionPolicy"} & \
        operations.READ_ONLY_OPERATIONS
    assert {"PutCollectionPolicy", "ListAuditRecords"} == operations.ADMIN_OPERATIONS
    read_only = KeyScope(read_only=True)
    read_only.check("GetFaceSearch", None)
    with pytest.raises(errors.AccessDeniedException, match="read-only"):
        read_only.check("StartFaceSearch", "c")
    with pytest.raises(errors.AccessDeniedException, match="admin"):
        KeyScope().check("ListAuditRecords", None)


def test_an_in_process_call_is_validated_once_and_scoped(backend, tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidParameterException, match="Unknown parameter"):
        backend.call("ListCollections", {"MaxResult": 3})  # misspelt: refused in process (ignored on the wire)
    with pytest.raises(errors.InvalidParameterException, match="no operation StartProjectVersion"):
        backend.call("StartProjectVersion", {})
    from facelens.context import RequestContext

    with pytest.raises(errors.AccessDeniedException):
        backend.call("CreateCollection", {"CollectionId": "x"}, RequestContext(scope=KeyScope(read_only=True)))
    assert json.dumps(backend.call("ListCollections"))  # plain data out
