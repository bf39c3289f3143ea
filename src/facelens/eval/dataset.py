"""Face data sets laid out as `<root>/<identity>/<image>` (LFW and any folder like it), and their embeddings.

Embeddings come from the service's own face path (`facelens.analysis.find_faces`), so an evaluation measures
the embeddings the service stores and searches: same decoding, same (largest) face, same alignment and model.

LFW (`../shared/data/lfw`) adds `pairs.txt` (the standard 10-fold protocol) and per-image gender labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facelens.config import EvalSettings
from facelens.imaging import IMAGE_SUFFIXES, MAX_S3_IMAGE_BYTES

if TYPE_CHECKING:
    from facelens.pipeline import FaceAnalyzer

def lfw_root() -> Path:
    """LFW's location: `FACELENS_LFW` or `../shared/data/lfw` beside the checkout (`facelens.config`)."""
    return EvalSettings.from_env().lfw


@dataclass(frozen=True)
class Dataset:
    """Images and their identities."""

    root: Path
    paths: list[Path]
    identities: np.ndarray  # int label per image
    names: list[str]  # identity name per label

    @classmethod
    def from_folder(cls, root: str | Path) -> Dataset:
        root = Path(root)
        images = root / "lfw-deepfunneled" if (root / "lfw-deepfunneled").is_dir() else root
        paths, labels, names = [], [], []
        for label, folder in enumerate(sorted(p for p in images.iterdir() if p.is_dir())):
            names.append(folder.name)
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(path)
                    labels.append(label)
        if not paths:
            raise FileNotFoundError(f"no <identity>/<image> files under {images}")
        return cls(root=root, paths=paths, identities=np.asarray(labels), names=names)

    def index_of(self) -> dict[str, int]:
        """Image file stem (e.g. `Aaron_Eckhart_0001`) -> position."""
        return {path.stem: i for i, path in enumerate(self.paths)}

    def fingerprint(self) -> str:
        digest = hashlib.sha256("\n".join(str(p.relative_to(self.root)) for p in self.paths).encode())
        return digest.hexdigest()[:12]


def lfw_pairs(root: Path, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`pairs.txt` as (first image index, second image index, same person) arrays plus fold numbers."""
    lines = (root / "pairs.txt").read_text().split("\n")
    folds, per_fold = (int(v) for v in lines[0].split())
    first, second, same = [], [], []
    for line in lines[1 : 1 + folds * 2 * per_fold]:
        parts = line.split("\t")
        if len(parts) == 3:
            a, b = f"{parts[0]}_{int(parts[1]):04d}", f"{parts[0]}_{int(parts[2]):04d}"
        else:
            a, b = f"{parts[0]}_{int(parts[1]):04d}", f"{parts[2]}_{int(parts[3]):04d}"
        first.append(index[a])
        second.append(index[b])
        same.append(len(parts) == 3)
    fold = np.repeat(np.arange(folds), 2 * per_fold)
    return np.stack([first, second], axis=1), np.asarray(same), fold


def lfw_genders(root: Path, index: dict[str, int]) -> np.ndarray:
    """Per-image gender label: 'F', 'M', or '' when unlabelled or listed in both files."""
    labels = np.full(len(index), "", dtype="<U1")
    for code, name in (("F", "lfw_female_names.txt"), ("M", "lfw_male_names.txt")):
        for line in (root / "annotations" / name).read_text().split():
            stem = Path(line.strip()).stem
            if stem in index:
                position = index[stem]
                labels[position] = "" if labels[position] not in ("", code) else code
    return labels


# Bump when the way an image becomes an embedding changes, so that no cache made by another path is reused
# (v1, unversioned `embeddings-*.npz`: the central face, cv2 decoding, plain and mirrored crops).
FACE_PATH_VERSION = "service-v2"
EVAL_FACE_PATH = ("facelens.analysis.find_faces, as SearchFacesByImage and IndexFaces run it: the largest face "
                  "of each image, QualityFilter NONE, embedded by the service's analyzer")


@dataclass
class Embeddings:
    """Per image: the embedding of its largest face exactly as the service computes it, that face's box and
    detector confidence; zeros (vectors, boxes, confidence) and `found` False where no face was found."""

    vectors: np.ndarray  # (n, d) float32 unit vectors
    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2 pixels of the upright image
    found: np.ndarray  # (n,) bool
    confidence: np.ndarray  # (n,) float32, Face.confidence (0..100)


def _batches(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def cache_key(dataset: Dataset, analyzer: FaceAnalyzer) -> str:
    """What an embedding cache depends on: the face path, the recognizer (+ augmentation), detector and files."""
    key = f"{FACE_PATH_VERSION}-{analyzer.model_version}-{analyzer.detector.name}-{dataset.fingerprint()}"
    return key.replace("/", "_")


def embed_dataset(dataset: Dataset, analyzer: FaceAnalyzer, cache_dir: Path | None = None,
                  batch: int = 32, progress: bool = True) -> Embeddings:
    """Embed every image's largest face through the service's own face path (`analysis.find_faces`), the file's
    bytes in as a client would send them; cached on disk under `cache_key`. Changes no model state."""
    from facelens.analysis import FaceSet, find_faces

    cache_dir = cache_dir or EvalSettings.from_env().cache_dir
    cached = cache_dir / f"embeddings-{cache_key(dataset, analyzer)}.npz"
    if cached.is_file():
        with np.load(cached) as data:
            return Embeddings(data["vectors"], data["boxes"], data["found"], data["confidence"])
    count = len(dataset.paths)
    vectors: np.ndarray | None = None
    boxes = np.zeros((count, 4), dtype=np.float32)
    found = np.zeros(count, dtype=bool)
    confidence = np.zeros(count, dtype=np.float32)
    try:
        from tqdm import tqdm

        bar = tqdm(total=count, disable=not progress, unit="img")
    except ImportError:  # pragma: no cover
        bar = None
    done = 0
    with ThreadPoolExecutor(2) as pool:
        for paths in _batches(dataset.paths, batch):
            blobs = list(pool.map(Path.read_bytes, paths))
            results = find_faces(analyzer, blobs, None, limit=1, max_bytes=MAX_S3_IMAGE_BYTES, embed=1)
            for offset, result in enumerate(results):
                if not isinstance(result, FaceSet) or not result.passed:
                    continue  # undecodable or no face: left out, as the service would answer no face
                face = result.passed[0]
                if vectors is None:
                    vectors = np.zeros((count, len(face.embedding)), dtype=np.float32)
                vectors[done + offset] = face.embedding
                boxes[done + offset] = face.box
                confidence[done + offset] = face.confidence
                found[done + offset] = True
            done += len(paths)
            if bar is not None:
                bar.update(len(paths))
    if bar is not None:
        bar.close()
    if vectors is None:
        vectors = np.zeros((count, analyzer.embedder.dimension), dtype=np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=vectors, boxes=boxes, found=found, confidence=confidence)
    return Embeddings(vectors, boxes, found, confidence)


@dataclass(frozen=True)
class Embedded:
    """A data set embedded through the service's face path: what every evaluation starts from."""

    dataset: Dataset
    analyzer: FaceAnalyzer
    embeddings: Embeddings

    @property
    def vectors(self) -> np.ndarray:
        """Unit embeddings, bit for bit those the service stores for these images."""
        return self.embeddings.vectors


def embed_with_pipeline(root: Path, analyzer: FaceAnalyzer | None = None) -> Embedded:
    """Load `<root>/<identity>/<image>` and embed it with `analyzer` (default: the service's, `default_analyzer`),
    cached."""
    from facelens.pipeline import default_analyzer

    dataset = Dataset.from_folder(root)
    analyzer = analyzer or default_analyzer()
    return Embedded(dataset, analyzer, embed_dataset(dataset, analyzer))


def embed_aligned(dataset: Dataset, analyzer: FaceAnalyzer, cache_dir: Path | None = None,
                  batch: int = 64) -> Embeddings:
    """Embed a data set that ships aligned 112x112 face crops (another aligner's template) without detecting
    again: each image is the recognizer's input as it is (resized to 112x112 if it is not). Cached."""
    from PIL import Image

    cache_dir = cache_dir or EvalSettings.from_env().cache_dir
    cached = cache_dir / f"embeddings-aligned-{cache_key(dataset, analyzer)}.npz"
    if cached.is_file():
        with np.load(cached) as data:
            return Embeddings(data["vectors"], data["boxes"], data["found"], data["confidence"])
    chunks = []
    for paths in _batches(dataset.paths, batch):
        crops = []
        for path in paths:
            with Image.open(path) as image:
                crops.append(np.asarray(image.convert("RGB").resize((112, 112), Image.Resampling.BILINEAR)))
        chunks.append(analyzer.embedder.embed(crops))
    vectors = np.concatenate(chunks).astype(np.float32)
    count = len(dataset.paths)
    boxes = np.tile(np.array([0, 0, 112, 112], np.float32), (count, 1))
    embeddings = Embeddings(vectors, boxes, np.ones(count, bool), np.full(count, 100.0, np.float32))
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=vectors, boxes=boxes, found=embeddings.found, confidence=embeddings.confidence)
    return embeddings


