"""The JSON 1.1 protocol layer: routing, body parsing, validation against botocore's model, encoding."""

from __future__ import annotations

import base64
import json

import pytest

from facelens import errors, service_model
from facelens.api import protocol
from facelens.api.errors import SerializationException, UnknownOperationException, to_wire

JSON11 = "application/x-amz-json-1.1"
IMG = base64.b64encode(b"\xff\xd8\xff").decode()


def op(name: str):
    return protocol.operation_for(f"RekognitionService.{name}", JSON11)


def rejected(name: str, params: dict) -> errors.FaceLensError:
    with pytest.raises(errors.FaceLensError) as info:
        protocol.validated(op(name), params)
    return info.value


def test_routing_reads_operations_from_the_service_model() -> None:
    assert op("DetectFaces").name == "DetectFaces"
    assert protocol.operation_for("RekognitionService.IndexFaces", "application/x-amz-json-1.1; charset=utf-8")
    for target in ("RekognitionService.Nope", "DynamoDB_20120810.DetectFaces", "", None, "DetectFaces"):
        with pytest.raises(UnknownOperationException):
            protocol.operation_for(target, JSON11)
    with pytest.raises(UnknownOperationException, match="Content-Type"):
        protocol.operation_for("RekognitionService.DetectFaces", "text/plain")


@pytest.mark.parametrize("body", [b"{", b"[]", b'"x"', b"null", b'{"a": NaN}', b"\xff\xfe", b"[" * 50_000])
def test_bodies_that_are_not_a_json_object_are_serialization_errors(body: bytes) -> None:
    with pytest.raises(SerializationException):
        protocol.parse_body(body)


def test_empty_body_is_an_empty_request() -> None:
    assert protocol.parse_body(b"") == {}
    assert rejected("DetectFaces", {}).message.endswith('Missing required parameter in input: "Image"')


def test_blobs_are_base64_decoded_and_unknown_members_ignored() -> None:
    params = protocol.validated(op("DetectFaces"), {"Image": {"Bytes": IMG}, "Attributes": ["ALL"], "Extra": 1})
    assert params == {"Image": {"Bytes": b"\xff\xd8\xff"}, "Attributes": ["ALL"]}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"Image": {"Bytes": 5}}, "Invalid type for parameter Image.Bytes"),
        ({"Image": {"Bytes": "not base64!"}}, "Invalid base64 for parameter Image.Bytes"),
        ({"Image": {"Bytes": ""}}, "Invalid length for parameter Image.Bytes, value: <0 bytes>, valid min length: 1"),
        ({"Image": "x"}, "Invalid type for parameter Image"),
        ({"Image": {"Bytes": IMG}, "Attributes": "ALL"}, "Invalid type for parameter Attributes"),
        ({"Image": {"Bytes": IMG}, "Attributes": ["SMILES"]}, "parameter Attributes[0], value: SMILES"),
        ({"Image": {"Bytes": IMG}, "Attributes": [1]}, "Invalid type for parameter Attributes[0]"),
        ({"Image": {"S3Object": {"Bucket": "no/slash", "Name": "k"}}}, "must match pattern: [0-9A-Za-z\\.\\-_]*"),
        ({"Image": {"S3Object": {"Bucket": "ab", "Name": "k"}}}, "valid min length: 3"),
        ({"Image": {"S3Object": {"Bucket": "abc", "Name": "k" * 1025}}}, "valid max length: 1024"),
    ],
)
def test_detect_faces_validation_messages(params: dict, fragment: str) -> None:
    error = rejected("DetectFaces", params)
    assert isinstance(error, errors.InvalidParameterException)
    assert error.message.startswith("Parameter validation failed:")
    assert fragment in error.message


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"SimilarityThreshold": 100.5}, "valid max value: 100"),
        ({"SimilarityThreshold": -1}, "valid min value: 0"),
        ({"SimilarityThreshold": "80"}, "Invalid type for parameter SimilarityThreshold"),
        ({"SimilarityThreshold": True}, "Invalid type for parameter SimilarityThreshold"),
        ({"QualityFilter": "BEST"}, "valid values: NONE, AUTO, LOW, MEDIUM, HIGH"),
    ],
)
def test_compare_faces_validation_messages(extra: dict, fragment: str) -> None:
    error = rejected("CompareFaces", {"SourceImage": {"Bytes": IMG}, "TargetImage": {"Bytes": IMG}, **extra})
    assert isinstance(error, errors.InvalidParameterException)
    assert fragment in error.message


def test_numbers_in_range_pass() -> None:
    params = {"SourceImage": {"Bytes": IMG}, "TargetImage": {"Bytes": IMG}, "SimilarityThreshold": 0,
              "QualityFilter": "HIGH"}
    assert protocol.validated(op("CompareFaces"), params)["SimilarityThreshold"] == 0


def test_oversized_image_bytes_are_image_too_large_and_messages_never_echo_bytes() -> None:
    big = base64.b64encode(b"\xff" * (5 * 1024 * 1024 + 1)).decode()
    error = rejected("DetectFaces", {"Image": {"Bytes": big}})
    assert isinstance(error, errors.ImageTooLargeException)
    assert "5,242,881 bytes" in error.message and len(error.message) < 300
    error = rejected("DetectFaces", {"Image": {"Bytes": "A" * 10_000 + "!"}, "Attributes": ["x" * 10_000]})
    assert len(error.message) < 400


def test_responses_encode_blobs_and_drop_nones() -> None:
    body = protocol.encode_response(op("DetectFaces"), {"FaceDetails": [], "OrientationCorrection": None})
    assert json.loads(body) == {"FaceDetails": []}
    with pytest.raises(ValueError):
        protocol.encode_response(op("DetectFaces"), {"FaceDetails": [{"Confidence": float("nan")}]})


def test_wire_errors_have_aws_shape() -> None:
    status, body = to_wire(errors.InvalidParameterException("bad"), "rid")
    assert status == 400
    assert json.loads(body) == {"__type": "InvalidParameterException", "Code": "InvalidParameterException",
                                "Message": "bad", "Logref": "rid"}
    status, body = to_wire(RuntimeError("secret detail"), "rid")
    assert status == 500 and b"secret detail" not in body
    assert json.loads(body)["__type"] == "InternalServerError"


def test_timestamps_are_epoch_seconds_or_iso_8601_text() -> None:
    from facelens import validation

    operation = service_model.operation("ListAuditRecords")
    for good in (1700000000, 1700000000.5, "2026-11-01T00:00:00Z", "2026-11-01"):
        assert validation.timestamp(protocol.validated(operation, {"Since": good})["Since"]).tzinfo is not None
    for bad in ("¼", "", "yesterday", 1e300):
        with pytest.raises(errors.InvalidParameterException, match="Since"):
            protocol.validated(operation, {"Since": bad})
