"""Face detectors: bundled YuNet, or a user-supplied InsightFace SCRFD model. Both return `Detection`s."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper

from facelens.models import registry
from facelens.models.runtime import fold_dequantize, make_session


@dataclass(frozen=True)
class Detection:
    """One face in pixel coordinates of the image it was found in."""

    box: np.ndarray  # (4,) float32: x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32: eye (image-left), eye (image-right), nose, mouth left, mouth right
    score: float  # 0..1


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices kept by non-maximum suppression (OpenCV's implementation), best first."""
    if len(boxes) == 0:
        return []
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float32)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(np.float32).tolist(), 0.0, iou_threshold)
    return [int(i) for i in np.asarray(keep).reshape(-1)]


def _resize_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most `max_side`; returns the image and the scale applied."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


class YuNetDetector:
    """YuNet (2023mar) on onnxruntime, with dynamic input size and batch.

    The shipped graph fixes its input to 1x3x640x640; its convolutions and upsampling work on any size that
    is a multiple of 32, and only the 12 output `Reshape`s pin the batch to 1. At load we make the input
    dimensions symbolic and let those reshapes copy the batch dimension, so an image is padded to the next
    multiple of 32 instead of being stretched to 640x640, and same-sized images run as one batch.
    """

    name = "yunet-2023mar-int8bq"
    strides = (8, 16, 32)

    def __init__(self, path: Path | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = 1280, config: registry.ModelConfig | None = None) -> None:
        self.path = path or registry.bundled(*registry.YUNET)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.session = make_session(self._dynamic_graph(self.path), config)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    @staticmethod
    def _dynamic_graph(path: Path) -> onnx.ModelProto:
        model = onnx.load(str(path))
        fold_dequantize(model)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        for dim, name in zip(dims, ("batch", None, "height", "width"), strict=True):
            if name:
                dim.ClearField("dim_value")
                dim.dim_param = name
        for output in model.graph.output:
            for dim, name in zip(output.type.tensor_type.shape.dim, ("batch", "anchors", None), strict=True):
                if name:
                    dim.ClearField("dim_value")
                    dim.dim_param = name
        initializers = {init.name: init for init in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type != "Reshape" or node.input[1] not in initializers:
                continue
            shape = numpy_helper.to_array(initializers[node.input[1]])
            if shape.size == 3 and shape[0] == 1 and shape[1] == -1:
                fixed = np.array([0, -1, shape[2]], dtype=shape.dtype)  # 0 = copy the batch dimension
                initializers[node.input[1]].CopyFrom(numpy_helper.from_array(fixed, node.input[1]))
        return model

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in RGB uint8 images; one list per image, best score first."""
        prepared = [_resize_for_detection(image, self.max_side) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, (image, _) in enumerate(prepared):
            height, width = image.shape[:2]
            groups.setdefault((math.ceil(height / 32) * 32, math.ceil(width / 32) * 32), []).append(index)
        results: list[list[Detection]] = [[] for _ in images]
        for (pad_h, pad_w), indices in groups.items():
            batch = np.zeros((len(indices), 3, pad_h, pad_w), dtype=np.float32)
            for slot, index in enumerate(indices):
                image = prepared[index][0]
                batch[slot, :, : image.shape[0], : image.shape[1]] = image[:, :, ::-1].transpose(2, 0, 1)
            outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: batch}),
                               strict=True))
            for slot, index in enumerate(indices):
                results[index] = self._decode(outputs, slot, pad_h, pad_w, prepared[index][1])
        return results

    def _decode(self, outputs: dict[str, np.ndarray], slot: int, pad_h: int, pad_w: int,
                scale: float) -> list[Detection]:
        boxes, landmarks, scores = [], [], []
        for stride in self.strides:
            rows, cols = pad_h // stride, pad_w // stride
            cls = np.clip(outputs[f"cls_{stride}"][slot, :, 0], 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"][slot, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            grid_y, grid_x = np.divmod(keep, cols)
            assert grid_y.max() < rows
            bbox = outputs[f"bbox_{stride}"][slot, keep]
            kps = outputs[f"kps_{stride}"][slot, keep].reshape(-1, 5, 2)
            cx = (grid_x + bbox[:, 0]) * stride
            cy = (grid_y + bbox[:, 1]) * stride
            w = np.exp(bbox[:, 2]) * stride
            h = np.exp(bbox[:, 3]) * stride
            boxes.append(np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
            points = np.empty_like(kps)
            points[:, :, 0] = (kps[:, :, 0] + grid_x[:, None]) * stride
            points[:, :, 1] = (kps[:, :, 1] + grid_y[:, None]) * stride
            landmarks.append(points)
            scores.append(score[keep])
        if not boxes:
            return []
        return _finish(np.concatenate(boxes), np.concatenate(landmarks), np.concatenate(scores),
                       self.nms_threshold, scale)


def _finish(boxes: np.ndarray, landmarks: np.ndarray, scores: np.ndarray, nms_threshold: float,
            scale: float) -> list[Detection]:
    keep = nms(boxes, scores, nms_threshold)
    return [
        Detection(box=(boxes[i] / scale).astype(np.float32), landmarks=(landmarks[i] / scale).astype(np.float32),
                  score=float(scores[i]))
        for i in keep
    ]


class ScrfdDetector:
    """An InsightFace-format SCRFD detector (`det_*.onnx`): scores, distance boxes and keypoints per stride."""

    def __init__(self, path: Path, score_threshold: float = 0.5, nms_threshold: float = 0.4,
                 input_size: int = 640, config: registry.ModelConfig | None = None) -> None:
        self.path = path
        self.name = f"scrfd-{path.stem}"
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.session = make_session(path, config)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = model_input.shape[2:]
        self.input_hw = (fixed[0], fixed[1]) if all(isinstance(d, int) for d in fixed) else (input_size, input_size)
        self.output_names = [o.name for o in self.session.get_outputs()]
        count = len(self.output_names)
        if count not in (6, 9, 10, 15):
            raise ValueError(f"{path} has {count} outputs; an SCRFD model has 6, 9, 10 or 15")
        self.fmc = 3 if count in (6, 9) else 5
        self.strides = (8, 16, 32) if self.fmc == 3 else (8, 16, 32, 64, 128)
        self.has_kps = count in (9, 15)
        if not self.has_kps:
            raise ValueError(f"{path} predicts no keypoints; FaceLens needs 5-point landmarks to align faces")
        self.anchors_per_cell = 2

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        in_h, in_w = self.input_hw
        scale = min(in_h / image.shape[0], in_w / image.shape[1])
        resized = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))))
        canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outputs = self.session.run(self.output_names, {self.input_name: blob})
        boxes, landmarks, scores = [], [], []
        for level, stride in enumerate(self.strides):
            score = outputs[level].reshape(-1)
            distance = outputs[level + self.fmc].reshape(-1, 4) * stride
            kps = outputs[level + 2 * self.fmc].reshape(-1, 10) * stride
            rows, cols = in_h // stride, in_w // stride
            centers = np.stack(np.mgrid[:rows, :cols][::-1], axis=-1).astype(np.float32).reshape(-1, 2) * stride
            centers = np.repeat(centers, self.anchors_per_cell, axis=0)[: len(score)]
            keep = np.nonzero(score >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            c, d = centers[keep], distance[keep]
            boxes.append(np.column_stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]]))
            landmarks.append(kps[keep].reshape(-1, 5, 2) + c[:, None, :])
            scores.append(score[keep])
        if not boxes:
            return []
        return _finish(np.concatenate(boxes), np.concatenate(landmarks), np.concatenate(scores),
                       self.nms_threshold, scale)


def load_detector(config: registry.ModelConfig) -> YuNetDetector | ScrfdDetector:
    """The configured detector: a user SCRFD model when one is named, else the bundled YuNet; its session runs
    with the configuration's providers and threads."""
    return ScrfdDetector(config.detector, config=config) if config.detector else YuNetDetector(config=config)
