"""The conservative calibration (issue 14) on synthetic people in two groups, one of which looks more alike: the
pooled table breaks its promise for that group, the conservative one keeps it for both; a site calibration is
used by the searches, named in the audit log and the policy, and refused when its data are too few."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelens.accountability.policy import Policy
from facelens.calibration import Calibration
from facelens.config import ConfigError, ServerSettings
from facelens.eval import conservative
from facelens.eval.calibrate import build_table, conservative_table, site_refusal
from facelens.eval.verification import all_pair_scores
from facelens.service import build
from tests.collections_fakes import DIM, ScriptedAnalyzer, unit

LEVELS = (40, 45, 50, 55)


def people(count: int, per: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, identity per row, group per row): group B's people are drawn around a shared direction,
    so two of them look more alike than two of group A."""
    rng = np.random.default_rng(seed)
    group = np.where(np.arange(count) % 3 == 0, "B", "A")
    shared = unit(rng.standard_normal(DIM))[0]
    centres = unit(rng.standard_normal((count, DIM)) + np.where(group == "B", 6.0, 0.0)[:, None] * shared / 4)
    ids = np.repeat(np.arange(count), per)
    vectors = unit(centres[ids] + 0.06 * rng.standard_normal((len(ids), DIM)))
    return vectors, ids, group[ids]


def tables(vectors: np.ndarray, ids: np.ndarray, groups: np.ndarray, model: str = "synthetic") -> tuple[dict, dict]:
    valid = np.ones(len(ids), bool)
    scores = all_pair_scores(vectors, ids, valid=valid)
    pooled = build_table(scores, model)
    return pooled, conservative_table(vectors, ids, valid, {"group": groups}, None, pooled, scores.genuine,
                                      kind="site", replicates=100)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict]:
    vectors, ids, groups = people(900)
    return (vectors, ids, groups, *tables(vectors, ids, groups))


def measured(vectors: np.ndarray, ids: np.ndarray, groups: np.ndarray, scale: Calibration) -> dict[tuple, float]:
    """Measured FMR / promised FMR per (group, level), counted directly over every same-group impostor pair."""
    out = {}
    for label in ("A", "B"):
        members = groups == label
        v, i = vectors[members], ids[members]
        scores = v @ v.T
        upper = np.triu(np.ones_like(scores, bool), 1) & (i[:, None] != i[None, :])
        impostors = scores[upper]
        for level in LEVELS:
            promised = 10 ** (-(level - 20) / 10)
            out[(label, level)] = float((impostors >= scale.cosine_at(level)).mean()) / promised
    return out


def test_the_pooled_promise_fails_the_look_alike_group_and_the_conservative_one_holds(synthetic) -> None:
    vectors, ids, groups, pooled, table = synthetic
    before = measured(vectors, ids, groups, Calibration.from_dict(pooled))
    after = measured(vectors, ids, groups, Calibration.from_dict(table))
    assert max(before[("B", level)] for level in LEVELS) > 1.5  # pooled over both groups: B matches more often
    assert all(ratio <= 1.0 for ratio in after.values()), after
    checks = {(row["group"], row["similarity"]): row for row in table["promise_check"]}
    assert checks[("group=B", 50)]["interval"][0] <= checks[("group=B", 50)]["fmr"] <= \
        checks[("group=B", 50)]["interval"][1]
    assert table["source"]["bootstrap"] == {"replicates": 100, "over": "identities"}
    assert set(table["source"]["groups"]) == {"all", "group=A", "group=B"}


def test_the_bootstrap_is_over_identities() -> None:
    """Resampling people, not pairs: one person with many look-alike pairs widens the interval."""
    rng = np.random.default_rng(1)
    ids = np.repeat(np.arange(200), 2)
    scores = np.concatenate([np.full(40, 0.9), np.full(10, 0.9)])
    first = np.concatenate([np.zeros(40, int), 2 * np.arange(1, 11)])  # person 0's image in 40 of the 50 pairs
    second = np.concatenate([2 * np.arange(1, 41) + 1, 2 * np.arange(11, 21) + 1])
    high = conservative.HighPairs(0.0, scores.astype(np.float32), first.astype(np.int32), second.astype(np.int32))
    curve = conservative.group_curve("x", high, ids, np.ones(400, bool), np.array([0.0, 0.5, 0.95]), rng,
                                     replicates=400)
    assert curve is not None and curve.counts[1] == 50
    # with person 0 drawn 0, 1 or 2+ times the count swings by 40: far more than Poisson noise on 50 pairs
    assert curve.upper_one_sided[1] / curve.point[1] > 1.8


