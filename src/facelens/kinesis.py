"""Kinesis Data Streams output of stream processors: records written with boto3 to `FACELENS_KINESIS_ENDPOINT_URL`
(AWS Kinesis, or any service that speaks its API: moto's server in the tests, LocalStack, ...).

A stream processor's `Output.KinesisDataStream.Arn` (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`) names the
stream; records are put by its name (PutRecord), so services that predate the StreamARN parameter work too.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from facelens.stream_settings import StreamSettings


class KinesisError(Exception):
    """A record could not be written; the message says why."""


def stream_name(arn: str) -> str | None:
    """NAME of `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`, or None when the ARN names no data stream."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "kinesis" or not parts[5].startswith("stream/"):
        return None
    return parts[5].removeprefix("stream/").split("/")[0] or None


class KinesisWriter:
    """PutRecord to the configured endpoint (one boto3 client, made on first use, shared by every processor)."""

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.settings.kinesis_endpoint_url is not None

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                s = self.settings
                self._client = boto3.client(
                    "kinesis", endpoint_url=s.kinesis_endpoint_url, region_name=s.kinesis_region or "us-east-1",
                    aws_access_key_id=s.kinesis_access_key_id, aws_secret_access_key=s.kinesis_secret_access_key,
                    config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                                  read_timeout=10))
            return self._client

    def put(self, arn: str, data: bytes, partition_key: str) -> None:
        """Write one record to the stream `arn` names; KinesisError when it cannot be."""
        name = stream_name(arn)
        if name is None:
            raise KinesisError(f"{arn} is not a Kinesis data stream ARN")
        try:
            self.client().put_record(StreamName=name, Data=data, PartitionKey=partition_key)
        except (BotoCoreError, ClientError) as exc:
            raise KinesisError(f"writing to Kinesis stream {name} failed: {exc}") from None
