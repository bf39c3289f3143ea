"""The conservative calibration: a Similarity scale whose false-match promise is an upper bound for every group.

For each labelled group (gender on LFW, any column of a labels CSV) the same-group impostor pairs give that
group's FMR at each cosine threshold. Its upper confidence bound comes from a bootstrap **over identities**
(identities are drawn with replacement; a pair counts once per drawn copy of each of its two people, so the
correlation between the many pairs of one person is kept), not over pairs, which would understate the spread.
Where fewer than `MIN_COUNT` pairs of a group score higher, the group's tail is an exponential fitted to its
`TAIL_K` highest scores, with the upper confidence bound of the exponential's scale (a slower decay). The
promised FMR at a threshold is the largest of these bounds over the groups (and over all pairs pooled), made
non-increasing: `Similarity = 20 + 10 * -log10(promise)` then never claims less than any measured group's bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95
REPLICATES = 200
MIN_COUNT = 50  # pairs above a threshold needed to trust a group's empirical FMR there
TAIL_K = 50
FLOOR_LOG10_FMR = -2.0  # pairs are kept from the pooled FMR 1e-2 (Similarity 40) up
GRID_STEP = 0.002
POOLED = "all"  # the pooled "group": every impostor pair, whatever its groups


@dataclass(frozen=True)
class HighPairs:
    """Impostor pairs scoring at least `floor`: scores, the two images, and how many impostor pairs there are."""

    floor: float
    scores: np.ndarray  # float32 (P,)
    first: np.ndarray  # int32 image indices (P,)
    second: np.ndarray


def high_impostor_pairs(vectors: np.ndarray, identities: np.ndarray, valid: np.ndarray, floor: float,
                        block: int = 2048) -> HighPairs:
    """Every different-identity pair of valid images scoring >= `floor`, computed block by block."""
    index = np.flatnonzero(valid)
    v, ids = vectors[index].astype(np.float32), identities[index]
    scores, first, second = [], [], []
    for start in range(0, len(v), block):
        s = v[start:start + block] @ v.T
        rows = np.arange(start, min(start + block, len(v)))
        keep = (s >= floor) & (np.arange(len(v))[None, :] > rows[:, None]) & (ids[rows][:, None] != ids[None, :])
        r, c = np.nonzero(keep)
        scores.append(s[r, c])
        first.append(index[rows[r]])
        second.append(index[c])
    return HighPairs(floor, np.concatenate(scores).astype(np.float32), np.concatenate(first).astype(np.int32),
                     np.concatenate(second).astype(np.int32))


def _chi2_lower(dof: int, tail: float) -> float:
    """The `tail` quantile of chi-square(dof) (Wilson-Hilferty; within 1% for dof >= 20)."""
    z = NormalDist().inv_cdf(tail)
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


@dataclass(frozen=True)
class GroupCurve:
    """One group's measured FMR on a cosine grid: point estimate, bootstrap bounds, and its fitted tail."""

    group: str
    identities: int
    images: int
    impostor_pairs: int
    cosines: np.ndarray
    counts: np.ndarray  # same-group impostor pairs at or above each cosine
    lower: np.ndarray  # FMR bounds (two-sided interval at CONFIDENCE: lower and upper (1+CONFIDENCE)/2 ...
    upper: np.ndarray  # ... and the one-sided upper bound at CONFIDENCE, which the promise uses
    upper_one_sided: np.ndarray
    tail_from: float  # the last trusted grid cosine
    tail_slope: float  # log10 FMR per unit cosine beyond it, at the scale's upper bound

    @property
    def point(self) -> np.ndarray:
        return self.counts / max(self.impostor_pairs, 1)

    def log_upper(self, cosines: np.ndarray) -> np.ndarray:
        """log10 of the one-sided upper bound at `cosines`: the empirical bound where trusted, the tail beyond."""
        trusted = self.cosines <= self.tail_from
        inside = np.interp(cosines, self.cosines[trusted], np.log10(np.maximum(self.upper_one_sided[trusted],
                                                                                1e-300)))
        anchor = float(np.log10(max(self.upper_one_sided[trusted][-1], 1e-300)))
        return np.where(cosines > self.tail_from, anchor + self.tail_slope * (cosines - self.tail_from), inside)


