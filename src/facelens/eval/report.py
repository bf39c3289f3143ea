"""`facelens eval`: a published evaluation (model card) of the face model in use on a data set.

    facelens eval --dataset DIR [--labels CSV] [--out DIR]

Writes `report.json` (every number) and `report.html` (self-contained: tables from the JSON, matplotlib plots as
base64 PNGs) into --out (default `./eval-report`). `evaluate()` is pure computation on embeddings and returns the
summary dict; `facelens.eval.render` turns that dict, and nothing else, into HTML.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facelens import calibration
from facelens.calibration import Calibration
from facelens.eval.calibrate import DUPLICATE_COSINE, TAIL_K, fit_tail, label_noise_signs, same_name
from facelens.eval.demographics import differentials, female_male, read_group_labels
from facelens.eval.identification import false_match_experiment, names_overlap
from facelens.eval.verification import BINS, PairScores, all_pair_scores, tenfold_accuracy

if TYPE_CHECKING:
    from facelens.eval.dataset import Embedded
    from facelens.pipeline import FaceAnalyzer

FARS = (1e-3, 1e-4, 1e-5, 1e-6)
CHECK_SIMILARITIES = (50.0, 60.0, 70.0, 80.0, 90.0)
GROUP_SIMILARITIES = (70.0, 80.0, 90.0)
COLLECTION_SIZES = (1_000, 25_000, 1_000_000, 20_000_000)
CURVE_POINTS = 300
PLOT_BINS = 200


def _count_at(scores: PairScores, threshold: float) -> int:
    """Impostor pairs scoring >= threshold (exact among the kept top scores, else at histogram resolution)."""
    return round(scores.fmr_at(threshold) * scores.impostor_count)


def _tar(genuine_sorted: np.ndarray, threshold: float) -> float:
    return 1.0 - np.searchsorted(genuine_sorted, threshold, side="left") / len(genuine_sorted)


def verification(scores: PairScores, pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 vectors: np.ndarray) -> dict:
    """TAR at FAR, EER over all pairs; 10-fold accuracy on the data set's pairs.txt when given."""
    n = scores.impostor_count
    genuine = np.sort(scores.genuine)
    rows = []
    for far in FARS:
        allowed = far * n
        row: dict = {"far": far, "impostor_pairs_allowed": int(allowed), "measurable": allowed >= 1}
        if row["measurable"]:
            threshold = scores.threshold_at_fmr(far)
            row |= {"cosine": round(threshold, 5), "tar": _tar(genuine, threshold),
                    "impostor_pairs_above": _count_at(scores, threshold)}
        rows.append(row)
    edges = np.linspace(-1, 1, BINS + 1)[:-1]
    fmr = np.cumsum(scores.impostor_hist[::-1])[::-1] / n
    fnmr = np.searchsorted(genuine, edges, side="left") / len(genuine)
    crossing = int(np.argmin(np.abs(fmr - fnmr)))
    out = {"impostor_pairs": n, "genuine_pairs": len(genuine), "tar_at_far": rows,
           "eer": float((fmr[crossing] + fnmr[crossing]) / 2), "eer_cosine": round(float(edges[crossing]), 4),
           "pairs_txt": None}
    if pairs is not None:
        index, same, folds = pairs
        pair_scores = (vectors[index[:, 0]] * vectors[index[:, 1]]).sum(axis=1)
        mean, std = tenfold_accuracy(pair_scores, same, folds)
        out["pairs_txt"] = {"pairs": len(same), "folds": len(np.unique(folds)), "accuracy": mean, "std": std}
    return out


