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
from facelens.eval import conservative
from facelens.eval.conservative import HighPairs
from facelens.eval.dataset import Embedded, centred, embed_cli_dataset, lfw_genders, lfw_root
from facelens.eval.demographics import read_group_labels
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
MIN_SITE_IDENTITIES = 100
SUPPORT_DECADES = 1.0  # how far past its least-measured group's data a table may claim (one decade of tail)


def _identity(stem: str) -> str:
    return stem.rsplit("_", 1)[0] if stem[-4:].isdigit() else stem


def same_name(a: str, b: str) -> bool:
    """Whether two identity names look like spellings of one name (LFW files a few people twice)."""
    tokens_a, tokens_b = (sorted(t.lower() for t in re.split(r"[_\-\s]+", n) if t) for n in (a, b))
    if tokens_a == tokens_b:
        return True
    shorter, longer = sorted((set(tokens_a), set(tokens_b)), key=len)
    if len(shorter) >= 2 and shorter <= longer:  # Mireya_Moscoso, Mireya_Elisa_Moscoso_Rodriguez
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


def noise_among(high: HighPairs, labels: list[str] | None, names_from: float, top: int = 5000) -> np.ndarray:
    """Mask of suspected label noise among impostor pairs `high`: the tail fit's outliers and signs of
    mislabelling among the `top` highest, and, for every pair scoring >= `names_from`, names that are spellings
    of one name (LFW files a few people under two names, e.g. with and without a second surname)."""
    order = np.argsort(-high.scores, kind="stable")[:top]
    scores = high.scores[order].astype(np.float64)
    pairs = np.column_stack([high.first[order], high.second[order]])
    signs = label_noise_signs(scores, pairs, labels, above=float(scores[min(99, len(scores) - 1)]))
    _, _, noise = fit_tail(scores, known=signs)
    drop = np.zeros(len(high.scores), dtype=bool)
    drop[order[noise]] = True
    if labels is not None:
        for i in np.flatnonzero(high.scores >= names_from):
            if not drop[i] and same_name(_identity(labels[high.first[i]]), _identity(labels[high.second[i]])):
                drop[i] = True
    return drop


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


def conservative_table(vectors: np.ndarray, identities: np.ndarray, valid: np.ndarray,
                       groups: dict[str, np.ndarray], labels: list[str] | None, pooled: dict,
                       genuine: np.ndarray, kind: str = "conservative",
                       replicates: int = conservative.REPLICATES) -> dict:
    """The conservative table (`facelens.eval.conservative`) of embedded images, next to their `pooled`
    table (whose cosine at Similarity 40 is where pairs start to be kept): the promise at each level is the
    largest 95% upper bound of any group's (and the pooled) FMR, bootstrapped over identities."""
    scale = calibration.Calibration.from_dict(pooled)
    high = conservative.high_impostor_pairs(vectors, identities, valid, scale.cosine_at(40))
    drop = noise_among(high, labels, scale.cosine_at(60))
    curves = conservative.group_curves(conservative.without(high, drop), identities, valid, groups,
                                       replicates=replicates)
    points, tail = conservative.conservative_points(curves)
    table = {"model": pooled["model"], "kind": kind, "points": points, "tail": tail}
    model_cal = calibration.Calibration.from_dict(table)
    weakest = min(curve.tail_from for curve in curves)  # where the least-measured group's data run out
    supported = min(100.0, float(model_cal.similarity(weakest)) + 10.0 * SUPPORT_DECADES)
    table["supported_similarity"] = round(supported, 2)
    levels = [s for s in SIMILARITIES if s < 100]
    table["source"] = {
        **{k: v for k, v in pooled["source"].items() if k != "suspected_label_noise"},
        "confidence": conservative.CONFIDENCE, "bootstrap": {"replicates": replicates, "over": "identities"},
        "identities": len(np.unique(identities[valid])), "groups": conservative.describe_curves(curves),
        "suspected_label_noise_pairs": int(drop.sum()),
    }
    table["promise_check"] = [
        {**row, "fmr": float(f"{row['fmr']:.4g}"), "interval": [float(f"{v:.4g}") for v in row["interval"]],
         "ratio": round(row["ratio"], 4), "upper_ratio": round(row["upper_ratio"], 4)}
        for row in conservative.promise_check(curves, {s: model_cal.cosine_at(s) for s in levels})]
    table["fnmr_at_similarity"] = {
        str(s): round(float((genuine < model_cal.cosine_at(s)).mean()), 5) for s in SIMILARITIES}
    table["cosine_at_similarity"] = {str(s): round(model_cal.cosine_at(s), 4) for s in SIMILARITIES}
    return table


