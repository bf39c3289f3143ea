"""Verification metrics, vectorised: every-pair score distributions, 10-fold accuracy, ROC points, per group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 20_000  # cosine histogram resolution over [-1, 1]: 1e-4 per bin


@dataclass
class PairScores:
    """Histogram of all different-person scores, the highest of them with their pairs, and all same-person ones."""

    impostor_hist: np.ndarray  # counts per bin over [-1, 1]
    impostor_count: int
    top_scores: np.ndarray  # highest impostor scores, descending
    top_pairs: np.ndarray  # (k, 2) image indices of those
    genuine: np.ndarray  # every same-person score
    genuine_pairs: np.ndarray  # (g, 2)

    def fmr_at(self, threshold: float) -> float:
        """Fraction of impostor pairs scoring >= threshold (exact above the kept top scores' floor)."""
        if len(self.top_scores) and threshold >= self.top_scores[-1]:
            return float((self.top_scores >= threshold).sum() / self.impostor_count)
        edges = np.linspace(-1, 1, BINS + 1)
        start = int(np.searchsorted(edges, threshold, side="right")) - 1
        return float(self.impostor_hist[max(start, 0) :].sum() / self.impostor_count)

    def threshold_at_fmr(self, fmr: float) -> float:
        """Lowest cosine whose FMR is <= `fmr`."""
        wanted = fmr * self.impostor_count
        if wanted < len(self.top_scores):
            return float(self.top_scores[int(wanted)]) + 1e-7
        above = np.cumsum(self.impostor_hist[::-1])[::-1]  # count at or above each bin
        index = int(np.argmax(above <= wanted))
        return float(np.linspace(-1, 1, BINS + 1)[index])


def all_pair_scores(vectors: np.ndarray, identities: np.ndarray, valid: np.ndarray | None = None,
                    keep_top: int = 5000, block: int = 2048) -> PairScores:
    """Score every unordered pair of images once: impostors into a histogram (plus the top `keep_top`),
    genuine pairs kept whole. `valid` masks images without a face."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count = len(vectors)
    valid = np.ones(count, dtype=bool) if valid is None else valid
    hist = np.zeros(BINS, dtype=np.int64)
    top_scores = np.empty(0, dtype=np.float32)
    top_pairs = np.empty((0, 2), dtype=np.int64)
    genuine, genuine_pairs = [], []
    total = 0
    for start in range(0, count, block):
        stop = min(start + block, count)
        scores = vectors[start:stop] @ vectors[start:].T  # only pairs (i, j) with j >= start
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, count)[None, :]
        upper = (cols > rows) & valid[start:stop, None] & valid[None, start:]
        same = identities[start:stop, None] == identities[None, start:]
        impostor = upper & ~same
        values = scores[impostor]
        total += values.size
        hist += np.bincount(np.clip(((values + 1) * (BINS / 2)).astype(np.int64), 0, BINS - 1), minlength=BINS)
        if values.size:
            k = min(keep_top, values.size)
            best = np.argpartition(-values, k - 1)[:k]
            r, c = np.nonzero(impostor)
            top_scores = np.concatenate([top_scores, values[best]])
            top_pairs = np.concatenate([top_pairs, np.column_stack([r[best] + start, c[best] + start])])
            order = np.argsort(-top_scores)[:keep_top]
            top_scores, top_pairs = top_scores[order], top_pairs[order]
        g = upper & same
        genuine.append(scores[g])
        r, c = np.nonzero(g)
        genuine_pairs.append(np.column_stack([r + start, c + start]))
    return PairScores(hist, total, top_scores, top_pairs, np.concatenate(genuine), np.concatenate(genuine_pairs))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold maximising accuracy on these pairs (midpoints between sorted scores)."""
    order = np.argsort(scores)
    sorted_scores, sorted_same = scores[order], same[order]
    # accuracy if threshold is just above index i: negatives among [0..i] + positives among [i+1..]
    negatives_below = np.cumsum(~sorted_same)
    positives_above = sorted_same.sum() - np.cumsum(sorted_same)
    correct = np.concatenate([[sorted_same.sum()], negatives_below + positives_above])
    best = int(np.argmax(correct))
    if best == 0:
        return float(sorted_scores[0] - 1e-6)
    if best == len(scores):
        return float(sorted_scores[-1] + 1e-6)
    return float((sorted_scores[best - 1] + sorted_scores[best]) / 2)


def tenfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """LFW protocol: threshold chosen on nine folds, accuracy measured on the tenth; mean and std."""
    accuracies = []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(scores[train], same[train])
        accuracies.append(float(((scores[test] >= threshold) == same[test]).mean()))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Equal error rate: where FNMR (genuine below t) equals FMR (impostor at or above t)."""
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    genuine_sorted, impostor_sorted = np.sort(genuine), np.sort(impostor)
    fnmr = np.searchsorted(genuine_sorted, thresholds, side="left") / len(genuine)
    fmr = 1.0 - np.searchsorted(impostor_sorted, thresholds, side="left") / len(impostor)
    index = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[index] + fmr[index]) / 2)


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """True-accept rate at the threshold where the false-accept rate is at most `far`."""
    ordered = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(ordered)))
    threshold = ordered[allowed] if allowed < len(ordered) else ordered[-1]
    return float((genuine > threshold).mean())




def group_rates(vectors: np.ndarray, ids: np.ndarray, groups: np.ndarray, group: str,
                thresholds: list[float], block: int = 2048) -> tuple[list[float], list[float], int, int]:
    """FMR over impostor pairs with both images in `group`, FNMR over its genuine pairs, at each threshold."""
    members = np.nonzero(groups == group)[0]
    v, labels = vectors[members], ids[members]
    hits = np.zeros(len(thresholds), dtype=np.int64)
    misses = np.zeros(len(thresholds), dtype=np.int64)
    impostors = genuines = 0
    for start in range(0, len(v), block):
        scores = v[start : start + block] @ v.T
        rows = np.arange(start, min(start + block, len(v)))[:, None]
        upper = np.arange(len(v))[None, :] > rows
        same = labels[start : start + block, None] == labels[None, :]
        impostor, genuine = scores[upper & ~same], scores[upper & same]
        impostors += impostor.size
        genuines += genuine.size
        for i, threshold in enumerate(thresholds):
            hits[i] += int((impostor >= threshold).sum())
            misses[i] += int((genuine < threshold).sum())
    return list(hits / max(impostors, 1)), list(misses / max(genuines, 1)), impostors, genuines
