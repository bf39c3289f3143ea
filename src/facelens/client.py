"""boto3 clients for a FaceLens service: Rekognition's, and FaceLens's own operations (policies, audit)."""

from __future__ import annotations

from typing import Any

import boto3

from facelens import service_model

PURPOSE_HEADER = "x-facelens-purpose"


def admin_client(endpoint_url: str, **kwargs: Any) -> Any:
    """A boto3 client of FaceLens's own operations (`PutCollectionPolicy`, `GetCollectionPolicy`,
    `ListAuditRecords`); keyword arguments as for `boto3.client` (credentials, region, config)."""
    session = boto3.Session(botocore_session=service_model.botocore_session())
    return session.client(service_model.ADMIN_SERVICE, endpoint_url=endpoint_url, **kwargs)


def with_purpose(client: Any, purpose: str) -> Any:
    """Send `x-facelens-purpose: <purpose>` (a case or ticket reference) with every request of `client`."""

    def add(request: Any, **_: Any) -> None:
        request.headers[PURPOSE_HEADER] = purpose

    client.meta.events.register("before-sign.*.*", add)
    return client
