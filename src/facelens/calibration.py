"""Cosine similarity -> FaceLens Similarity (0..100), a decibel scale of the measured false-match rate.

`Similarity = 20 + 10 * -log10(FMR)`: 50 means one false match in 1,000 different-person comparisons, 80 one in
a million, 90 one in ten million. The score->FMR curve of each recognizer is measured (`facelens calibrate`,
every different-person pair of a data set) and shipped as `facelens/data/calibration-<model>.json`:

- `points`: `[cosine, log10 FMR]` pairs, cosine increasing, from the empirical impostor distribution;
- `tail`: beyond the last point (where too few impostor pairs remain to count), an exponential tail fitted to
  the highest impostor scores, `log10 FMR = log10_fmr + slope * (cosine - cosine_from)`;
- `kind`: `conservative` (the default: the promise is a 95% upper bound of every measured group's FMR,
  `facelens.eval.conservative`), `pooled` (the FMR of all different-person pairs pooled), or `site` (a
  conservative table measured on an operator's own photos, `facelens calibrate --output`);
- `supported_similarity`: the highest Similarity the data behind the table can support (a site table that
  cannot support the server's MinSearchSimilarity is refused at start).

Which table is in force is `FACELENS_CALIBRATION` (`conservative`, `pooled` or a table's path); its `id`
(kind and content hash) is in every audit record of a comparison or search.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

SIMILARITY_OFFSET = 20.0
SIMILARITY_PER_DECADE = 10.0


def similarity_from_fmr(fmr: np.ndarray | float) -> np.ndarray:
    """The decibel scale itself, clipped to Rekognition's 0..100."""
    log_fmr = np.log10(np.clip(fmr, 1e-300, 1.0))
    return np.clip(SIMILARITY_OFFSET - SIMILARITY_PER_DECADE * log_fmr, 0.0, 100.0)


def fmr_from_similarity(similarity: float) -> float:
    """The false-match rate that a Similarity value stands for."""
    return 10.0 ** (-(similarity - SIMILARITY_OFFSET) / SIMILARITY_PER_DECADE)


@dataclass(frozen=True)
class Calibration:
    """A recognizer's measured score->FMR curve."""

    model: str
    cosines: np.ndarray  # increasing
    log10_fmr: np.ndarray  # non-increasing, <= 0
    tail_from: float
    tail_log10_fmr: float
    tail_slope: float  # log10 FMR per unit cosine beyond tail_from (negative)
    source: dict

    @classmethod
    def from_dict(cls, table: dict) -> Calibration:
        points = np.asarray(table["points"], dtype=np.float64)
        tail = table["tail"]
        return cls(
            model=table["model"],
            cosines=points[:, 0],
            log10_fmr=np.minimum.accumulate(np.minimum(points[:, 1], 0.0)),
            tail_from=float(tail["cosine_from"]),
            tail_log10_fmr=float(tail["log10_fmr"]),
            tail_slope=float(tail["slope"]),
            source=table,
        )

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    @property
    def kind(self) -> str:
        return str(self.source.get("kind", "pooled"))

    @property
    def id(self) -> str:
        """`<kind>:<model>:<first 12 hex of the table's SHA-256>`: which table answered, as the audit log says."""
        digest = hashlib.sha256(json.dumps(self.source, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.kind}:{self.model}:{digest}"

    @property
    def supported_similarity(self) -> float:
        return float(self.source.get("supported_similarity", 100.0))

    def log_fmr(self, cosine: np.ndarray | float) -> np.ndarray:
        """log10 of the false-match rate at these cosine scores."""
        x = np.asarray(cosine, dtype=np.float64)
        inside = np.interp(x, self.cosines, self.log10_fmr, left=0.0, right=self.log10_fmr[-1])
        tail = self.tail_log10_fmr + self.tail_slope * (x - self.tail_from)
        return np.where(x > self.tail_from, np.minimum(tail, inside), inside)

    def fmr(self, cosine: np.ndarray | float) -> np.ndarray:
        return 10.0 ** self.log_fmr(cosine)

    def similarity(self, cosine: np.ndarray | float) -> np.ndarray:
        """Similarity 0..100 for cosine scores (array in, array out)."""
        return np.clip(SIMILARITY_OFFSET - SIMILARITY_PER_DECADE * self.log_fmr(cosine), 0.0, 100.0)

    def cosine_at(self, similarity: float) -> float:
        """The smallest cosine whose Similarity reaches `similarity` (threshold conversion for searches)."""
        low, high = -1.0, 1.0
        if float(self.similarity(high)) < similarity:
            return 1.0 + 1e-9  # unreachable: no cosine qualifies
        for _ in range(60):  # the curve is monotone: bisect
            middle = (low + high) / 2
            if float(self.similarity(middle)) >= similarity:
                high = middle
            else:
                low = middle
        return high


CONSERVATIVE, POOLED = "conservative", "pooled"


def table_path(model: str, kind: str = CONSERVATIVE) -> Path:
    """Where the shipped table of a model lives inside the package (`kind`: conservative or pooled)."""
    suffix = "" if kind == CONSERVATIVE else f"-{kind}"
    return Path(str(resources.files("facelens") / "data" / f"calibration-{model}{suffix}.json"))


@cache
def for_model(model: str, kind: str = CONSERVATIVE) -> Calibration:
    """The shipped calibration of a recognizer; a clear error when it has none yet."""
    path = table_path(model, kind)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {kind} calibration table for face model {model!r}; run `facelens calibrate --dataset DIR` to "
            "make one"
        )
    return Calibration.load(path)


def chooser(choice: str | None, floor: float | None = None) -> Callable[[str], Calibration]:
    """The `calibration_for(model)` of a FACELENS_CALIBRATION value: None or `conservative` (the shipped
    default), `pooled`, or the path of a table (`facelens calibrate --output`), which must be of that model. A
    table whose data support no Similarity up to `floor` (the searches' floor) is a ValueError saying so."""
    if choice in (None, "", CONSERVATIVE, POOLED):
        kind = choice or CONSERVATIVE
        return lambda model: for_model(model, kind)
    table = Calibration.load(choice)
    if floor is not None and table.supported_similarity < floor:
        raise ValueError(f"its data support Similarity up to {table.supported_similarity:g}, below "
                         f"MinSearchSimilarity {floor:g}")

    def site(model: str) -> Calibration:
        if table.model != model:
            raise ValueError(f"calibration table {choice} is for face model {table.model}, not {model}")
        return table

    return site


def describe(similarity: float) -> str:
    """Plain-language reading of a Similarity value."""
    fmr = fmr_from_similarity(similarity)
    return f"Similarity {similarity:.0f}: about 1 false match in {10 ** round(-math.log10(fmr)):,} comparisons"
