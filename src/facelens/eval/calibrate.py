"""`facelens calibrate`: measure a recognizer's score->FMR curve on every different-person pair of a data set.

Empirical part: the impostor histogram of all pairs (LFW: ~87 million) gives log10 FMR wherever at least
`MIN_COUNT` impostor pairs score higher. Beyond that the count is too small to trust, so an exponential tail
(a generalised Pareto with shape 0, the Gumbel domain) is fitted by maximum likelihood to those `MIN_COUNT`
highest impostor scores. On LFW the mean excess grows further out (fits over the top 1,000 pairs predict
fewer very high scores than observed), so fitting only the last 50 is the more conservative choice; how
its predictions compare with the counts observed is in docs/calibration.md. Data-set labelling noise (one
person filed under two names, identical crops) shows up as
"impostor" pairs far above that tail; pairs the fit says should occur less than `NOISE_EXPECTED` times are set
aside as suspected label noise (listed in the table), removed from the counts, and the fit repeated.
Three further signs mark a high-scoring "impostor" pair as suspected noise: near-identical crops
(cosine >= `DUPLICATE_COSINE`), names that are spellings of one name (same name tokens in another order, or
string similarity >= `NAME_SIMILARITY`), and one image matching `IMAGE_MISFILED` or more images of a single
other identity above the tail threshold (an image filed under the wrong name).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facelens import calibration
from facelens.eval.dataset import embed_cli_dataset, lfw_root
from facelens.eval.verification import BINS, PairScores, all_pair_scores

if TYPE_CHECKING:
    from facelens.pipeline import FaceAnalyzer

MIN_COUNT = 50  # impostor pairs above a score needed to trust its empirical FMR
TAIL_K = MIN_COUNT  # the tail is fitted to exactly the pairs beyond the empirical part
NOISE_EXPECTED = 0.05  # a pair the fit expects fewer than this many times is suspected label noise
DUPLICATE_COSINE = 0.95
NAME_SIMILARITY = 0.8
IMAGE_MISFILED = 3
SIMILARITIES = (40, 50, 60, 70, 80, 90, 100)


def _identity(stem: str) -> str:
    return stem.rsplit("_", 1)[0] if stem[-4:].isdigit() else stem


def same_name(a: str, b: str) -> bool:
    """Whether two identity names look like spellings of one name (LFW files a few people twice)."""
    tokens_a, tokens_b = (sorted(t.lower() for t in re.split(r"[_\-\s]+", n) if t) for n in (a, b))
    if tokens_a == tokens_b:
        return True
    return difflib.SequenceMatcher(None, "".join(tokens_a), "".join(tokens_b)).ratio() >= NAME_SIMILARITY


def label_noise_signs(top: np.ndarray, pairs: np.ndarray, labels: list[str] | None, above: float) -> np.ndarray:
    """Mask of top impostor pairs with a sign of mislabelling other than their score alone."""
    flagged = top >= DUPLICATE_COSINE
    if labels is None:
        return flagged
    names = [(_identity(labels[a]), _identity(labels[b])) for a, b in pairs]
    flagged |= np.array([same_name(x, y) for x, y in names]) & (top >= above)
    counts: dict[tuple[int, str], int] = {}
    for (a, b), (name_a, name_b), score in zip(pairs, names, top, strict=True):
        if score >= above:
            counts[(a, name_b)] = counts.get((a, name_b), 0) + 1
            counts[(b, name_a)] = counts.get((b, name_a), 0) + 1
    sizes: dict[str, int] = {}
    for label in labels:
        sizes[_identity(label)] = sizes.get(_identity(label), 0) + 1
    # an image that matches several images AND at least a quarter of another identity's images
    misfiled = {key for key, count in counts.items()
                if count >= IMAGE_MISFILED and count >= 0.25 * sizes.get(key[1], 1)}
    flagged |= np.array([(a, nb) in misfiled or (b, na) in misfiled
                         for (a, b), (na, nb) in zip(pairs, names, strict=True)]) & (top >= above)
    return flagged


def fit_tail(top: np.ndarray, k: int = TAIL_K, known: np.ndarray | None = None) -> tuple[float, float, np.ndarray]:
    """Exponential tail over the k-th highest score: (threshold u, scale beta, mask of suspected noise).

    `known` marks pairs already suspected for other reasons; they are left out of the fit too.
    """
    known = np.zeros(len(top), dtype=bool) if known is None else known
    noise = known.copy()
    for _ in range(20):
        clean = top[~noise][:k]
        u = float(clean[-1])
        beta = float(np.mean(clean - u)) or 1e-6
        expected = k * np.exp(-(top - u) / beta)  # pairs expected at or above each score under the fit
        flagged = (expected < NOISE_EXPECTED) | known
        if (flagged == noise).all():
            break
        noise = flagged
    return u, beta, noise


def build_table(scores: PairScores, model: str, labels: list[str] | None = None,
                dataset: str = "", fingerprint: str = "") -> dict:
    """The calibration table (see `facelens.calibration`) from all-pair scores."""
    # signs of mislabelling are looked for among the 100 highest impostor scores
    high = float(scores.top_scores[min(99, len(scores.top_scores) - 1)])
    signs = label_noise_signs(scores.top_scores, scores.top_pairs, labels, above=high)
    u, beta, noise = fit_tail(scores.top_scores, known=signs)
    edges = np.linspace(-1, 1, BINS + 1)
    hist = scores.impostor_hist.copy()
    noisy_scores = scores.top_scores[noise]
    np.subtract.at(hist, np.clip(((noisy_scores + 1) * (BINS / 2)).astype(np.int64), 0, BINS - 1), 1)
    total = scores.impostor_count - int(noise.sum())
    above = np.cumsum(hist[::-1])[::-1]  # impostor pairs scoring at or above each bin's lower edge
    trusted = np.nonzero(above >= MIN_COUNT)[0]
    points, last_log = [], 1.0
    for index in trusted:
        log_fmr = math.log10(above[index] / total)
        if last_log - log_fmr >= 0.02 or index == trusted[-1]:  # thin: a point every 0.02 decades
            points.append([round(float(edges[index]), 5), round(log_fmr, 5)])
            last_log = log_fmr
    tail_from, tail_log = points[-1]
    slope = -1.0 / (beta * math.log(10))
    table = {
        "model": model,
        "points": points,
        "tail": {"cosine_from": tail_from, "log10_fmr": tail_log, "slope": round(slope, 4),
                 "method": "exponential (GPD shape 0) MLE over the top impostor scores",
                 "threshold_u": round(u, 5), "scale_beta": round(beta, 6), "k": TAIL_K},
        "source": {
            "dataset": dataset, "fingerprint": fingerprint, "impostor_pairs": int(total),
            "genuine_pairs": len(scores.genuine), "min_count": MIN_COUNT,
            "suspected_label_noise": [
                {"cosine": round(float(s), 4),
                 "pair": [labels[a] if labels else int(a), labels[b] if labels else int(b)]}
                for s, (a, b) in zip(scores.top_scores[noise], scores.top_pairs[noise], strict=True)
            ],
        },
    }
    model_cal = calibration.Calibration.from_dict(table)
    table["fnmr_at_similarity"] = {
        str(s): round(float((scores.genuine < model_cal.cosine_at(s)).mean()), 5) for s in SIMILARITIES
    }
    table["cosine_at_similarity"] = {str(s): round(model_cal.cosine_at(s), 4) for s in SIMILARITIES}
    return table


def main(args: argparse.Namespace, analyzer: FaceAnalyzer | None = None) -> int:
    """The command; `analyzer`: the configured one (`facelens.service.default_analyzer`), default models if None."""
    root = Path(args.dataset) if args.dataset else lfw_root()
    started = time.perf_counter()
    embedded = embed_cli_dataset(root, analyzer)
    if embedded is None:
        return 2
    dataset, analyzer = embedded.dataset, embedded.analyzer
    scores = all_pair_scores(embedded.vectors, dataset.identities, valid=embedded.embeddings.found)
    labels = [path.stem for path in dataset.paths]
    table = build_table(scores, analyzer.model_version, labels, dataset=str(root),
                        fingerprint=dataset.fingerprint())
    output = Path(args.output) if args.output else calibration.table_path(analyzer.model_version)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(table, indent=1) + "\n")
    print(f"{analyzer.model_version}: {table['source']['impostor_pairs']:,} impostor and "
          f"{table['source']['genuine_pairs']:,} genuine pairs in {time.perf_counter() - started:.0f} s -> {output}")
    for similarity in SIMILARITIES:
        print(f"  Similarity {similarity:>3}: cosine {table['cosine_at_similarity'][str(similarity)]:.3f}  "
              f"FNMR {table['fnmr_at_similarity'][str(similarity)]:.4f}")
    print(f"  suspected label noise: {len(table['source']['suspected_label_noise'])} pairs")
    return 0
