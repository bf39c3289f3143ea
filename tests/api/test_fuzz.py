"""Property-based: random and mutated bodies and headers against every implemented operation, in process with
the real face models and S3 on moto. No response is a 5xx; every error is AWS JSON that botocore parses; every
success parses under the operation's output shape."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from botocore.model import Shape
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.testclient import TestClient

from facelens import service_model
from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.context import KeyScope
from facelens.operations import OPERATIONS
from facelens.service import build
from tests.service_fixtures import BUCKET, KEY_ID, SECRET, S3Server, moto_s3, s3_env, signed  # noqa: F401

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FACELENS_FUZZ_EXAMPLES", "120"))
URL = "http://testserver"


@pytest.fixture(scope="module")
def images(astronaut_jpeg: bytes, cameraman: np.ndarray) -> list[bytes]:
    png = io.BytesIO()
    Image.fromarray(cameraman[::2, ::2]).save(png, format="PNG")
    return [astronaut_jpeg, png.getvalue()]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, moto_s3: S3Server, images: list[bytes]) -> Iterator[TestClient]:  # noqa: F811
    s3 = moto_s3.client()
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="fuzz.jpg", Body=images[0])
    s3.put_object(Bucket=BUCKET, Key="junk.jpg", Body=b"not an image")
    config = ServerSettings.from_env(s3_env(moto_s3), data_dir=tmp_path_factory.mktemp("fuzz"), workers=2)
    app = create_app(config, build(config), keys={KEY_ID: SECRET}, scopes={KEY_ID: KeyScope(admin=True)})
    with TestClient(app, raise_server_exceptions=False) as client:
        def call(operation: str, params: dict) -> dict:
            body = json.dumps(params).encode()
            url, headers = signed(URL, operation, body)
            response = client.post(url, content=body, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()

        call("CreateCollection", {"CollectionId": "fuzz"})
        image = {"Bytes": base64.b64encode(images[0]).decode()}
        indexed = call("IndexFaces", {"CollectionId": "fuzz", "Image": image})
        SEEDED["face"] = indexed["FaceRecords"][0]["Face"]["FaceId"]
        call("CreateUser", {"CollectionId": "fuzz", "UserId": "u1"})
        yield client


# -- strategies
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def image_bytes(draw: st.DrawFn, images: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(images)))
    how = draw(st.sampled_from(["same", "truncate", "flip", "prefix", "random", "empty"]))
    if how == "truncate":
        del data[draw(st.integers(0, len(data))):]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "prefix":
        data[:0] = draw(st.binary(max_size=16))
    elif how == "random":
        data = bytearray(draw(st.binary(max_size=256)))
    elif how == "empty":
        data = bytearray()
    return bytes(data)


@st.composite
def image_param(draw: st.DrawFn, images: list[bytes]) -> object:
    kind = draw(st.sampled_from(["bytes", "bytes", "bytes", "s3", "both", "junk"]))
    encoded = base64.b64encode(draw(image_bytes(images))).decode()
    s3 = {"Bucket": draw(st.sampled_from([BUCKET, "missing-bucket", "b", "bad/name"])),
          "Name": draw(st.sampled_from(["fuzz.jpg", "junk.jpg", "missing.jpg", ""]))}
    if draw(st.booleans()):
        s3["Version"] = draw(st.text(max_size=8))
    return {"bytes": {"Bytes": encoded}, "s3": {"S3Object": s3}, "both": {"Bytes": encoded, "S3Object": s3},
            "junk": draw(json_values)}[kind]


SEEDED = {}  # FaceId of the face the fixture indexed into the "fuzz" collection


def named(shape_name: str) -> st.SearchStrategy | None:
    """Values that reach past validation for identifiers: the seeded collection, face and user, or junk."""
    junk = st.text(max_size=12)
    return {
        "CollectionId": st.sampled_from(["fuzz", "fuzz", "fuzz-2", "missing", "", "bad name"]) | junk,
        "FaceId": st.sampled_from([SEEDED.get("face", ""), "3f1e2b1c-0000-4000-8000-000000000000", "x"]) | junk,
        "UserId": st.sampled_from(["u1", "u2", "missing", ""]) | junk,
        "ClientRequestToken": st.sampled_from(["t1", "t2", "t" * 65]) | junk,
        "ExternalImageId": st.sampled_from(["e1", "bad id", ""]) | junk,
        "PaginationToken": st.sampled_from(["", "x" * 300]) | junk,
    }.get(shape_name)


def from_shape(shape: Shape, images: list[bytes]) -> st.SearchStrategy:
    """Requests shaped like the service model's input: mostly well-typed, sometimes out of range."""
    if shape.name == "Image":
        return image_param(images)
    special = named(shape.name)
    if special is not None:
        return special
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        members = {name: from_shape(member, images) for name, member in shape.members.items()}
        required = set(shape.required_members)
        return st.fixed_dictionaries({k: v for k, v in members.items() if k in required},
                                     optional={k: v for k, v in members.items() if k not in required})
    if kind == "list":
        return st.lists(from_shape(shape.member, images), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
    if kind == "string":
        return st.sampled_from([*shape.enum, "bogus"]) if shape.enum else st.text(max_size=20)
    if kind in ("integer", "long"):
        return st.integers(int(meta.get("min", -5)) - 2, int(meta.get("max", 5000)) + 2)
    if kind in ("float", "double"):
        return st.floats(-10, 110, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
    return json_values


@st.composite
def request_params(draw: st.DrawFn, operation: str, images: list[bytes]) -> dict:
    if operation not in ("DetectFaces", "CompareFaces"):
        params = draw(from_shape(service_model.operation(operation).input_shape, images))
    elif operation == "DetectFaces":
        params: dict = {"Image": draw(image_param(images))}
        if draw(st.booleans()):
            names = st.sampled_from(["DEFAULT", "ALL", "AGE_RANGE", "GENDER", "SMILE", "EMOTIONS", "nope", ""])
            params["Attributes"] = draw(st.lists(names, max_size=4))
    else:
        params = {"SourceImage": draw(image_param(images)), "TargetImage": draw(image_param(images))}
        if draw(st.booleans()):
            params["SimilarityThreshold"] = draw(st.floats(-10, 110) | st.integers(-5, 105))
        if draw(st.booleans()):
            params["QualityFilter"] = draw(st.sampled_from(["NONE", "AUTO", "LOW", "MEDIUM", "HIGH", "best"]))
    for _ in range(draw(st.integers(0, 2))):  # structural mutations
        key = draw(st.sampled_from([*params, "Unknown"]))
        if draw(st.booleans()):
            params.pop(key, None)
        else:
            params[key] = draw(json_values)
    return params


@st.composite
def body_bytes(draw: st.DrawFn, operation: str, images: list[bytes]) -> bytes:
    how = draw(st.sampled_from(["json", "json", "json", "bytes", "mutated", "value"]))
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "value":
        return json.dumps(draw(json_values)).encode()
    body = json.dumps(draw(request_params(operation, images))).encode()
    if how == "mutated" and body:
        position = draw(st.integers(0, len(body) - 1))
        body = body[:position] + draw(st.binary(min_size=0, max_size=4)) + body[position + 1:]
    return body


@st.composite
def header_edits(draw: st.DrawFn) -> tuple[str, dict[str, str | None]]:
    """(when: 'before' signing, 'after' signing, or 'none'; edits: header -> new value or None to drop)."""
    when = draw(st.sampled_from(["none", "none", "before", "after"]))
    names = st.sampled_from(["Content-Type", "X-Amz-Target", "X-Amz-Date", "Authorization", "X-Extra"])
    values = st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
    return when, draw(st.dictionaries(names, values, max_size=2))


def check(api: TestClient, operation: str, body: bytes, edits: tuple[str, dict[str, str | None]]) -> None:
    when, changes = edits
    extra = {k: v for k, v in changes.items() if v is not None} if when == "before" else {}
    url, headers = signed(URL, operation, body, headers=extra)
    if when == "after":
        for name, value in changes.items():
            headers.pop(name, None)
            if value is not None:
                headers[name] = value
    response = api.post(url, content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.headers.get("x-amzn-requestid")
    shape = service_model.operation(operation).output_shape
    parsed = create_parser("json").parse(
        {"status_code": response.status_code, "headers": dict(response.headers), "body": response.content}, shape
    )
    if response.status_code == 200:
        assert "Error" not in parsed
        json.loads(response.content)
    else:
        error = response.json()
        assert set(error) >= {"__type", "Code", "Message"} and all(isinstance(error[k], str) for k in error)
        assert parsed["Error"]["Code"] == error["__type"] and parsed["Error"]["Message"] == error["Message"]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_random_requests_never_fault(api: TestClient, images: list[bytes], operation: str, tmp_path: Path) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=body_bytes(operation, images), edits=header_edits())
    def run(body: bytes, edits: tuple[str, dict[str, str | None]]) -> None:
        check(api, operation, body, edits)

    run()
    assert api.get("/health").status_code == 200
