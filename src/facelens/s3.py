"""`Image.S3Object`: read an object from an S3-compatible endpoint (FACELENS_S3_ENDPOINT_URL) with boto3.

Rekognition answers InvalidS3ObjectException whenever it cannot read the object (no bucket, no key, no access,
no such version), and ImageTooLargeException over its S3 size limit; so does FaceLens. The object's size is
checked from its metadata before its body is read, and the read itself is bounded.

Invariants:

* S3 is *configured* only when FACELENS_S3_ENDPOINT_URL is set (to AWS itself, say
  `https://s3.us-east-1.amazonaws.com`, or to MinIO, moto...). Unconfigured, every `S3Object` is
  InvalidS3ObjectException ("S3 is not configured") and no client is ever made, so nothing reaches out.
* Configured, credentials are FACELENS_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY when given, else boto3's chain
  *without* its network providers (the instance-metadata and container-credential addresses): environment,
  shared files, SSO profiles. No call goes anywhere but the configured endpoint.
* `check_object` refuses, as InvalidParameterException and before any call, an object name or version that
  holds a control character (U+0000-U+001F, U+007F) or a lone surrogate, or is over S3's 1,024 UTF-8 bytes,
  and a bucket outside the service model's `[0-9A-Za-z.-_]{3,255}`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facelens import errors
from facelens.config import S3Settings

log = logging.getLogger("facelens.api")

UNREADABLE = "Unable to get object metadata from S3. Check object key, region and/or access permissions."
NOT_CONFIGURED = ("S3 is not configured on this FaceLens (set FACELENS_S3_ENDPOINT_URL); send the image as "
                  "Bytes instead")
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
_BUCKET = re.compile(r"[0-9A-Za-z.\-_]{3,255}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NETWORK_PROVIDERS = ("iam-role", "container-role")  # botocore's names for the metadata and container lookups


def _check_text(value: object, label: str) -> str:
    if not isinstance(value, str) or not value:
        raise errors.InvalidParameterException(f"Request has invalid parameters: {label} must be a non-empty string")
    if (bad := _CONTROL.search(value)) is not None:
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {label} holds the control character U+{ord(bad.group()):04X}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {label} is not valid Unicode (a lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {label} is {size:,} bytes in UTF-8; S3's limit is {MAX_KEY_BYTES:,}")
    return value


def check_object(s3_object: Mapping[str, Any], member: str) -> tuple[str, str, str | None]:
    """(bucket, name, version) of an `S3Object`, or InvalidParameterException naming `member`'s bad part."""
    bucket = s3_object.get("Bucket")
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        raise errors.InvalidParameterException(
            f"Request has invalid parameters: {member}.S3Object.Bucket must match [0-9A-Za-z.-_]{{3,255}}")
    name = _check_text(s3_object.get("Name"), f"{member}.S3Object.Name")
    version = s3_object.get("Version")
    if version is not None:
        _check_text(version, f"{member}.S3Object.Version")
    return bucket, name, version


class S3Reader:
    """Reads whole objects (images) from one S3-compatible endpoint; thread-safe."""

    def __init__(self, settings: S3Settings, pool_size: int = 10) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """Whether an S3 endpoint is configured; if not, nothing is read and no client is made."""
        return self.settings.endpoint_url is not None

    def _s3(self) -> Any:
        if not self.configured:
            raise errors.InvalidS3ObjectException(NOT_CONFIGURED)
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    import botocore.session
                    from botocore.config import Config

                    core = botocore.session.Session()
                    resolver = core.get_component("credential_provider")
                    for provider in _NETWORK_PROVIDERS:
                        resolver.remove(provider)
                    session = boto3.session.Session(
                        aws_access_key_id=self.settings.access_key_id,
                        aws_secret_access_key=self.settings.secret_access_key,
                        region_name=self.settings.region or "us-east-1",
                        botocore_session=core,
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

        check_object({"Bucket": bucket, "Name": name, "Version": version or None}, "S3Object")
        client = self._s3()
        request: dict[str, str] = {"Bucket": bucket, "Key": name}
        if version:
            request["VersionId"] = version
        try:
            return client.get_object(**request)
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
