"""1:N identification on LFW through a real FaceLens collection ("the ACLU experiment in miniature").

    .venv/bin/python benchmarks/identification.py [--dataset DIR]

Indexes one face (the first detected image) of every LFW person with >= 2 images into a collection of a backend
made by `facelens.service.build` (SQLite + FAISS in a temporary data directory; faces stored with
`collections.add_embeddings`), then searches it with `search.by_embedding` (the exact re-ranked search engine that
SearchFacesByImage answers from, here without the policy gate, so no floor) for each person's second image (mated
probes) and for the single image of every person with exactly one (non-mated probes, never indexed). Reports rank-1
hit rate, identification rate and false-match rate at calibrated Similarity thresholds, with the count expected from
the calibration (probes x gallery x FMR). Embeddings from the service's face path (`facelens.analysis.find_faces`,
largest face), cached under ~/.cache/facelens (first run: ~3 minutes on 2 cores). Reads LFW from
`../shared/data/lfw` (or FACELENS_LFW / --dataset); skips when absent.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelens import calibration
from facelens.config import ServerSettings, models_from_env
from facelens.eval.dataset import Dataset, benchmark_dataset, embed_with_pipeline
from facelens.pipeline import analyzer_for
from facelens.service import Backend, build

COLLECTION = "lfw-identification"
MATED_THRESHOLDS = (80.0, 90.0, 99.0)
NON_MATED_THRESHOLDS = (80.0, 90.0, 95.0, 99.0)


@dataclass
class Split:
    """Image positions: gallery and mated probe per multi-image person, one probe per single-image person."""

    gallery: list[int]
    mated: list[int]
    non_mated: list[int]
    skipped_people: int  # >= 2 images but fewer than 2 with a detected face, or 1 image without one


def split(dataset: Dataset, found: np.ndarray) -> Split:
    gallery, mated, non_mated, skipped = [], [], [], 0
    for label in range(len(dataset.names)):
        images = np.flatnonzero(dataset.identities == label)  # sorted file order
        usable = [int(i) for i in images if found[i]]
        if len(images) >= 2 and len(usable) >= 2:
            gallery.append(usable[0])
            mated.append(usable[1])
        elif len(images) == 1 and usable:
            non_mated.append(usable[0])
        else:
            skipped += 1
    return Split(gallery, mated, non_mated, skipped)


def top_matches(backend: Backend, vectors: np.ndarray, probes: list[int]) -> tuple[list[str], np.ndarray]:
    """Rank-1 candidate (ExternalImageId) and its Similarity per probe ('' and -1 when nothing came back)."""
    assert backend.search is not None  # a backend with a data directory
    names, similarities = [], np.full(len(probes), -1.0)
    for row, position in enumerate(probes):
        matches = backend.search.by_embedding(COLLECTION, vectors[position], threshold=0.0, max_faces=1)
        names.append((matches[0].face.external_image_id or "") if matches else "")
        if matches:
            similarities[row] = matches[0].similarity
    return names, similarities


def main() -> int:
    root = benchmark_dataset(__doc__)
    if root is None:
        return 0
    started = time.perf_counter()
    # the models the environment configures for the service (FACELENS_FLIP_TTA, FACELENS_RECOGNIZER_MODEL, ...;
    # none set: the defaults, as `facelens eval` uses), onnxruntime's default threads
    analyzer = analyzer_for(models_from_env())
    model = calibration.for_model(analyzer.model_version)  # before embedding: Similarity needs the model's table
    embedded = embed_with_pipeline(root, analyzer)
    dataset, vectors = embedded.dataset, embedded.vectors
    parts = split(dataset, embedded.embeddings.found)
    source = model.source.get("source", {})
    print(f"LFW: {len(dataset.paths):,} images of {len(dataset.names):,} people; model {analyzer.model_version} "
          "(the service's face path: largest face of each image)")
    print(f"calibration: shipped table, fitted on {Path(str(source.get('dataset', '?'))).name} "
          f"({source.get('impostor_pairs', 0):,} impostor pairs)")

    with tempfile.TemporaryDirectory() as data_dir, \
            build(ServerSettings(data_dir=Path(data_dir)), analyzer=analyzer) as backend:
        assert backend.collections is not None
        backend.call("CreateCollection", {"CollectionId": COLLECTION})
        tick = time.perf_counter()
        for position in parts.gallery:
            backend.collections.add_embeddings(COLLECTION, vectors[position],
                                               external_image_id=dataset.names[dataset.identities[position]])
        index_s = time.perf_counter() - tick
        faces = backend.call("DescribeCollection", {"CollectionId": COLLECTION})["FaceCount"]
        tick = time.perf_counter()
        mated_names, mated_sim = top_matches(backend, vectors, parts.mated)
        non_mated_names, non_mated_sim = top_matches(backend, vectors, parts.non_mated)
        search_s = time.perf_counter() - tick

    searches = len(parts.mated) + len(parts.non_mated)
    print("\n| collection faces | mated probes | non-mated probes | people skipped (no usable face) |")
    print("|---:|---:|---:|---:|")
    print(f"| {faces:,} | {len(parts.mated):,} | {len(parts.non_mated):,} | {parts.skipped_people:,} |")
    print(f"\nindexing: {index_s:.1f} s ({faces / index_s:.0f} faces/s, one add_embeddings call per person); "
          f"searching: {search_s:.1f} s for {searches:,} searches ({searches / search_s:.0f} searches/s, "
          f"threshold 0, MaxFaces 1)")

    truth = [dataset.names[dataset.identities[p]] for p in parts.mated]
    right = np.asarray([n == t for n, t in zip(mated_names, truth, strict=True)])
    count = len(parts.mated)
    print(f"\nMated probes ({count:,}: each person's second image; the first is in the collection):")
    print("| Similarity threshold | right person on top | wrong person on top | expected wrong (calibration) |")
    print("|---|---:|---:|---:|")
    print(f"| none (rank-1) | {right.mean():.4f} ({right.sum():,}) | {(~right).mean():.4f} ({(~right).sum():,}) | |")
    for t in MATED_THRESHOLDS:
        hit, wrong = right & (mated_sim >= t), ~right & (mated_sim >= t)
        expected = count * (faces - 1) * calibration.fmr_from_similarity(t)
        print(f"| {t:.0f} | {hit.mean():.4f} ({hit.sum():,}) | {wrong.mean():.4f} ({wrong.sum():,}) "
              f"| {expected:.3g} |")

    count = len(parts.non_mated)
    print(f"\nNon-mated probes ({count:,}: people with one image, never indexed), best match at or above threshold:")
    print("| Similarity threshold | FMR(threshold) | false matches | rate | expected (probes x gallery x FMR) |")
    print("|---|---:|---:|---:|---:|")
    for t in NON_MATED_THRESHOLDS:
        fmr = calibration.fmr_from_similarity(t)
        hits = non_mated_sim >= t
        print(f"| {t:.0f} | {fmr:.0e} | {hits.sum():,} | {hits.mean():.4f} | {count * faces * fmr:.3g} |")

    order = np.argsort(-non_mated_sim)[:10]
    print("\nHighest-scoring non-mated probes:\n| probe | top match | Similarity |\n|---|---|---:|")
    for row in order:
        print(f"| {dataset.paths[parts.non_mated[row]].stem} | {non_mated_names[row]} | {non_mated_sim[row]:.2f} |")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
