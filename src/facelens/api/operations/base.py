"""What operation handlers get: the analysis backend, the worker pools, the S3 reader; and `Image` resolution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from facelens import errors
from facelens.accountability.access import RequestContext
from facelens.api.s3 import S3Reader
from facelens.api.workers import WorkerPool


class FaceAnalysis(Protocol):
    """The synchronous, CPU-heavy face functions the service calls (`facelens.analysis` by default)."""

    max_s3_image_bytes: int

    def warmup(self) -> None: ...

    def detect_faces(self, image: bytes, attributes: Sequence[str] | None, max_bytes: int | None) -> dict: ...

    def compare_faces(self, source: bytes, target: bytes, similarity_threshold: float | None,
                      quality_filter: str | None, max_bytes: int | None) -> dict: ...

    def model_version(self) -> str: ...


class AnalysisFunctions:
    """`facelens.analysis` behind the FaceAnalysis interface (imported lazily: the API imports no model code)."""

    def __init__(self) -> None:
        from facelens import imaging

        self.max_s3_image_bytes = imaging.MAX_S3_IMAGE_BYTES

    def warmup(self) -> None:
        from facelens.pipeline import default_analyzer

        default_analyzer().warmup()

    def detect_faces(self, image: bytes, attributes: Sequence[str] | None, max_bytes: int | None) -> dict:
        from facelens import analysis

        return analysis.detect_faces(image, attributes=list(attributes) if attributes else None, max_bytes=max_bytes)

    def compare_faces(self, source: bytes, target: bytes, similarity_threshold: float | None,
                      quality_filter: str | None, max_bytes: int | None) -> dict:
        from facelens import analysis

        return analysis.compare_faces(source, target, similarity_threshold=similarity_threshold,
                                      quality_filter=quality_filter, max_bytes=max_bytes)

    def model_version(self) -> str:
        from facelens.pipeline import default_analyzer

        return default_analyzer().model_version


@dataclass
class Services:
    """Shared by every request of one app."""

    analysis: FaceAnalysis
    inference: WorkerPool
    io: WorkerPool
    s3: S3Reader
    collections: Callable[[], Any] | None = None  # the collection backend, opened on first use


Handler = Callable[[Services, dict[str, Any], RequestContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ImageData:
    """An `Image` parameter resolved to its bytes."""

    data: bytes
    from_s3: bool


async def resolve_image(services: Services, image: Mapping[str, Any], name: str) -> ImageData:
    """The bytes of an `Image`: exactly one of Bytes (already base64-decoded) and S3Object."""
    has_bytes, has_s3 = image.get("Bytes") is not None, image.get("S3Object") is not None
    if has_bytes == has_s3:
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {name} must have exactly one of Bytes and S3Object"
        )
    if has_bytes:
        return ImageData(image["Bytes"], from_s3=False)
    s3_object = image["S3Object"]
    if not s3_object.get("Bucket") or not s3_object.get("Name"):
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {name}.S3Object needs Bucket and Name"
        )
    data = await services.io.run(services.s3.read, s3_object["Bucket"], s3_object["Name"],
                                 s3_object.get("Version"), services.analysis.max_s3_image_bytes)
    return ImageData(data, from_s3=True)