def embed_cli_dataset(root: Path, analyzer: FaceAnalyzer | None = None, aligned: bool = False) -> Embedded | None:
    """`embed_with_pipeline` for a command's `--dataset DIR` (with the command's configured analyzer; `aligned`:
    the images are aligned crops, `embed_aligned`); None, after saying why, when there is no such folder."""
    if aligned and root.is_dir():
        from facelens.pipeline import default_analyzer

        dataset = Dataset.from_folder(root)
        analyzer = analyzer or default_analyzer()
        return Embedded(dataset, analyzer, embed_aligned(dataset, analyzer))
    if not root.is_dir():
        print(f"data set not found at {root}; pass --dataset DIR (<identity>/<image> folders) or set FACELENS_LFW "
              "to a copy of LFW (deep-funneled, from its publishers; FaceLens ships no data set)")
        return None
    return embed_with_pipeline(root, analyzer)


def centred(embedded: Embedded) -> np.ndarray:
    """Per image: whether the face embedded covers the image's centre. LFW centres each image on the person it
    names; where the largest face is someone else's (a photo of two people), the embedding is not of the
    labelled person, so calibration leaves the image out (51 of LFW's 13,233)."""
    boxes = embedded.embeddings.boxes
    sizes = [_size(path) for path in embedded.dataset.paths]
    cx = np.array([w / 2 for w, _ in sizes])
    cy = np.array([h / 2 for _, h in sizes])
    return (boxes[:, 0] <= cx) & (boxes[:, 2] >= cx) & (boxes[:, 1] <= cy) & (boxes[:, 3] >= cy)


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def benchmark_dataset(description: str | None) -> Path | None:
    """A benchmark's `--dataset DIR` (default: LFW); None, after printing a SKIP line, when LFW is absent."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default=None, help="LFW-like folder with pairs.txt (default: LFW)")
    return dataset_root(parser.parse_args().dataset)


def dataset_root(dataset: str | None) -> Path | None:
    """The folder a benchmark's `--dataset` names (default: LFW); None, after printing a SKIP line, when it holds
    no pairs.txt."""
    root = Path(dataset or lfw_root())
    if not (root / "pairs.txt").is_file():
        print(f"SKIP: LFW not found at {root} (set FACELENS_LFW or pass --dataset)")
        return None
    return root
