"""LFW accuracy of the service's face path: 10-fold accuracy, TAR at FAR, per-gender FMR/FNMR, detection failures.

    .venv/bin/python benchmarks/lfw.py [--dataset DIR]

Embeddings are those the service computes (`facelens.analysis.find_faces`: largest face, the service's analyzer
as configured). To measure flip test-time augmentation, run it again with the service configured for it
(`FACELENS_FLIP_TTA=1`): a separate analyzer and cache, never a toggled shared model.
Reads LFW from `../shared/data/lfw` (or FACELENS_LFW / --dataset); prints a skip message when it is absent.
Embeddings are cached under ~/.cache/facelens (first run: ~3 minutes on 2 cores).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from facelens import calibration
from facelens.config import models_from_env
from facelens.eval.dataset import benchmark_dataset, embed_with_pipeline, lfw_genders, lfw_pairs
from facelens.eval.verification import all_pair_scores, eer, group_rates, tar_at_far, tenfold_accuracy
from facelens.pipeline import analyzer_for


def main() -> int:
    root = benchmark_dataset(__doc__)
    if root is None:
        return 0
    started = time.perf_counter()
    # the models the environment configures for the service (FACELENS_FLIP_TTA, FACELENS_RECOGNIZER_MODEL, ...;
    # none set: the defaults, as `facelens eval` uses), onnxruntime's default threads
    embedded = embed_with_pipeline(root, analyzer_for(models_from_env()))
    dataset, analyzer, embeddings = embedded.dataset, embedded.analyzer, embedded.embeddings
    index = dataset.index_of()
    pairs, same, folds = lfw_pairs(root, index)
    try:
        model: calibration.Calibration | None = calibration.for_model(analyzer.model_version)
    except FileNotFoundError:  # a configuration without a shipped table (flip TTA, a user recognizer)
        model = None
    print(f"LFW: {len(dataset.paths):,} images of {len(dataset.names):,} people; model {analyzer.model_version}")
    missing = int((~embeddings.found).sum())
    print(f"detection failures: {missing} of {len(dataset.paths):,} images ({100 * missing / len(dataset.paths):.3f}%)")
    vectors = embeddings.vectors
    flip = "on" if analyzer.model_version.endswith("+flip") else "off"
    scores = (vectors[pairs[:, 0]] * vectors[pairs[:, 1]]).sum(axis=1)  # pairs.txt
    mean, std = tenfold_accuracy(scores, same, folds)
    print(f"\n| protocol | flip TTA | 10-fold accuracy | std |\n|---|---|---:|---:|\n"
          f"| pairs.txt (6,000 pairs) | {flip} | {100 * mean:.2f}% | {100 * std:.2f} |")
    fars = (1e-3, 1e-4, 1e-5, 1e-6)
    print("\nAll pairs, TAR at FAR (cosine threshold):")
    print("| flip TTA | " + " | ".join(f"FAR {far:g}" for far in fars) + " |\n|---|" + "---:|" * len(fars))
    everything = all_pair_scores(vectors, dataset.identities, valid=embeddings.found)
    cells = [(float((everything.genuine >= t).mean()), t) for t in map(everything.threshold_at_fmr, fars)]
    print(f"| {flip} | " + " | ".join(f"{tar:.4f} ({t:.3f})" for tar, t in cells) + " |")
    print(f"({everything.impostor_count:,} different-person, {len(everything.genuine):,} same-person pairs)")
    edges = np.linspace(-1, 1, len(everything.impostor_hist) + 1)[:-1]
    fmr_curve = np.cumsum(everything.impostor_hist[::-1])[::-1] / everything.impostor_count
    fnmr_curve = np.searchsorted(np.sort(everything.genuine), edges) / len(everything.genuine)
    crossing = int(np.argmin(np.abs(fmr_curve - fnmr_curve)))
    print(f"EER (all pairs): {50 * (fmr_curve[crossing] + fnmr_curve[crossing]):.3f}% at cosine {edges[crossing]:.3f}")
    print(f"EER (pairs.txt): {100 * eer(scores[same], scores[~same]):.2f}%")
    print(f"pairs.txt TAR@FAR=1e-3 (3,000 impostor pairs): {tar_at_far(scores[same], scores[~same], 1e-3):.4f}; "
          f"TAR@FAR=1e-4 (= above every impostor pair): {tar_at_far(scores[same], scores[~same], 1e-4):.4f}")
    if model is None:
        print(f"\nPer gender: skipped, no calibration table for {analyzer.model_version} (Similarity thresholds need "
              f"one; `facelens calibrate` makes it)\n\n(total {time.perf_counter() - started:.0f} s)")
        return 0
    genders = lfw_genders(root, index)
    genders[~embeddings.found] = ""
    similarities = [80.0, 90.0]
    thresholds = [model.cosine_at(s) for s in similarities]
    print("\nPer gender, same-gender pairs (calibrated Similarity -> cosine from the shipped table):")
    print("| group | impostor pairs | genuine pairs | FMR @80 | FNMR @80 | FMR @90 | FNMR @90 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = {}
    for group, label in (("F", "female"), ("M", "male")):
        fmr, fnmr, impostors, genuines = group_rates(vectors, dataset.identities, genders, group, thresholds)
        rows[group] = (fmr, fnmr)
        cells = f"{fmr[0]:.2e} | {fnmr[0]:.4f} | {fmr[1]:.2e} | {fnmr[1]:.4f}"
        print(f"| {label} | {impostors:,} | {genuines:,} | {cells} |")
    for i, s in enumerate(similarities):
        f, m = rows["F"], rows["M"]
        ratio_fmr = f[0][i] / m[0][i] if m[0][i] else float("inf")
        ratio_fnmr = f[1][i] / m[1][i] if m[1][i] else float("inf")
        print(f"female/male ratio at Similarity {s:.0f}: FMR x{ratio_fmr:.2f}, FNMR x{ratio_fnmr:.2f}")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
