"""Calibrated Similarity: table building on synthetic scores, the decibel scale, inversion, label noise."""

from __future__ import annotations

import numpy as np
import pytest

from facelens import calibration
from facelens.eval.calibrate import build_table, fit_tail, same_name
from facelens.eval.verification import all_pair_scores, best_threshold, eer, tenfold_accuracy


def synthetic(identities: int = 300, per: int = 4, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors clustered per identity: same-person pairs score high, others near 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, dim))
    vectors = np.repeat(centres, per, axis=0) + 0.6 * rng.normal(size=(identities * per, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.repeat(np.arange(identities), per)


@pytest.fixture(scope="module")
def table() -> dict:
    vectors, ids = synthetic()
    return build_table(all_pair_scores(vectors, ids), model="synthetic")


def test_all_pairs_are_counted_once() -> None:
    vectors, ids = synthetic(identities=20, per=3)
    scores = all_pair_scores(vectors, ids, block=7)
    n = len(vectors)
    assert scores.impostor_count + len(scores.genuine) == n * (n - 1) // 2
    assert len(scores.genuine) == 20 * 3
    full = vectors @ vectors.T
    a, b = scores.top_pairs[0]
    assert ids[a] != ids[b] and full[a, b] == pytest.approx(scores.top_scores[0], abs=1e-6)


def test_similarity_is_the_decibel_scale_of_the_measured_fmr(table: dict) -> None:
    model = calibration.Calibration.from_dict(table)
    vectors, ids = synthetic()
    scores = all_pair_scores(vectors, ids)
    for cosine, log_fmr in table["points"][::40]:
        measured = scores.fmr_at(cosine)
        assert np.log10(measured) == pytest.approx(log_fmr, abs=0.02)
        assert float(model.similarity(cosine)) == pytest.approx(20 - 10 * log_fmr, abs=0.01)


def test_curve_is_monotone_and_tail_keeps_falling(table: dict) -> None:
    model = calibration.Calibration.from_dict(table)
    grid = np.linspace(-1, 1, 2001)
    similarity = model.similarity(grid)
    assert (np.diff(similarity) >= -1e-9).all()
    beyond = np.linspace(model.tail_from, 1.0, 50)
    assert (np.diff(model.log_fmr(beyond)) < 0).all()
    assert model.tail_slope < 0


def test_cosine_at_inverts_similarity(table: dict) -> None:
    model = calibration.Calibration.from_dict(table)
    for target in (30, 45, 60, 75, 90):
        cosine = model.cosine_at(target)
        assert float(model.similarity(cosine)) >= target - 1e-6
        assert float(model.similarity(cosine - 1e-4)) < target + 1e-3


def test_fmr_similarity_conversions() -> None:
    assert calibration.fmr_from_similarity(80) == pytest.approx(1e-6)
    assert float(calibration.similarity_from_fmr(1e-3)) == pytest.approx(50)
    assert float(calibration.similarity_from_fmr(1.0)) == pytest.approx(20)


def test_outliers_far_above_the_tail_are_set_aside() -> None:
    rng = np.random.default_rng(3)
    tail = np.sort(0.5 + rng.exponential(0.03, size=200))[::-1]
    top = np.concatenate([[0.99, 0.97], tail])  # two 'impostor' pairs that are really one person
    _, beta, noise = fit_tail(top, k=50)
    assert noise[:2].all() and not noise[2:].any()
    assert beta == pytest.approx(0.03, rel=0.5)


def test_name_spellings_are_recognised() -> None:
    assert same_name("Choi_Sung-hong", "Sung_Hong_Choi")
    assert same_name("Hasan_Wirayuda", "Hassan_Wirajuda")
    assert not same_name("George_W_Bush", "Laura_Bush")


def test_label_noise_pairs_are_excluded_from_the_counts() -> None:
    vectors, ids = synthetic(identities=100, per=3)
    vectors[3] = vectors[0]  # identity 1's first image is identity 0's photo, filed under another name
    labels = [f"Person_{i // 3}_{i % 3 + 1:04d}" for i in range(len(vectors))]
    scores = all_pair_scores(vectors, ids)
    table = build_table(scores, "synthetic", labels)
    noisy = {tuple(entry["pair"]) for entry in table["source"]["suspected_label_noise"]}
    assert ("Person_0_0001", "Person_1_0001") in noisy
    assert table["source"]["impostor_pairs"] == scores.impostor_count - len(noisy)


def test_table_round_trips_through_json(table: dict, tmp_path) -> None:
    import json

    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    loaded = calibration.Calibration.load(path)
    assert loaded.model == "synthetic"
    original = calibration.Calibration.from_dict(table)
    assert float(loaded.similarity(0.5)) == pytest.approx(float(original.similarity(0.5)))


def test_shipped_table_exists_for_the_default_model() -> None:
    model = calibration.for_model("sface-2021dec-int8bq")
    assert model.source["source"]["impostor_pairs"] > 80_000_000
    assert 0.3 < model.cosine_at(50) < model.cosine_at(80) < model.cosine_at(90) < 1.0


def test_missing_table_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="facelens calibrate"):
        calibration.for_model("no-such-model")


def test_tenfold_accuracy_and_eer_on_hand_made_pairs() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3] * 10)
    same = np.array([True, True, True, False, False, False] * 10)
    folds = np.repeat(np.arange(10), 6)
    assert tenfold_accuracy(scores, same, folds) == (1.0, 0.0)
    assert 0.3 < best_threshold(scores, same) < 0.7
    assert eer(np.array([0.9, 0.8, 0.1]), np.array([0.2, 0.3, 0.85])) == pytest.approx(1 / 3)
