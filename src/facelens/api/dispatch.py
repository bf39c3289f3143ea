"""From a validated request to the backend: `Image.S3Object`s fetched, then the operation run off the event loop.

Operations that take an image run on the inference pool; the others (database and vector-index work only) run
on the I/O pool, so they are not queued behind face analysis. Which members are images comes from the registry
(`facelens.operations`), as does everything else about an operation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from facelens import errors
from facelens.api.workers import WorkerPool
from facelens.context import RequestContext
from facelens.imaging import MAX_S3_IMAGE_BYTES
from facelens.operations import Operation
from facelens.s3 import NOT_CONFIGURED, check_object
from facelens.service import Backend


@dataclass
class Pools:
    """The worker pools every request of one app shares."""

    inference: WorkerPool
    io: WorkerPool

    def shutdown(self) -> None:
        self.inference.shutdown()
        self.io.shutdown()


async def _image(backend: Backend, pools: Pools, image: dict[str, Any], name: str) -> tuple[bytes, bool]:
    """The bytes of an `Image` (exactly one of Bytes, already base64-decoded, and S3Object) and whether they
    came from S3."""
    has_bytes, has_s3 = image.get("Bytes") is not None, image.get("S3Object") is not None
    if has_bytes == has_s3:
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {name} must have exactly one of Bytes and S3Object")
    if has_bytes:
        return image["Bytes"], False
    s3_object = image["S3Object"]
    if not s3_object.get("Bucket") or not s3_object.get("Name"):
        raise errors.InvalidParameterException(f"Request has invalid parameters: {name}.S3Object needs Bucket and Name")
    bucket, key, version = check_object(s3_object, name)
    if not backend.s3.configured:
        raise errors.InvalidS3ObjectException(NOT_CONFIGURED)
    data = await pools.io.run(backend.s3.read, bucket, key, version, MAX_S3_IMAGE_BYTES)
    return data, True


async def run(backend: Backend, pools: Pools, operation: Operation, params: dict[str, Any],
              context: RequestContext) -> dict[str, Any]:
    """Answer one validated request: images resolved to `{"Bytes": ...}` (S3 images up to the S3 limit), then
    `Backend.run` on the pool the operation belongs to."""
    members = [name for name in operation.images if name in params]
    if not members:
        return await pools.io.run(backend.run, operation.name, params, context)
    resolved = await asyncio.gather(*(_image(backend, pools, params[name], name) for name in members))
    request = {**params, **{name: {"Bytes": data} for name, (data, _) in zip(members, resolved, strict=True)}}
    if any(from_s3 for _, from_s3 in resolved):
        context.max_image_bytes = MAX_S3_IMAGE_BYTES
    return await pools.inference.run(backend.run, operation.name, request, context)
