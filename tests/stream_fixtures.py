"""Real components of the stream tests: an RTSP camera (GStreamer's RTSP server from Debian's packages, run with
the system Python) serving an H.264 clip rendered here with PyAV, and a reader of Kinesis Data Streams records
(moto's standalone server)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from tests.service_fixtures import REGION, free_port
from tests.video_fixtures import FPS, SIZE, face_crop, write_video

CAMERA_SCRIPT = Path(__file__).with_name("rtsp_camera.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-gi and the GStreamer typelibs are Debian packages (make rtsp)
SECONDS = 12  # the clip's length; SIZE (640x360) and FPS (30) are the video tests'
EILEEN_AT, EILEEN_ON = (40, 60, 200, 220), (2.0, 5.0)  # the indexed person: box, seconds on screen
STRANGER_AT, STRANGER_ON = (420, 100, 580, 260), (6.0, 9.0)  # the cameraman, never indexed


def render_clip(path: Path, analyzer: Any, astronaut: np.ndarray, cameraman: np.ndarray) -> Path:
    """SECONDS of H.264 at SIZE, FPS: Eileen (the astronaut) at EILEEN_AT during EILEEN_ON, the cameraman at
    STRANGER_AT during STRANGER_ON, a grey background otherwise."""
    return render_scenes(path, [(face_crop(analyzer, astronaut), EILEEN_AT, EILEEN_ON),
                                (face_crop(analyzer, cameraman), STRANGER_AT, STRANGER_ON)])


def render_scenes(path: Path, scenes: list[tuple[np.ndarray, tuple[int, int, int, int], tuple[float, float]]],
                  seconds: int = SECONDS) -> Path:
    """`seconds` of H.264 at SIZE, FPS on a grey background, each (image, box x1 y1 x2 y2, (start, stop) s) of
    `scenes` pasted in its box while on. One slice per frame, as most cameras send (PyAV's multi-threaded libx264
    cuts frames into slices, which FFmpeg's RTSP reader decoded only partly here)."""

    def draw(i: int) -> np.ndarray:
        image = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        for picture, (x1, y1, x2, y2), (start, stop) in scenes:
            if start <= i / FPS < stop:
                image[y1:y2, x1:x2] = picture
        return image

    return write_video(path, seconds * FPS, FPS, "libx264", SIZE, draw,
                       options={"x264-params": "slices=1:sliced-threads=0", "g": str(FPS), "bf": "0"})


@dataclass
class Camera:
    """An RTSP camera on a fixed port: `start()` (again after `kill()`), `kill()` (SIGKILL: the camera drops)."""

    clip: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/camera"

    def start(self) -> Camera:
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(CAMERA_SCRIPT), str(self.port), str(self.clip)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("ready"):
            error = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"the RTSP camera did not start (run `make rtsp` for Debian's gstreamer1.0-rtsp, "
                               f"gir1.2-gst-rtsp-server-1.0, python3-gi): {error[-2000:]}")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def kinesis_client(url: str) -> Any:
    return boto3.client("kinesis", endpoint_url=url, region_name=REGION, aws_access_key_id="moto",
                        aws_secret_access_key="moto")


def kinesis_env(url: str) -> dict[str, str]:
    return {"FACELENS_KINESIS_ENDPOINT_URL": url, "FACELENS_KINESIS_ACCESS_KEY_ID": "moto",
            "FACELENS_KINESIS_SECRET_ACCESS_KEY": "moto", "FACELENS_KINESIS_REGION": REGION}


@dataclass
class KinesisReader:
    """Every record of a one-shard stream, read back with GetRecords as a consumer would; each parsed record gets
    `_arrived` (the stream's ApproximateArrivalTimestamp, epoch seconds)."""

    client: Any
    stream: str
    records: list[dict] = field(default_factory=list)
    _iterator: str | None = None

    @classmethod
    def create(cls, client: Any, stream: str) -> KinesisReader:
        client.create_stream(StreamName=stream, ShardCount=1)
        shard = client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard,
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return cls(client, stream, _iterator=iterator)

    @property
    def arn(self) -> str:
        return f"arn:aws:kinesis:{REGION}:123456789012:stream/{self.stream}"

    def poll(self) -> list[dict]:
        while True:
            got = self.client.get_records(ShardIterator=self._iterator, Limit=1000)
            self._iterator = got["NextShardIterator"]
            for record in got["Records"]:
                parsed = json.loads(record["Data"])
                parsed["_arrived"] = record["ApproximateArrivalTimestamp"].timestamp()
                self.records.append(parsed)
            if not got["Records"]:
                return self.records

    def until(self, done: Callable[[list[dict]], bool], timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not done(self.poll()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s; {len(self.records)} records")
            time.sleep(0.3)
        return self.records


def matched(record: dict) -> set[str]:
    """FaceIds a record matched."""
    return {m["Face"]["FaceId"] for face in record["FaceSearchResponse"] for m in face["MatchedFaces"]}


def offset(record: dict) -> float:
    return record["InputInformation"]["KinesisVideo"]["FrameOffsetInSeconds"]


def fragment(record: dict) -> str:
    return record["InputInformation"]["KinesisVideo"]["FragmentNumber"]


def delay(record: dict) -> float:
    """Seconds from the frame's arrival at FaceLens (its fragment's ServerTimestamp + its offset) to the record's
    arrival in Kinesis."""
    video = record["InputInformation"]["KinesisVideo"]
    return record["_arrived"] - (video["ServerTimestamp"] + video["FrameOffsetInSeconds"])
