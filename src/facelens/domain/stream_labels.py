"""Label detection on a stream processor's session (Rekognition's ConnectedHome processors): PERSON and PET.

Each sampled frame goes through the object detector of DetectLabels (`LabelService.labels_of`, COCO classes):
`Person` is PERSON; `Cat`, `Dog` and `Bird` are PET. PACKAGE is never detected: no model here knows packages
(COCO's suitcases and handbags are not parcels), so Create refuses a request naming it and `ALL` means PERSON
and PET. As in Rekognition, the first time a label of interest is seen in a session, the frame and a crop of the
object are written to the processor's `S3Destination` (`KeyPrefix/Name/SessionId/EventId/frame.jpg` and
`cropped.jpg`) and an SNS-shaped `LABEL_DETECTED` notice is POSTed to the webhook; when the session ends (its
`StopSelector.MaxDurationInSeconds`, default 10 s, or a Stop) a `STREAM_PROCESSING_COMPLETE` notice follows and
a summary (`summary.json`) is written beside the frames. `StartSelector.KVSStreamStartSelector.ProducerTimestamp`
(epoch ms) skips frames shown before it. `producerTimestamp` is never sent (see docs/streams.md).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from facelens import errors
from facelens.video.live import LiveFrame

if TYPE_CHECKING:
    from facelens.domain.stream_runner import Runner

log = logging.getLogger("facelens.streams")

KINDS = {"Person": "PERSON", "Cat": "PET", "Dog": "PET", "Bird": "PET"}  # COCO class -> ConnectedHome label
DETECTABLE = ("PERSON", "PET")
DEFAULT_MIN_CONFIDENCE = 50.0  # FaceLens's choice: the model documents none
DEFAULT_MAX_SECONDS = 10  # StopSelector.MaxDurationInSeconds: "The default is 10 seconds"
SUBJECT = "Rekognition Stream Processing Event"


def wanted_labels(labels: list[str]) -> set[str]:
    """The labels a ConnectedHome request asks for, or InvalidParameterException (PACKAGE, or an unknown one)."""
    chosen = set(labels)
    unknown = chosen - {"PERSON", "PET", "PACKAGE", "ALL"}
    if unknown:
        raise errors.InvalidParameterException(f"ConnectedHome labels are PERSON, PET, PACKAGE or ALL, not "
                                               f"{', '.join(sorted(unknown))}")
    if "PACKAGE" in chosen:
        raise errors.InvalidParameterException("PACKAGE is not detected by FaceLens (no model here knows parcels); "
                                               "ask for PERSON and/or PET (ALL means both)")
    return set(DETECTABLE) if "ALL" in chosen else chosen


def _jpeg(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


class LabelDetection:
    """One ConnectedHome session: first sightings written to S3 and noticed, a summary at the end."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.service = runner.service
        record = runner.record
        settings = record.request["Settings"]["ConnectedHome"]
        self.wanted = wanted_labels(settings["Labels"])
        self.min_confidence = float(settings.get("MinConfidence", DEFAULT_MIN_CONFIDENCE))
        destination = record.request["Output"]["S3Destination"]
        self.bucket = destination["Bucket"]
        self.prefix = "/".join(p for p in (destination.get("KeyPrefix", "").strip("/"), record.name,
                                           record.session_id or "") if p)
        selectors = record.selectors
        self.max_seconds = (selectors.get("StopSelector") or {}).get("MaxDurationInSeconds", DEFAULT_MAX_SECONDS)
        self.start_ms = ((selectors.get("StartSelector") or {}).get("KVSStreamStartSelector") or {}).get(
            "ProducerTimestamp")
        self.first: float | None = None  # wall time of the first frame analysed
        self.last: float | None = None
        self.found: list[dict[str, Any]] = []  # the labels noticed, as in their notices
        self.records = 0

    def admit(self) -> None:
        pass  # label detection identifies nobody: no floor, no purpose rule

    def done(self) -> bool:
        return self.first is not None and self.last is not None and self.last - self.first >= self.max_seconds

    def frame(self, frame: LiveFrame) -> None:
        if self.start_ms is not None and frame.wall_time * 1000 < self.start_ms:
            return
        self.first = self.first if self.first is not None else frame.wall_time
        self.last = frame.wall_time
        missing = self.wanted - {label["name"] for label in self.found}
        if not missing:
            return
        result = self.service.labels.labels_of(frame.pixels, min_confidence=self.min_confidence)
        best: dict[str, tuple[float, tuple[float, float, float, float]]] = {}
        for label in result.labels or ():
            kind = KINDS.get(label.name)
            if kind not in missing:
                continue
            for instance in label.instances:
                if kind not in best or instance.confidence > best[kind][0]:
                    best[kind] = (instance.confidence, instance.box)
        for kind, (confidence, box) in sorted(best.items()):
            self._sighting(frame, kind, confidence, box)

    def _sighting(self, frame: LiveFrame, kind: str, confidence: float,
                  box: tuple[float, float, float, float]) -> None:
        """The first `kind` of the session: frame and crop to S3, the LABEL_DETECTED notice."""
        event_id = str(uuid.uuid4())
        height, width = frame.pixels.shape[:2]
        left, top, w, h = box
        crop = frame.pixels[max(0, int(top * height)):max(int(top * height) + 1, int((top + h) * height)),
                            max(0, int(left * width)):max(int(left * width) + 1, int((left + w) * width))]
        uris = {}
        for name, pixels in (("frame", frame.pixels), ("cropped", crop)):
            key = f"{self.prefix}/{event_id}/{name}.jpg"
            self.service.s3.client().put_object(Bucket=self.bucket, Key=key, Body=_jpeg(np.ascontiguousarray(
                pixels)), ContentType="image/jpeg")
            uris[name] = f"s3://{self.bucket}/{key}"
        label = {"id": event_id, "name": kind, "confidence": round(confidence, 3), "frameImageUri": uris["frame"],
                 "croppedImageUri": uris["cropped"],
                 "videoMapping": {"kinesisVideoMapping": {"fragmentNumber": str(round(frame.server_time * 1000)),
                                                          "serverTimestamp": round(frame.server_time * 1000),
                                                          "frameOffsetMillis": round(frame.offset * 1000)}},
                 "boundingBox": {"left": left, "top": top, "height": h, "width": w}}
        self.found.append(label)
        self.records += 1
        self.runner.latencies.append(time.time() - frame.decoded_at)
        self._notify({"eventNamespace": {"type": "LABEL_DETECTED"}, "labels": [label], "eventId": event_id})

    def finish(self) -> None:
        """The STREAM_PROCESSING_COMPLETE notice and the session's summary in S3."""
        processed = round(((self.last or 0) - (self.first or 0)) * 1000)
        summary = {"labels": self.found, "processedVideoDurationMillis": processed,
                   "sessionId": self.runner.record.session_id}
        try:
            self.service.s3.client().put_object(Bucket=self.bucket, Key=f"{self.prefix}/summary.json",
                                                Body=json.dumps(summary).encode(), ContentType="application/json")
        except Exception:  # the notice still goes out
            log.warning("stream %s: the S3 summary could not be written", self.runner.record.name, exc_info=True)
        found = ", ".join(sorted({label["name"] for label in self.found})) or "no labels of interest"
        self._notify({"eventNamespace": {"type": "STREAM_PROCESSING_COMPLETE"},
                      "streamProcessingResults": {"message": f"{found} detected in {processed / 1000:.1f} s"},
                      "eventId": str(uuid.uuid4())}, processed)

    def _notify(self, message: dict[str, Any], processed: int | None = None) -> None:
        """POST the SNS-shaped notice to the webhook (a failure is logged; the session goes on)."""
        record = self.runner.record
        video: dict[str, Any] = {"streamArn": record.request["Input"]["KinesisVideoStream"]["Arn"]}
        if processed is not None:
            video["processedVideoDurationMillis"] = processed
        body = {"inputInformation": {"kinesisVideo": video}, **message, "tags": record.tags,
                "sessionId": record.session_id, "startStreamProcessorRequest": {"Name": record.name,
                                                                                **record.selectors}}
        notice = {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                  "TopicArn": record.request["NotificationChannel"]["SNSTopicArn"], "Subject": SUBJECT,
                  "Message": json.dumps(body), "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        request = urllib.request.Request(self.service.webhook_url or "", data=json.dumps(notice).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except (OSError, ValueError) as exc:
            log.warning("stream %s: webhook %s failed: %s", record.name, self.service.webhook_url, exc)