def site_refusal(table: dict, min_similarity: float) -> str | None:
    """Why a site table cannot be used by a server whose searches start at `min_similarity`, or None."""
    people = table["source"].get("identities", 0)
    if people < MIN_SITE_IDENTITIES:
        return (f"built from {people} identities; a site calibration needs at least {MIN_SITE_IDENTITIES} "
                "(an FMR bound over identities needs many people)")
    supported = float(table.get("supported_similarity", 0.0))
    if supported < min_similarity:
        pairs = min(g["impostor_pairs"] for g in table["source"]["groups"].values())
        return (f"its data support Similarity up to {supported:.1f} (the least-measured group has {pairs:,} "
                f"impostor pairs), below the searches' floor of {min_similarity:g}: add people and photos")
    return None


def _groups(args: argparse.Namespace, embedded: Embedded, root: Path) -> dict[str, np.ndarray]:
    dataset = embedded.dataset
    images = dataset.paths[0].parent.parent
    if args.labels:
        keys = [str(path.relative_to(images)) for path in dataset.paths]
        return read_group_labels(args.labels, dataset.names, dataset.identities, keys)
    if (root / "annotations").is_dir():  # LFW
        return {"gender": lfw_genders(root, dataset.index_of())}
    return {}


def main(args: argparse.Namespace, analyzer: FaceAnalyzer | None = None, min_similarity: float = 80.0) -> int:
    """The command; `analyzer`: the configured one (`facelens.service.default_analyzer`), default models if None.
    Without --output: the package's conservative and pooled tables of the model; with it: a site table,
    refused (exit 2, nothing written) when its data cannot support `min_similarity`."""
    root = Path(args.dataset) if args.dataset else lfw_root()
    started = time.perf_counter()
    embedded = embed_cli_dataset(root, analyzer, aligned=getattr(args, "aligned", False))
    if embedded is None:
        return 2
    dataset, analyzer = embedded.dataset, embedded.analyzer
    valid = embedded.embeddings.found.copy()
    if (root / "lfw-deepfunneled").is_dir() and not getattr(args, "aligned", False):
        valid &= centred(embedded)
    labels = [path.stem for path in dataset.paths]
    people = len(np.unique(dataset.identities[valid]))
    if args.output and people < MIN_SITE_IDENTITIES:
        print(f"calibration refused: built from {people} identities; a site calibration needs at least "
              f"{MIN_SITE_IDENTITIES}")
        return 2
    scores = all_pair_scores(embedded.vectors, dataset.identities, valid=valid)
    if scores.impostor_count < 20 * MIN_COUNT:
        print(f"calibration refused: {scores.impostor_count:,} different-person pairs are too few to measure "
              "a false-match rate")
        return 2
    pooled = build_table(scores, analyzer.model_version, labels, dataset=str(root), fingerprint=dataset.fingerprint())
    pooled["kind"] = "pooled"
    kind = "site" if args.output else "conservative"
    table = conservative_table(embedded.vectors, dataset.identities, valid, _groups(args, embedded, root), labels,
                               pooled, scores.genuine, kind=kind)
    if args.output:
        reason = site_refusal(table, min_similarity)
        if reason is not None:
            print(f"calibration refused: {reason}")
            return 2
        outputs = {Path(args.output): table}
    else:
        outputs = {calibration.table_path(analyzer.model_version): table,
                   calibration.table_path(analyzer.model_version, calibration.POOLED): pooled}
    for output, content in outputs.items():
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(content, indent=1) + "\n")
    print(f"{analyzer.model_version}: {table['source']['impostor_pairs']:,} impostor and "
          f"{table['source']['genuine_pairs']:,} genuine pairs in {time.perf_counter() - started:.0f} s -> "
          f"{', '.join(map(str, outputs))}")
    for similarity in SIMILARITIES:
        print(f"  Similarity {similarity:>3}: cosine {table['cosine_at_similarity'][str(similarity)]:.3f} "
              f"(pooled {pooled['cosine_at_similarity'][str(similarity)]:.3f})  FNMR "
              f"{table['fnmr_at_similarity'][str(similarity)]:.4f} (pooled "
              f"{pooled['fnmr_at_similarity'][str(similarity)]:.4f})")
    print(f"  supported up to Similarity {table['supported_similarity']:.1f}; suspected label noise: "
          f"{table['source']['suspected_label_noise_pairs']} pairs")
    return 0
