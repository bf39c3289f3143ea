"""Faces in stored video: sampled frames batched through the face path (`analysis.find_faces`), and tracked.

`detect_in_video` is the engine of StartFaceDetection: every sampled frame's faces (described with the fields
asked for), in time order, each with the index of its track (the same person across
frames, kept for face search). It knows nothing of jobs or HTTP. The next batch is decoded on a thread of its own
while the models run on this one (`facelens.video.decode.prefetched`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from facelens.analysis import Analyzer, FaceSet, find_faces
from facelens.geometry import relative_box
from facelens.imaging import DecodedImage
from facelens.pipeline import Face
from facelens.video.decode import DEFAULT_INTERVAL_MS, PREFETCH, VideoMetadata, frames, prefetched, probe
from facelens.video.source import VideoSource
from facelens.video.tracker import FaceTracker

BATCH = 8  # frames per detector call
FRAME_FORMAT = "VIDEO"  # DecodedImage.format of a video frame


@dataclass(frozen=True)
class VideoFace:
    """One face of one sampled frame (pixel coordinates of a `width` x `height` frame), with its track."""

    timestamp_ms: int
    track: int
    face: Face
    width: int
    height: int

    @property
    def embedding(self) -> np.ndarray:
        assert self.face.embedding is not None  # every face of a frame is embedded
        return self.face.embedding

    @property
    def box(self) -> dict[str, float]:
        """The face's box as ratios of the frame size."""
        return relative_box(self.face.box, self.width, self.height)


def batches(items: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Consecutive lists of `size` sampled frames (the last shorter)."""
    while batch := list(islice(items, size)):
        yield batch


def detect_in_video(source: VideoSource | str | Path, analyzer: Analyzer, fields: Collection[str],
                    interval_ms: int = DEFAULT_INTERVAL_MS,
                    progress: Callable[[int], None] | None = None,
                    prefetch: int = PREFETCH) -> tuple[VideoMetadata, list[VideoFace]]:
    """Metadata and every face of every sampled frame (tracked); `progress(ms)` after each batch. Up to
    `prefetch` frames are decoded ahead on a decode thread (0: decoded on this thread, between the batches)."""
    metadata = probe(source)
    with prefetched(frames(source, interval_ms), prefetch) as decoded:
        return metadata, _faces(batches(decoded, BATCH), analyzer, fields, progress)


def _faces(batched: Iterator[list[tuple[int, np.ndarray]]], analyzer: Analyzer, fields: Collection[str],
           progress: Callable[[int], None] | None) -> list[VideoFace]:
    tracker = FaceTracker()
    found: list[VideoFace] = []
    for batch in batched:
        images = [DecodedImage(image, FRAME_FORMAT) for _, image in batch]
        # the face path of still images: every face (the 100 largest) described and embedded, no quality filter
        results = find_faces(analyzer, images, fields, embed=None)
        for (timestamp, _), result in zip(batch, results, strict=True):
            assert isinstance(result, FaceSet)  # frames are decoded already: nothing can fail to decode
            faces = result.passed
            if not faces:
                continue
            width, height = result.image.width, result.image.height
            embeddings = np.stack([face.embedding for face in faces])
            tracks = tracker.update(timestamp, np.stack([face.box for face in faces]), embeddings)
            found += [VideoFace(timestamp, track, face, width, height)
                      for face, track in zip(faces, tracks, strict=True)]
        if progress is not None:
            progress(batch[-1][0])
    return found
