"""Collection, face and user operations: resolve `Image`, then run the plain-Python backend off the event loop.

Operations that take an image run on the inference pool; the others (database and vector-index work only)
run on the I/O pool so they are not queued behind face analysis.
"""

from __future__ import annotations

from typing import Any

from facelens import errors
from facelens.accountability.access import RequestContext
from facelens.api.operations.base import Handler, Services, resolve_image


def handler(name: str) -> Handler:
    """The handler of one backend operation."""

    async def run(services: Services, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        if services.collections is None:
            raise errors.InternalServerError("the collection backend is not configured")
        backend = services.collections()
        request = dict(params)
        if "Image" not in request:
            return await services.io.run(backend.dispatch, name, request, None, context)
        image = await resolve_image(services, request["Image"], "Image")
        request["Image"] = image.data
        limit = services.analysis.max_s3_image_bytes if image.from_s3 else None
        return await services.inference.run(backend.dispatch, name, request, limit, context)

    run.__name__ = run.__qualname__ = name
    return run


NAMES = (
    "CreateCollection", "DeleteCollection", "ListCollections", "DescribeCollection", "IndexFaces", "ListFaces",
    "DeleteFaces", "SearchFaces", "SearchFacesByImage", "CreateUser", "DeleteUser", "ListUsers", "AssociateFaces",
    "DisassociateFaces", "SearchUsers", "SearchUsersByImage",
    "PutCollectionPolicy", "GetCollectionPolicy", "ListAuditRecords",  # FaceLens's own (target prefix FaceLens)
    "StartFaceDetection", "GetFaceDetection", "StartFaceSearch", "GetFaceSearch",  # jobs run on their own threads
)
HANDLERS: dict[str, Handler] = {name: handler(name) for name in NAMES}