def curves(scores: PairScores) -> dict:
    """ROC/DET points (log-spaced in FMR) and a coarse histogram of both score distributions, for the plots."""
    n, genuine = scores.impostor_count, np.sort(scores.genuine)
    above = np.cumsum(scores.impostor_hist[::-1])[::-1]  # impostor pairs at or above each bin's lower edge
    targets = np.unique(np.round(np.logspace(0, np.log10(n), CURVE_POINTS))) if n else np.zeros(0)
    index = np.unique(np.searchsorted(-above, -targets, side="left").clip(0, BINS - 1))
    edges = np.linspace(-1, 1, BINS + 1)
    cosine = edges[index]
    width = BINS // PLOT_BINS
    return {
        "cosine": [round(float(c), 4) for c in cosine],
        "fmr": [float(above[i] / n) for i in index],
        "fnmr": [float(v) for v in np.searchsorted(genuine, cosine, side="left") / len(genuine)],
        "histogram": {"from": -1.0, "width": 2.0 / PLOT_BINS,
                      "impostor": scores.impostor_hist.reshape(PLOT_BINS, width).sum(axis=1).tolist(),
                      "genuine": np.histogram(genuine, bins=PLOT_BINS, range=(-1, 1))[0].tolist()},
    }


def suspected_label_noise(scores: PairScores, identities: np.ndarray,
                          names: list[str]) -> tuple[list[dict], np.ndarray]:
    """Top impostor pairs that look mislabelled (`facelens.eval.calibrate` rules), grouped by name pair, and the
    scores of every suspected pair."""
    top, pairs = scores.top_scores, scores.top_pairs
    if not len(top):
        return [], np.zeros(0)
    rank: dict[int, int] = {}
    labels = []
    for label in identities:  # `<name>_<nnnn>` as the calibrate rules expect
        rank[int(label)] = rank.get(int(label), 0) + 1
        labels.append(f"{names[label]}_{rank[int(label)]:04d}")
    high = float(top[min(99, len(top) - 1)])
    signs = label_noise_signs(top, pairs, labels, above=high)
    noise = fit_tail(top, known=signs)[2] if len(top) > TAIL_K else signs
    groups: dict[frozenset, dict] = {}
    for cosine, (a, b), sign in zip(top[noise], pairs[noise], signs[noise], strict=True):
        name_a, name_b = names[identities[a]], names[identities[b]]
        if cosine >= DUPLICATE_COSINE:
            why = "identical crops"
        elif sign and (same_name(name_a, name_b) or names_overlap(name_a, name_b)):
            why = "names are spellings of one name"
        elif sign:
            why = "one image filed under the wrong name"
        else:
            why = "far above the fitted tail"
        key = frozenset((name_a, name_b))
        entry = groups.setdefault(key, {"names": sorted(key), "pairs": 0, "max_cosine": 0.0, "reasons": []})
        entry["pairs"] += 1
        entry["max_cosine"] = round(max(entry["max_cosine"], float(cosine)), 4)
        if why not in entry["reasons"]:
            entry["reasons"].append(why)
    listed = sorted(groups.values(), key=lambda e: (-e["pairs"], -e["max_cosine"]))
    return listed, top[noise]


def calibration_check(scores: PairScores, model: Calibration, noise_scores: np.ndarray) -> list[dict]:
    """Measured FMR at each Similarity against the FMR it promises, with the counts behind it, and TAR there."""
    genuine = np.sort(scores.genuine)
    n, noisy = scores.impostor_count, len(noise_scores)
    rows = []
    for similarity in CHECK_SIMILARITIES:
        cosine = model.cosine_at(similarity)
        count = _count_at(scores, cosine)
        noise = int((noise_scores >= cosine).sum())
        promised = calibration.fmr_from_similarity(similarity)
        rows.append({"similarity": similarity, "cosine": round(cosine, 5), "promised_fmr": promised,
                     "impostor_pairs": n, "impostor_pairs_above": count, "measured_fmr": count / n,
                     "ratio": count / n / promised, "suspected_noise_above": noise,
                     "measured_fmr_without_noise": (count - noise) / (n - noisy),
                     "expected_pairs_above": promised * n,
                     "genuine_pairs": len(genuine), "tar": _tar(genuine, cosine)})
    return rows


