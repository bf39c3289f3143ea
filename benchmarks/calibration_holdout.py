"""Does the conservative calibration hold on people it was not fitted on? LFW's identities are split in two
halves (by identity, so no person is in both); the conservative and the pooled tables are built on one half,
exactly as `facelens calibrate` builds them, and each group's FMR is measured on the other half at each level.
Both directions are run. The ratio measured / promised is the table's honesty on new people (<= 1: kept).

    .venv/bin/python benchmarks/calibration_holdout.py [--dataset DIR]
"""

from __future__ import annotations

import numpy as np

from facelens.calibration import Calibration
from facelens.config import ServerSettings
from facelens.eval import conservative
from facelens.eval.calibrate import build_table, conservative_table
from facelens.eval.dataset import benchmark_dataset, centred, embed_with_pipeline, lfw_genders
from facelens.eval.verification import all_pair_scores
from facelens.service import default_analyzer

LEVELS = (50, 60, 70, 80)


def tables(vectors: np.ndarray, identities: np.ndarray, valid: np.ndarray, groups: dict, labels: list[str],
           model: str) -> tuple[Calibration, Calibration]:
    scores = all_pair_scores(vectors, identities, valid=valid)
    pooled = build_table(scores, model, labels)
    return (Calibration.from_dict(conservative_table(vectors, identities, valid, groups, labels, pooled,
                                                     scores.genuine)), Calibration.from_dict(pooled))


def measured(vectors: np.ndarray, identities: np.ndarray, valid: np.ndarray, groups: dict,
             scale: Calibration) -> list[dict]:
    floor = min(scale.cosine_at(level) for level in LEVELS) - 0.01
    high = conservative.high_impostor_pairs(vectors, identities, valid, floor)
    curves = conservative.group_curves(high, identities, valid, groups, replicates=100)
    return conservative.promise_check(curves, {level: scale.cosine_at(level) for level in LEVELS})


def main() -> int:
    root = benchmark_dataset(__doc__)
    if root is None:
        return 0
    embedded = embed_with_pipeline(root, default_analyzer(ServerSettings.from_env()))
    dataset = embedded.dataset
    valid = embedded.embeddings.found & centred(embedded)
    groups = {"gender": lfw_genders(root, dataset.index_of())}
    labels = [path.stem for path in dataset.paths]
    model = embedded.analyzer.model_version
    halves = dataset.identities % 2
    print("| fitted on | measured on | table | group | " + " | ".join(f"FMR/promise at {s}" for s in LEVELS) + " |")
    print("|---|---|---|---|" + "---:|" * len(LEVELS))
    for fit in (0, 1):
        cons, pooled = tables(embedded.vectors, dataset.identities, valid & (halves == fit), groups, labels, model)
        for name, scale in (("conservative", cons), ("pooled", pooled)):
            rows = measured(embedded.vectors, dataset.identities, valid & (halves != fit), groups, scale)
            for group in dict.fromkeys(r["group"] for r in rows):
                cells = [f"{r['ratio']:.2f} ({r['false_matches']})" for r in rows if r["group"] == group]
                print(f"| half {fit} | half {1 - fit} | {name} | {group} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
