"""Demographic differentials, NIST FRVT Part 3 style: FMR over within-group impostor pairs and FNMR over the
group's genuine pairs at the operating thresholds, with each group's ratio to the best group.

Group labels come from LFW's gender annotations or from a CSV (`--labels`):

    identity,gender,age_band          # or: image,gender,...
    Aaron_Eckhart,M,40-60
    Ann_Veneman,F,40-60

The first column names whom a row labels: `identity` (a folder name: every image of that person) or `image`
(alias `path`: an image path relative to the dataset's image folder such as `Ann_Veneman/Ann_Veneman_0001.jpg`,
or just its file name or stem). Every further column is one grouping (attribute); its cell values are the groups.
Empty cells leave the image unlabelled for that attribute; rows naming nothing in the dataset are ignored.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facelens.eval.verification import group_rates

IDENTITY_COLUMNS = ("identity", "name", "person")
IMAGE_COLUMNS = ("image", "path", "file")


def read_group_labels(path: str | Path, names: list[str], identities: np.ndarray,
                      image_keys: list[str]) -> dict[str, np.ndarray]:
    """Per-image group per attribute from a labels CSV (format in the module docstring).

    `image_keys` are the images' paths relative to the image folder (`identity/file.jpg`).
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path}: need a header with an identity or image column and at least one group column")
    header = [cell.strip() for cell in rows[0]]
    key_column = header[0].lower()
    if key_column not in IDENTITY_COLUMNS + IMAGE_COLUMNS:
        raise ValueError(f"{path}: first column must be one of {IDENTITY_COLUMNS + IMAGE_COLUMNS}, got {header[0]!r}")
    attributes = header[1:]
    labels = {attribute: np.full(len(image_keys), "", dtype=object) for attribute in attributes}
    by_name = {name: np.flatnonzero(identities == label) for label, name in enumerate(names)}
    by_image: dict[str, list[int]] = {}
    for position, key in enumerate(image_keys):
        for alias in {key, Path(key).name, Path(key).stem}:
            by_image.setdefault(alias, []).append(position)
    unmatched = 0
    for row in rows[1:]:
        if not row or not row[0].strip():
            continue
        key = row[0].strip()
        if key_column in IDENTITY_COLUMNS:
            positions = by_name.get(key)
        else:
            positions = by_image.get(key.replace("\\", "/")) or by_image.get(Path(key).stem)
        if positions is None or len(positions) == 0:
            unmatched += 1
            continue
        for attribute, cell in zip(attributes, row[1:], strict=False):
            if cell.strip():
                labels[attribute][positions] = cell.strip()
    if unmatched == len(rows) - 1:
        raise ValueError(f"{path}: no row matched an {key_column} of the dataset")
    return {attribute: values.astype(str) for attribute, values in labels.items()}


def differentials(vectors: np.ndarray, identities: np.ndarray, groups: np.ndarray, similarities: list[float],
                  cosines: list[float], found: np.ndarray | None = None) -> dict:
    """Per group FMR (within-group impostor pairs) and FNMR at each Similarity, pair counts, ratios to the best
    group (lowest rate with at least one error) and the spread (worst / best) per threshold."""
    groups = np.asarray(groups, dtype=str).copy()
    if found is not None:
        groups[~found] = ""
    rows = []
    for group in sorted(set(groups.tolist()) - {""}):
        fmr, fnmr, impostors, genuines = group_rates(vectors, identities, groups, group, cosines)
        members = groups == group
        rows.append({
            "group": group,
            "images": int(members.sum()),
            "people": len(np.unique(identities[members])),
            "impostor_pairs": int(impostors),
            "genuine_pairs": int(genuines),
            "at": [{"similarity": s, "cosine": round(float(c), 5),
                    "fmr": float(f) if impostors else None, "false_matches": round(f * impostors),
                    "fnmr": float(n) if genuines else None, "false_non_matches": round(n * genuines)}
                   for s, c, f, n in zip(similarities, cosines, fmr, fnmr, strict=True)],
        })
    spread = []
    for i, similarity in enumerate(similarities):
        entry: dict = {"similarity": similarity}
        for metric in ("fmr", "fnmr"):
            values = [row["at"][i][metric] for row in rows]
            positive = [v for v in values if v]
            best = min(positive) if positive else None
            for row, value in zip(rows, values, strict=True):
                row["at"][i][f"{metric}_ratio"] = value / best if best and value is not None else None
            entry[f"{metric}_worst_over_best"] = max(positive) / best if best else None
        spread.append(entry)
    return {"groups": rows, "spread": spread}


def female_male(table: dict) -> list[dict] | None:
    """Female/male ratios per threshold when the groups are LFW's F and M (None otherwise)."""
    rows = {row["group"]: row for row in table["groups"]}
    if not {"F", "M"} <= rows.keys():
        return None
    out = []
    for f, m in zip(rows["F"]["at"], rows["M"]["at"], strict=True):
        out.append({"similarity": f["similarity"],
                    "fmr": f["fmr"] / m["fmr"] if f["fmr"] is not None and m["fmr"] else None,
                    "fnmr": f["fnmr"] / m["fnmr"] if f["fnmr"] is not None and m["fnmr"] else None})
    return out
