"""Face tracks across sampled frames: the same person keeps one `Index`, as in Rekognition's `Persons[].Index`.

Each frame's detections are matched to live tracks greedily, best pair first, by box overlap (IoU) when the
track was seen recently, and by embedding (cosine of the face with the track's mean embedding) at any time, so a
person who leaves the picture and comes back gets their old index. A detection matching no track starts a new
one. Plain numpy: boxes are (x1, y1, x2, y2) in pixels, embeddings L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IOU_MIN = 0.3  # boxes of one face in consecutive samples (200 ms apart) overlap at least this much
MAX_GAP_MS = 1000  # box overlap counts only for tracks seen this recently
COSINE_MIN = 0.56  # re-identification by embedding: SFace cosine for Similarity ~80 (one false match in 1e6)


@dataclass
class Track:
    index: int
    box: np.ndarray
    last_ms: int
    embedding_sum: np.ndarray | None = None
    detections: int = 0
    first_ms: int = 0

    @property
    def embedding(self) -> np.ndarray | None:
        if self.embedding_sum is None:
            return None
        norm = float(np.linalg.norm(self.embedding_sum))
        return self.embedding_sum / norm if norm > 0 else None


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (n, 4) and (m, 4)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class FaceTracker:
    """Assigns a stable index to each face detection of successive frames."""

    iou_min: float = IOU_MIN
    max_gap_ms: int = MAX_GAP_MS
    cosine_min: float = COSINE_MIN
    tracks: list[Track] = field(default_factory=list)

    def update(self, timestamp_ms: int, boxes: np.ndarray, embeddings: np.ndarray | None = None) -> list[int]:
        """Track indices for this frame's detections, in their order."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return []
        scores = np.zeros((len(boxes), len(self.tracks)))
        if self.tracks:
            recent = np.array([timestamp_ms - t.last_ms <= self.max_gap_ms for t in self.tracks])
            overlap = iou(boxes, np.stack([t.box for t in self.tracks]))
            scores = np.where((overlap >= self.iou_min) & recent[None, :], 1.0 + overlap, 0.0)
            if embeddings is not None:
                for j, track in enumerate(self.tracks):
                    if track.embedding is not None:
                        cosine = np.asarray(embeddings, np.float64) @ track.embedding
                        # a confident identity match counts even without overlap; two people never share a track
                        scores[:, j] = np.where(cosine >= self.cosine_min, np.maximum(scores[:, j], 1.0 + cosine),
                                                np.where(cosine < self.cosine_min - 0.25, 0.0, scores[:, j]))
        assigned = [-1] * len(boxes)
        taken: set[int] = set()
        for flat in np.argsort(-scores, axis=None):
            i, j = divmod(int(flat), max(len(self.tracks), 1))
            if not self.tracks or scores[i, j] <= 0:
                break
            if assigned[i] >= 0 or j in taken:
                continue
            assigned[i] = j
            taken.add(j)
        indices = []
        for i, j in enumerate(assigned):
            if j < 0:
                track = Track(index=len(self.tracks), box=boxes[i], last_ms=timestamp_ms, first_ms=timestamp_ms)
                self.tracks.append(track)
            else:
                track = self.tracks[j]
            track.box, track.last_ms = boxes[i], timestamp_ms
            track.detections += 1
            if embeddings is not None:
                vector = np.asarray(embeddings[i], np.float64)
                track.embedding_sum = vector.copy() if track.embedding_sum is None else track.embedding_sum + vector
            indices.append(track.index)
        return indices