def large_collections(demographics: dict) -> dict:
    """What the Similarity scale means for 1:N searches of people not in the collection."""
    rows = []
    for size in COLLECTION_SIZES:
        for similarity in (80.0, 90.0):
            fmr = calibration.fmr_from_similarity(similarity)
            rows.append({"collection": size, "similarity": similarity, "fmr": fmr,
                         "expected_false_candidates": size * fmr,
                         "chance_of_a_stranger": float(-np.expm1(size * np.log1p(-fmr)))})
    worst = None
    for attribute, table in demographics.get("attributes", {}).items():
        for row in table["groups"]:
            for at in row["at"]:
                if at["similarity"] == 80.0 and at["fmr"] and at["false_matches"] >= 10:
                    factor = at["fmr"] / calibration.fmr_from_similarity(80.0)
                    if worst is None or factor > worst["factor"]:
                        worst = {"attribute": attribute, "group": row["group"], "factor": factor}
    return {"rows": rows, "worst_group_at_80": worst}


def evaluate(vectors: np.ndarray, identities: np.ndarray, names: list[str], labels: list[str], model: Calibration,
             found: np.ndarray | None = None, groups: dict[str, np.ndarray] | None = None, groups_source: str = "",
             pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, gallery_size: int | None = None,
             seed: int = 0, meta: dict | None = None) -> dict:
    """The whole evaluation as one JSON-ready dict (see the module docstring of each part).

    `vectors` are unit embeddings, `identities` an int label per image indexing `names`, `labels` a display
    label per image, `found` whether a face was detected (others are left out), `groups` per-image group labels
    per attribute, `pairs` the (index pairs, same, fold) of a pairs.txt protocol.
    """
    identities = np.asarray(identities)
    found = np.ones(len(vectors), dtype=bool) if found is None else np.asarray(found, dtype=bool)
    scores = all_pair_scores(vectors, identities, valid=found)
    noise, noise_scores = suspected_label_noise(scores, identities, names)
    suspected = {frozenset(entry["names"]): "; ".join(entry["reasons"]) for entry in noise}
    cosines = [model.cosine_at(s) for s in GROUP_SIMILARITIES]
    demographics: dict = {"source": groups_source, "similarities": list(GROUP_SIMILARITIES), "attributes": {}}
    for attribute, values in (groups or {}).items():
        table = differentials(vectors, identities, values, list(GROUP_SIMILARITIES), cosines, found)
        table["female_over_male"] = female_male(table)
        demographics["attributes"][attribute] = table
    return {
        "meta": meta or {},
        "promise": promise(vectors, identities, found, groups or {}, model),
        "model": {"version": model.model, "calibration_source": model.source.get("source", {}).get("dataset", ""),
                  "calibration": model.id, "calibration_kind": model.kind,
                  "calibration_impostor_pairs": model.source.get("source", {}).get("impostor_pairs")},
        "dataset": {"images": len(vectors), "people": len(np.unique(identities)),
                    "images_without_face": int((~found).sum()),
                    "people_with_face": len(np.unique(identities[found]))},
        "verification": verification(scores, pairs, vectors),
        "calibration_check": calibration_check(scores, model, noise_scores),
        "demographics": demographics,
        "false_match": false_match_experiment(vectors, identities, found, names, labels, model,
                                              gallery_size=gallery_size, seed=seed, suspected=suspected),
        "label_noise": noise,
        "large_collections": large_collections(demographics),
        "curves": curves(scores),
    }


PROMISE_LEVELS = (50.0, 60.0, 70.0, 80.0, 90.0)


def promise(vectors: np.ndarray, identities: np.ndarray, found: np.ndarray, groups: dict[str, np.ndarray],
            model: Calibration) -> dict:
    """Per group (and all pairs): measured FMR with its 95% bootstrap interval over identities against the
    promise at Similarity 50-90, and the worst measured/promised ratio at each level (TAR per level is in the
    calibration check)."""
    from facelens.eval import conservative

    if found.sum() < 2:
        return {"confidence": conservative.CONFIDENCE, "rows": [], "worst_ratio": {}}
    cosines = {level: model.cosine_at(level) for level in PROMISE_LEVELS}
    high = conservative.high_impostor_pairs(vectors, identities, found, min(cosines.values()) - 0.01)
    curves = conservative.group_curves(high, identities, found, groups)
    rows = conservative.promise_check(curves, cosines)
    worst = {f"{level:.0f}": max((r["ratio"] for r in rows if r["similarity"] == level), default=None)
             for level in PROMISE_LEVELS}
    return {"confidence": conservative.CONFIDENCE, "rows": rows, "worst_ratio": worst}


