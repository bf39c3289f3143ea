"""DetectFaces and CompareFaces: resolve the images, run the analysis on the inference pool."""

from __future__ import annotations

import asyncio
from typing import Any

from facelens.accountability.access import RequestContext, acting_as
from facelens.api.operations.base import Services, resolve_image


async def detect_faces(services: Services, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """DetectFaces: Image, Attributes."""
    image = await resolve_image(services, params["Image"], "Image")
    limit = services.analysis.max_s3_image_bytes if image.from_s3 else None
    return await services.inference.run(services.analysis.detect_faces, image.data, params.get("Attributes"),
                                        limit)


async def compare_faces(services: Services, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    """CompareFaces: SourceImage, TargetImage, SimilarityThreshold (raised to the server's compare floor),
    QualityFilter; audited."""
    source, target = await asyncio.gather(
        resolve_image(services, params["SourceImage"], "SourceImage"),
        resolve_image(services, params["TargetImage"], "TargetImage"),
    )
    limit = services.analysis.max_s3_image_bytes if source.from_s3 or target.from_s3 else None
    analysis = services.analysis

    def compare(threshold: float) -> dict[str, Any]:
        return analysis.compare_faces(source.data, target.data, threshold, params.get("QualityFilter"), limit)

    def audited() -> dict[str, Any]:
        if services.collections is None:  # no audit log configured (in-process tests of the protocol only)
            return compare(params.get("SimilarityThreshold"))
        backend = services.collections()
        with acting_as(context):
            return backend.compare_faces(params.get("SimilarityThreshold"), compare, analysis.model_version())

    return await services.inference.run(audited)