def group_curve(name: str, high: HighPairs, identities: np.ndarray, members: np.ndarray, grid: np.ndarray,
                rng: np.random.Generator, replicates: int = REPLICATES,
                confidence: float = CONFIDENCE) -> GroupCurve | None:
    """The curve of the images in `members` (bool per image), or None with fewer than two identities."""
    people, per_person = np.unique(identities[members], return_counts=True)
    if len(people) < 2:
        return None
    compact = np.full(int(identities.max()) + 1, -1)
    compact[people] = np.arange(len(people))
    keep = members[high.first] & members[high.second]
    order = np.argsort(-high.scores[keep], kind="stable")
    scores = high.scores[keep][order]
    a = compact[identities[high.first[keep][order]]]
    b = compact[identities[high.second[keep][order]]]
    n = per_person.astype(np.float64)
    total = 0.5 * (n.sum() ** 2 - (n ** 2).sum())
    above = np.searchsorted(-scores, -grid, side="right")  # pairs scoring >= each grid cosine
    weights = rng.multinomial(len(people), np.full(len(people), 1 / len(people)), size=replicates).astype(np.float64)
    denominators = 0.5 * ((weights @ n) ** 2 - (weights ** 2) @ (n ** 2))
    rates = np.empty((replicates, len(grid)))
    for start in range(0, replicates, 16):
        w = weights[start:start + 16]
        cumulative = np.cumsum(w[:, a] * w[:, b], axis=1) if len(scores) else np.zeros((len(w), 0))
        padded = np.concatenate([np.zeros((len(w), 1)), cumulative], axis=1)
        rates[start:start + 16] = padded[:, above] / denominators[start:start + 16, None]
    lower, upper = np.quantile(rates, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    one_sided = np.quantile(rates, confidence, axis=0)
    trusted = np.flatnonzero(above >= MIN_COUNT)
    if len(trusted) == 0:
        return None
    tail_from = float(grid[trusted[-1]])
    top = scores[:TAIL_K].astype(np.float64)
    k = len(top)
    beta = float(np.mean(top - top[-1])) if k > 1 else 0.01
    beta_upper = 2 * k * max(beta, 1e-6) / _chi2_lower(2 * k, 1 - confidence) if k >= 2 else 0.05
    return GroupCurve(name, len(people), int(members.sum()), int(total), grid, above, lower, upper, one_sided,
                      tail_from, -1.0 / (beta_upper * math.log(10)))


def grid_from(floor: float) -> np.ndarray:
    return np.arange(floor, 1.0 + GRID_STEP / 2, GRID_STEP)


def without(high: HighPairs, drop: np.ndarray) -> HighPairs:
    """`high` less the pairs `drop` marks (suspected label noise: one person filed under two names)."""
    keep = ~drop
    return HighPairs(high.floor, high.scores[keep], high.first[keep], high.second[keep])


def group_curves(high: HighPairs, identities: np.ndarray, valid: np.ndarray, groups: dict[str, np.ndarray],
                 seed: int = 0, replicates: int = REPLICATES) -> list[GroupCurve]:
    """The pooled curve and one per group of every grouping (`groups`: attribute -> label per image, '' for
    unlabelled), from the impostor pairs `high` (those scoring >= its floor)."""
    floor = high.floor
    grid = grid_from(floor)
    rng = np.random.default_rng(seed)
    curves = [group_curve(POOLED, high, identities, valid, grid, rng, replicates)]
    for attribute, labels in groups.items():
        for label in sorted(set(labels[valid].tolist()) - {""}):
            curves.append(group_curve(f"{attribute}={label}", high, identities, valid & (labels == label), grid, rng,
                                      replicates))
    return [c for c in curves if c is not None]


def worst_case(curves: list[GroupCurve], cosines: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """log10 of the promise at `cosines` (the largest upper bound of any curve, made non-increasing) and the
    curve that sets it at each cosine."""
    bounds = np.stack([curve.log_upper(cosines) for curve in curves])
    worst = bounds.max(axis=0)
    which = [curves[i].group for i in bounds.argmax(axis=0)]
    return np.maximum.accumulate(np.minimum(worst, 0.0)[::-1])[::-1], which


def conservative_points(curves: list[GroupCurve], stop_log10: float = -10.0) -> tuple[list[list[float]], dict]:
    """Table points `[cosine, log10 FMR]` of the promise (one every 0.02 decades, as the pooled table thins
    them) down to `stop_log10`, and the tail beyond the last: the slowest of the groups' upper-bound tails."""
    cosines = curves[0].cosines
    log_fmr, _ = worst_case(curves, cosines)
    points, last = [], 1.0
    for i, (cosine, value) in enumerate(zip(cosines, log_fmr, strict=True)):
        if last - value >= 0.02 or i == len(cosines) - 1 or value <= stop_log10:
            points.append([round(float(cosine), 5), round(float(value), 5)])
            last = value
            if value <= stop_log10:
                break
    slope = max(curve.tail_slope for curve in curves)
    return points, {"cosine_from": points[-1][0], "log10_fmr": points[-1][1], "slope": round(slope, 4),
                    "method": f"largest {CONFIDENCE:.0%} upper bound of the groups' exponential tails"}


def promise_check(curves: list[GroupCurve], cosine_at: dict[float, float]) -> list[dict]:
    """Per curve and Similarity level: measured FMR with its interval against the promise there."""
    rows = []
    for curve in curves:
        for level, cosine in cosine_at.items():
            promised = 10.0 ** (-(level - 20.0) / 10.0)
            count = int(np.interp(cosine, curve.cosines, curve.counts)) if cosine <= curve.cosines[-1] else 0
            fmr = count / max(curve.impostor_pairs, 1)
            low = float(np.interp(cosine, curve.cosines, curve.lower))
            high = float(np.interp(cosine, curve.cosines, curve.upper))
            rows.append({"group": curve.group, "similarity": level, "cosine": round(cosine, 5),
                         "impostor_pairs": curve.impostor_pairs, "false_matches": count, "fmr": fmr,
                         "interval": [low, high], "promised": promised, "ratio": fmr / promised,
                         "upper_ratio": high / promised})
    return rows


def describe_curves(curves: list[GroupCurve]) -> dict:
    """What the table's source records about each curve."""
    return {curve.group: {"identities": curve.identities, "images": curve.images,
                          "impostor_pairs": curve.impostor_pairs,
                          "trusted_to_cosine": round(curve.tail_from, 4),
                          "tail_slope": round(curve.tail_slope, 4)} for curve in curves}
