"""Domain errors, one class per Rekognition error type (names from botocore's Rekognition service model).

The domain (imaging, pipeline, store, accountability) raises these with a human-readable message; the
protocol layer maps them to AWS's wire shape in one place (`facelens.api.errors`). They live at the package
top rather than under `api/` so that code below the protocol layer never imports the HTTP package.
"""

from __future__ import annotations


class FaceLensError(Exception):
    """Base class: `code` is the AWS error type, `status` the HTTP status AWS answers it with."""

    code = "InternalServerError"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(FaceLensError):
    """A mistake in the request: answered with HTTP 400."""

    status = 400


class AccessDeniedException(ClientError):
    """The caller may not do this."""

    code = "AccessDeniedException"


class ConflictException(ClientError):
    """The request conflicts with the current state."""

    code = "ConflictException"


class IdempotentParameterMismatchException(ClientError):
    """A ClientRequestToken was reused with different parameters."""

    code = "IdempotentParameterMismatchException"


class ImageTooLargeException(ClientError):
    """The image is over the size or pixel limits."""

    code = "ImageTooLargeException"


class InvalidImageFormatException(ClientError):
    """The bytes are empty, truncated, or not a supported image format."""

    code = "InvalidImageFormatException"


class InvalidPaginationTokenException(ClientError):
    """NextToken is not valid."""

    code = "InvalidPaginationTokenException"


class InvalidParameterException(ClientError):
    """A parameter is missing or invalid."""

    code = "InvalidParameterException"


class InvalidS3ObjectException(ClientError):
    """The S3 object cannot be read."""

    code = "InvalidS3ObjectException"


class LimitExceededException(ClientError):
    """A service limit was reached."""

    code = "LimitExceededException"


class ProvisionedThroughputExceededException(ClientError):
    """The service is over its throughput limit."""

    code = "ProvisionedThroughputExceededException"


class ResourceAlreadyExistsException(ClientError):
    """The resource already exists."""

    code = "ResourceAlreadyExistsException"


class ResourceInUseException(ClientError):
    """The resource is in use."""

    code = "ResourceInUseException"


class ResourceNotFoundException(ClientError):
    """The resource does not exist."""

    code = "ResourceNotFoundException"


class ServiceQuotaExceededException(ClientError):
    """A quota was exceeded."""

    code = "ServiceQuotaExceededException"


class ThrottlingException(ClientError):
    """The service is busy: retry later."""

    code = "ThrottlingException"


class VideoTooLargeException(ClientError):
    """The video is too large."""

    code = "VideoTooLargeException"


class InternalServerError(FaceLensError):
    """A fault of the service itself: HTTP 500."""
