"""Face data sets laid out as `<root>/<identity>/<image>` (LFW and any folder like it), and their embeddings.

LFW (`../shared/data/lfw`) adds `pairs.txt` (the standard 10-fold protocol) and per-image gender labels.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facelens.align import align_face
from facelens.imaging import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from facelens.pipeline import FaceAnalyzer

DEFAULT_LFW = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lfw"


def lfw_root() -> Path:
    """LFW's location: `FACELENS_LFW` or `../shared/data/lfw` beside the checkout."""
    return Path(os.environ.get("FACELENS_LFW", DEFAULT_LFW))


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


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def central_face(detections: list, shape: tuple[int, ...]) -> int | None:
    """Index of the detection nearest the image centre (LFW's subject is centred), weighted by size."""
    if not detections:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    best, best_cost = None, float("inf")
    for i, det in enumerate(detections):
        x1, y1, x2, y2 = det.box
        distance = np.hypot((x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy)
        cost = distance - 0.5 * np.sqrt(max(x2 - x1, 1) * max(y2 - y1, 1))
        if cost < best_cost:
            best, best_cost = i, cost
    return best


@dataclass
class Embeddings:
    """Per-image embeddings of the central face (plain and mirrored, unnormalised), NaN where none found."""

    plain: np.ndarray
    mirrored: np.ndarray
    found: np.ndarray
    scores: np.ndarray

    def vectors(self, flip: bool = True) -> np.ndarray:
        features = self.plain + self.mirrored if flip else self.plain.copy()
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.where(norms > 0, norms, 1)


def _batches(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embed_dataset(dataset: Dataset, detector, embedder, cache_dir: Path | None = None,
                  batch: int = 32, progress: bool = True) -> Embeddings:
    """Embed the central face of every image (cached on disk per model and data set)."""
    cache_dir = cache_dir or Path(os.environ.get("FACELENS_CACHE", Path.home() / ".cache" / "facelens"))
    key = f"{embedder.name}-{detector.name}-{dataset.fingerprint()}"
    cached = cache_dir / f"embeddings-{key}.npz"
    if cached.is_file():
        data = np.load(cached)
        return Embeddings(data["plain"], data["mirrored"], data["found"], data["scores"])
    flip, embedder.flip = embedder.flip, False
    count = len(dataset.paths)
    plain = np.zeros((count, embedder.dimension), dtype=np.float32)
    mirrored = np.zeros_like(plain)
    found = np.zeros(count, dtype=bool)
    scores = np.zeros(count, dtype=np.float32)
    done = 0
    try:
        from tqdm import tqdm

        bar = tqdm(total=count, disable=not progress, unit="img")
    except ImportError:  # pragma: no cover
        bar = None
    with ThreadPoolExecutor(2) as pool:
        for paths in _batches(dataset.paths, batch):
            images = list(pool.map(_read_rgb, paths))
            detections = detector.detect(images)
            crops, slots = [], []
            for offset, (image, dets) in enumerate(zip(images, detections, strict=True)):
                chosen = central_face(dets, image.shape)
                if chosen is None:
                    continue
                crops.append(align_face(image, dets[chosen].landmarks))
                slots.append(done + offset)
                scores[done + offset] = dets[chosen].score
            if crops:
                stack = np.stack(crops)
                vectors = embedder.embed(np.concatenate([stack, stack[:, :, ::-1]]))
                plain[slots] = vectors[: len(crops)]
                mirrored[slots] = vectors[len(crops) :]
                found[slots] = True
            done += len(paths)
            if bar is not None:
                bar.update(len(paths))
    embedder.flip = flip
    if bar is not None:
        bar.close()
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cached, plain=plain, mirrored=mirrored, found=found, scores=scores)
    return Embeddings(plain, mirrored, found, scores)


@dataclass(frozen=True)
class Embedded:
    """A data set embedded by the default pipeline: what every evaluation starts from."""

    dataset: Dataset
    analyzer: FaceAnalyzer
    embeddings: Embeddings

    @property
    def vectors(self) -> np.ndarray:
        """Unit embeddings as the pipeline computes them (flip TTA as configured)."""
        return self.embeddings.vectors(self.analyzer.flip)


def embed_with_pipeline(root: Path) -> Embedded:
    """Load `<root>/<identity>/<image>` and embed it with the default pipeline (cached)."""
    from facelens.pipeline import FaceAnalyzer

    dataset = Dataset.from_folder(root)
    analyzer = FaceAnalyzer()
    return Embedded(dataset, analyzer, embed_dataset(dataset, analyzer.detector, analyzer.embedder))


def embed_cli_dataset(root: Path) -> Embedded | None:
    """`embed_with_pipeline` for a command's `--dataset DIR`; None, after saying why, when there is no such folder."""
    if not root.is_dir():
        print(f"data set not found at {root}; pass --dataset DIR (<identity>/<image> folders)")
        return None
    return embed_with_pipeline(root)


def benchmark_dataset(description: str | None) -> Path | None:
    """A benchmark's `--dataset DIR` (default: LFW); None, after printing a SKIP line, when LFW is absent."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default=None, help="LFW-like folder with pairs.txt (default: LFW)")
    root = Path(parser.parse_args().dataset or lfw_root())
    if not (root / "pairs.txt").is_file():
        print(f"SKIP: LFW not found at {root} (set FACELENS_LFW or pass --dataset)")
        return None
    return root
