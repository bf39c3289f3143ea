"""DetectFaces and CompareFaces: resolve the images, run the analysis on the inference pool."""

from __future__ import annotations

import asyncio
from typing import Any

from facelens.api.operations.base import Services, resolve_image


async def detect_faces(services: Services, params: dict[str, Any]) -> dict[str, Any]:
    """DetectFaces: Image, Attributes."""
    image = await resolve_image(services, params["Image"], "Image")
    limit = services.analysis.max_s3_image_bytes if image.from_s3 else None
    return await services.inference.run(services.analysis.detect_faces, image.data, params.get("Attributes"),
                                        limit)


async def compare_faces(services: Services, params: dict[str, Any]) -> dict[str, Any]:
    """CompareFaces: SourceImage, TargetImage, SimilarityThreshold, QualityFilter."""
    source, target = await asyncio.gather(
        resolve_image(services, params["SourceImage"], "SourceImage"),
        resolve_image(services, params["TargetImage"], "TargetImage"),
    )
    limit = services.analysis.max_s3_image_bytes if source.from_s3 or target.from_s3 else None
    return await services.inference.run(services.analysis.compare_faces, source.data, target.data,
                                        params.get("SimilarityThreshold"), params.get("QualityFilter"), limit)