def machine() -> str:
    """CPU model, core count and accelerator, in words."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import onnxruntime

        gpu = "GPU" if any("CUDA" in p or "ROCM" in p for p in onnxruntime.get_available_providers()) else "no GPU"
    except ImportError:  # pragma: no cover
        gpu = "unknown accelerator"
    return f"{os.cpu_count()}-core {cpu}, {gpu} ({platform.system()} {platform.release()})"


def write_report(summary: dict, out: Path) -> tuple[Path, Path]:
    """Write report.json and report.html into `out`."""
    from facelens.eval.render import render_html

    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    html_path.write_text(render_html(summary), encoding="utf-8")
    return json_path, html_path


def main(args: argparse.Namespace, analyzer: FaceAnalyzer | None = None,
         calibration_for: Callable[[str], calibration.Calibration] | None = None) -> int:
    """The command; `analyzer`: the configured one (`facelens.service.default_analyzer`), default models if None;
    `calibration_for`: the scale in force (FACELENS_CALIBRATION), the shipped conservative table if None."""
    from facelens.eval.dataset import embed_cli_dataset

    started = time.perf_counter()
    embedded = embed_cli_dataset(Path(args.dataset), analyzer, aligned=getattr(args, "aligned", False))
    if embedded is None:
        return 2
    return report(args, embedded, calibration_for or calibration.for_model, started)


def report(args: argparse.Namespace, embedded: Embedded, calibration_for: Callable[[str], calibration.Calibration],
           started: float | None = None) -> int:
    """The report of an embedded data set (`facelens eval`'s arguments), with the model's calibration from
    `calibration_for`: writes the JSON and HTML, prints a summary line."""
    from facelens.eval.dataset import EVAL_FACE_PATH, lfw_genders, lfw_pairs

    root = Path(args.dataset)
    started = time.perf_counter() if started is None else started
    dataset, embeddings = embedded.dataset, embedded.embeddings
    model = calibration_for(embedded.analyzer.model_version)
    images = dataset.paths[0].parent.parent
    keys = [path.relative_to(images).as_posix() for path in dataset.paths]
    index = dataset.index_of()
    if args.labels:
        groups, source = read_group_labels(args.labels, dataset.names, dataset.identities, keys), str(args.labels)
    elif (root / "annotations" / "lfw_female_names.txt").is_file():
        groups, source = {"gender": lfw_genders(root, index)}, "LFW annotations/lfw_{female,male}_names.txt"
    else:
        groups, source = {}, ""
    pairs = lfw_pairs(root, index) if (root / "pairs.txt").is_file() else None
    meta = {"dataset": root.name, "dataset_path": str(root), "fingerprint": dataset.fingerprint(),
            "date": datetime.date.today().isoformat(), "machine": machine(),
            "flip_tta": embedded.analyzer.model_version.endswith("+flip"), "face_path": EVAL_FACE_PATH,
            "command": "facelens eval"}
    summary = evaluate(embedded.vectors, dataset.identities, dataset.names, [path.stem for path in dataset.paths],
                       model, found=embeddings.found, groups=groups, groups_source=source, pairs=pairs,
                       gallery_size=args.gallery, seed=args.seed, meta=meta)
    summary["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    json_path, html_path = write_report(summary, Path(args.out))
    verification_ = summary["verification"]
    print(f"{model.model} on {root.name}: {summary['dataset']['images']:,} images, "
          f"{verification_['impostor_pairs']:,} impostor / {verification_['genuine_pairs']:,} genuine pairs; "
          f"EER {100 * verification_['eer']:.2f}%")
    print(f"wrote {html_path} and {json_path}")
    return 0