def test_a_site_calibration_is_used_named_and_audited(tmp_path: Path, synthetic) -> None:
    vectors, _, _, _, table = synthetic
    assert table["kind"] == "site" and site_refusal(table, min_similarity=40) is None
    path = tmp_path / "site.json"
    path.write_text(json.dumps(table))
    site = Calibration.load(path)
    settings = ServerSettings(data_dir=tmp_path / "data", calibration=str(path),
                              policy=Policy(min_search_similarity=40))
    backend = build(settings, analyzer=ScriptedAnalyzer())
    backend.call("CreateCollection", {"CollectionId": "c"})
    face_ids = backend.collections.add_embeddings("c", vectors[:30]) if backend.collections else []
    found = backend.call("SearchFaces", {"CollectionId": "c", "FaceId": face_ids[0], "FaceMatchThreshold": 40})
    by_id = dict(zip(face_ids, vectors[:30], strict=True))
    for match in found["FaceMatches"]:  # the site table turned these cosines into Similarity
        cosine = float(by_id[face_ids[0]] @ by_id[match["Face"]["FaceId"]])
        assert match["Similarity"] == pytest.approx(float(site.similarity(cosine)), abs=1e-3)
    assert site.cosine_at(40) != pytest.approx(0.3, abs=0.01)  # not the synthetic default scale's threshold
    record = json.loads(backend.call("ListAuditRecords", {"CollectionId": "c"})["AuditRecords"][-1]["Record"])
    assert record["operation"] == "SearchFaces" and record["calibration"] == site.id
    assert site.id.startswith("site:synthetic:")
    assert backend.call("GetCollectionPolicy", {"CollectionId": "c"})["Calibration"] == site.id
    backend.close()


def test_a_site_calibration_from_too_little_data_is_refused(tmp_path: Path, synthetic) -> None:
    _, _, _, _, table = synthetic
    assert "below the searches' floor of 80" in site_refusal(table, min_similarity=80)
    path = tmp_path / "site.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ConfigError, match="below MinSearchSimilarity 80"):
        build(ServerSettings(data_dir=tmp_path / "data", calibration=str(path)), analyzer=ScriptedAnalyzer())
    vectors, ids, groups = people(60, seed=2)
    _, few = tables(vectors, ids, groups)
    assert "built from 60 identities" in site_refusal(few, min_similarity=40)


def test_facelens_calibrate_refuses_a_site_table_of_too_few_people(tmp_path: Path, astronaut, cameraman,
                                                                   capsys) -> None:
    from facelens.cli import main
    from tests.conftest import encode

    for name, pixels in (("eileen", astronaut), ("cameraman", cameraman)):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i, image in enumerate((pixels, pixels[:, ::-1])):
            (tmp_path / "photos" / name / f"{i}.jpg").write_bytes(encode(np.ascontiguousarray(image)))
    output = tmp_path / "site.json"
    code = main(["calibrate", "--dataset", str(tmp_path / "photos"), "--output", str(output)])
    assert code == 2 and not output.exists()
    assert "calibration refused: built from 2 identities" in capsys.readouterr().out


def test_aligned_crops_are_embedded_as_they_are(tmp_path: Path, astronaut_crop, monkeypatch) -> None:
    """--aligned: a set that ships 112x112 crops (another aligner's template) is embedded without detecting."""
    from facelens.eval.dataset import embed_cli_dataset
    from facelens.pipeline import default_analyzer
    from tests.conftest import encode

    for name, crop in (("eileen", astronaut_crop), ("mirror", np.ascontiguousarray(astronaut_crop[:, ::-1]))):
        (tmp_path / "crops" / name).mkdir(parents=True)
        (tmp_path / "crops" / name / "0.png").write_bytes(encode(crop, "PNG"))
    monkeypatch.setenv("FACELENS_CACHE", str(tmp_path / "cache"))
    embedded = embed_cli_dataset(tmp_path / "crops", aligned=True)
    assert embedded is not None and embedded.embeddings.found.all()
    expected = default_analyzer().embedder.embed([astronaut_crop])[0]
    assert np.allclose(embedded.vectors[0], expected, atol=1e-6)  # the crop itself, not a re-detected face
