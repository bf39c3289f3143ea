"""`Image.S3Object`: read an object from an S3-compatible endpoint (FACELENS_S3_ENDPOINT_URL) with boto3.

Rekognition answers InvalidS3ObjectException whenever it cannot read the object (no bucket, no key, no access,
no such version), and ImageTooLargeException over its S3 size limit; so does FaceLens. The object's size is
checked from its metadata before its body is read, and the read itself is bounded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from facelens import errors
from facelens.config import S3Settings

log = logging.getLogger("facelens.api")

UNREADABLE = "Unable to get object metadata from S3. Check object key, region and/or access permissions."


class S3Reader:
    """Reads whole objects (images) from one S3-compatible endpoint; thread-safe."""

    def __init__(self, settings: S3Settings, pool_size: int = 10) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    session = boto3.session.Session(
                        aws_access_key_id=self.settings.access_key_id,
                        aws_secret_access_key=self.settings.secret_access_key,
                        region_name=self.settings.region or "us-east-1",
                    )
                    config = Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30,
                                    retries={"max_attempts": 2, "mode": "standard"},
                                    max_pool_connections=self.pool_size)
                    self._client = session.client("s3", endpoint_url=self.settings.endpoint_url, config=config)
        return self._client

    def client(self) -> Any:
        """The endpoint's boto3 S3 client (made on first use; the audit witness writes through it)."""
        return self._s3()

    def _get(self, bucket: str, name: str, version: str | None) -> dict:
        """GetObject; InvalidS3ObjectException when it cannot be read."""
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, str] = {"Bucket": bucket, "Key": name}
        if version:
            request["VersionId"] = version
        try:
            return self._s3().get_object(**request)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            log.info("S3 GetObject failed: %s", code)
            raise errors.InvalidS3ObjectException(UNREADABLE) from None
        except BotoCoreError as exc:  # endpoint unreachable, no credentials: the object cannot be read
            log.warning("S3 GetObject failed: %s", exc.__class__.__name__)
            raise errors.InvalidS3ObjectException(UNREADABLE) from None

    def read(self, bucket: str, name: str, version: str | None, max_bytes: int) -> bytes:
        """The object's bytes; InvalidS3ObjectException if unreadable, ImageTooLargeException over max_bytes."""
        from botocore.exceptions import BotoCoreError

        response = self._get(bucket, name, version)
        body = response["Body"]
        try:
            size = int(response.get("ContentLength") or 0)
            if size > max_bytes:
                raise errors.ImageTooLargeException(
                    f"S3 object is {size:,} bytes; the limit is {max_bytes:,} bytes."
                )
            data = body.read(max_bytes + 1)
        except (BotoCoreError, OSError) as exc:
            log.warning("S3 object read failed: %s", exc.__class__.__name__)
            raise errors.InvalidS3ObjectException(UNREADABLE) from None
        finally:
            body.close()
        if len(data) > max_bytes:
            raise errors.ImageTooLargeException(f"S3 object is over the limit of {max_bytes:,} bytes.")
        return data

    def download(self, bucket: str, name: str, version: str | None, destination: Path, max_bytes: int) -> None:
        """Stream an object (a video) into a file; InvalidS3ObjectException if unreadable, VideoTooLargeException
        over max_bytes (nothing is left behind then)."""
        from botocore.exceptions import BotoCoreError

        response = self._get(bucket, name, version)
        body = response["Body"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        try:
            if int(response.get("ContentLength") or 0) > max_bytes:
                raise errors.VideoTooLargeException(f"S3 object is over the video limit of {max_bytes:,} bytes.")
            size = 0
            with partial.open("wb") as handle:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    size += len(chunk)
                    if size > max_bytes:
                        raise errors.VideoTooLargeException(
                            f"S3 object is over the video limit of {max_bytes:,} bytes.")
                    handle.write(chunk)
            partial.replace(destination)
        except (BotoCoreError, OSError) as exc:
            log.warning("S3 object download failed: %s", exc.__class__.__name__)
            raise errors.InvalidS3ObjectException(UNREADABLE) from None
        finally:
            body.close()
            partial.unlink(missing_ok=True)
