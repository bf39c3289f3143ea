"""The false-match experiment: search people who are NOT in a gallery and count who comes back.

A gallery holds one image (the first with a detected face, in file order) of each of G people drawn with a fixed
seed; the probes are ALL images (with a detected face) of the remaining P people, none of whom is in the gallery.
Every probe is compared with every gallery face (exact search: one matrix product), so every hit is a false match.
The count of probes with any hit at Similarity s is set beside what the calibration predicts: G x probe images x
FMR(s) false-match pairs, i.e. probe images x (1 - (1 - FMR(s))^G) probes with at least one.
"""

from __future__ import annotations

import re

import numpy as np

from facelens import calibration
from facelens.calibration import Calibration
from facelens.eval.calibrate import DUPLICATE_COSINE, same_name

SIMILARITIES = (80.0, 90.0, 95.0, 99.0)
LIST_ABOVE = 90.0  # false matches at or above this Similarity are listed by name
MAX_GALLERY = 4000


def default_gallery_size(people: int) -> int:
    """4,000 people, or 70% of them when the data set is smaller (LFW: 4,000 of 5,749)."""
    return min(MAX_GALLERY, round(0.7 * people))


def split(identities: np.ndarray, found: np.ndarray, gallery_size: int,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gallery image per gallery person, gallery person labels, probe images) for a seeded draw of people."""
    people = np.unique(identities[found])
    if not 0 < gallery_size < len(people):
        raise ValueError(f"gallery size must be between 1 and {len(people) - 1} (people with a face), "
                         f"got {gallery_size}")
    chosen = np.sort(np.random.default_rng(seed).permutation(people)[:gallery_size])
    usable = np.flatnonzero(found)
    first = {}
    for position in usable[::-1]:  # the first usable image of each person wins
        first[int(identities[position])] = int(position)
    gallery = np.asarray([first[int(person)] for person in chosen])
    probes = usable[~np.isin(identities[usable], chosen)]
    return gallery, chosen, probes


def names_overlap(a: str, b: str) -> bool:
    """One name's parts are all among the other's (Mireya_Moscoso / Mireya_Elisa_Moscoso_Rodriguez)."""
    tokens_a, tokens_b = ({t.lower() for t in re.split(r"[_\-\s]+", n) if t} for n in (a, b))
    return len(tokens_a & tokens_b) >= 2 and (tokens_a <= tokens_b or tokens_b <= tokens_a)


def noise_reason(name_a: str, name_b: str, cosine: float, suspected: dict[frozenset, str]) -> str:
    """Why a cross-name match looks like label noise ('' when nothing suggests it)."""
    if frozenset((name_a, name_b)) in suspected:
        return suspected[frozenset((name_a, name_b))]
    if same_name(name_a, name_b) or names_overlap(name_a, name_b):
        return "names are spellings of one name"
    if cosine >= DUPLICATE_COSINE:
        return "identical crops"
    return ""


def false_match_experiment(vectors: np.ndarray, identities: np.ndarray, found: np.ndarray, names: list[str],
                           labels: list[str], model: Calibration, gallery_size: int | None = None, seed: int = 0,
                           similarities: tuple[float, ...] = SIMILARITIES,
                           suspected: dict[frozenset, str] | None = None, block: int = 2048) -> dict:
    """Run the experiment (module docstring) and return its counts, predictions and listed matches."""
    people = len(np.unique(identities[found]))
    size = default_gallery_size(people) if gallery_size is None else gallery_size
    gallery, gallery_people, probes = split(identities, found, size, seed)
    cosines = [model.cosine_at(s) for s in similarities]
    list_from = model.cosine_at(LIST_ABOVE)
    collect_from = min([list_from, *cosines])
    g = np.ascontiguousarray(vectors[gallery], dtype=np.float32)
    pair_hits = np.zeros(len(similarities), dtype=np.int64)
    probe_hits = np.zeros(len(similarities), dtype=np.int64)
    hits: list[tuple[float, int, int]] = []
    for start in range(0, len(probes), block):
        rows = probes[start : start + block]
        scores = np.ascontiguousarray(vectors[rows], dtype=np.float32) @ g.T
        best = scores.max(axis=1)
        for i, threshold in enumerate(cosines):
            pair_hits[i] += int((scores >= threshold).sum())
            probe_hits[i] += int((best >= threshold).sum())
        for r, c in zip(*np.nonzero(scores >= collect_from), strict=True):
            hits.append((float(scores[r, c]), int(rows[r]), int(gallery[c])))
    hits.sort(reverse=True)
    suspected = suspected or {}
    matches = []
    for cosine, probe, hit in hits:
        a, b = names[identities[probe]], names[identities[hit]]
        matches.append({"probe": labels[probe], "probe_person": a, "gallery": labels[hit], "gallery_person": b,
                        "cosine": round(cosine, 5), "similarity": round(float(model.similarity(cosine)), 2),
                        "suspected_label_noise": noise_reason(a, b, cosine, suspected)})
    at = []
    for i, (similarity, threshold) in enumerate(zip(similarities, cosines, strict=True)):
        fmr = calibration.fmr_from_similarity(similarity)
        clean = {probe for (cosine, probe, _), match in zip(hits, matches, strict=True)
                 if cosine >= threshold and not match["suspected_label_noise"]}
        at.append({"similarity": similarity, "cosine": round(threshold, 5), "fmr": fmr,
                   "comparisons": len(gallery) * len(probes),
                   "false_match_pairs": int(pair_hits[i]),
                   "expected_false_match_pairs": len(gallery) * len(probes) * fmr,
                   "probes_with_match": int(probe_hits[i]),
                   "probes_with_match_without_suspected_noise": len(clean),
                   "expected_probes_with_match": len(probes) * float(-np.expm1(len(gallery) * np.log1p(-fmr)))})
    return {
        "gallery_people": len(gallery),
        "probe_people": len(np.unique(identities[probes])),
        "probe_images": len(probes),
        "seed": seed,
        "gallery_rule": "one image per person: the first with a detected face in file order",
        "probe_rule": "all images with a detected face of every person not in the gallery",
        "list_above_similarity": LIST_ABOVE,
        "at": at,
        "matches": [m for (cosine, _, _), m in zip(hits, matches, strict=True) if cosine >= list_from],
        "gallery": [names[p] for p in gallery_people],
    }
