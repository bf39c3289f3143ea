"""`facelens eval`: the evaluation on synthetic embeddings, the report as rendered by a real headless Chromium,
and (when LFW is present) the real thing on LFW."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from facelens import calibration
from facelens.eval.calibrate import build_table
from facelens.eval.dataset import Dataset, Embeddings, lfw_root
from facelens.eval.demographics import read_group_labels
from facelens.eval.report import evaluate, write_report
from facelens.eval.verification import all_pair_scores

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(`make test` installs it: apt-get install -y chromium)")
FIRST = ["Ada", "Bruno", "Chiara", "Dmitri", "Esme", "Farouk", "Greta", "Hiro", "Ines", "Jomo", "Kasia", "Lars"]
NAMES = [f"{first}_{last}" for last in ("Smith", "Okafor", "Tanaka", "Novak", "Silva") for first in FIRST]


def synthetic(people: int = 60, per: int = 4, noise: float | np.ndarray = 0.5, dim: int = 32,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors: a random direction per identity plus per-image noise (per identity when an array)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    spread = np.repeat(np.broadcast_to(noise, people), per)[:, None]
    vectors = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(people * per, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.repeat(np.arange(people), per)


def image_labels(ids: np.ndarray, names: list[str]) -> list[str]:
    counts: dict[int, int] = {}
    out = []
    for label in ids:
        counts[int(label)] = counts.get(int(label), 0) + 1
        out.append(f"{names[label]}_{counts[int(label)]:04d}")
    return out


@pytest.fixture(scope="module")
def model() -> calibration.Calibration:
    """A calibration measured on independent data drawn the same way."""
    vectors, ids = synthetic(people=300, seed=1)
    return calibration.Calibration.from_dict(build_table(all_pair_scores(vectors, ids), model="synthetic"))


@pytest.fixture(scope="module")
def lenient() -> calibration.Calibration:
    """A calibration far too generous (Similarity 80 at cosine 0.3), so the false-match experiment has hits."""
    return calibration.Calibration.from_dict({
        "model": "lenient", "points": [[-1.0, 0.0], [0.0, -3.0], [0.3, -6.0]],
        "tail": {"cosine_from": 0.3, "log10_fmr": -6.0, "slope": -10.0}, "source": {"dataset": "made up"}})


def write_groups(path: Path, names: list[str], noisy: set[int]) -> Path:
    path.write_text("identity,skin\n" + "".join(f"{n},{'B' if i in noisy else 'A'}\n" for i, n in enumerate(names)))
    return path


def test_well_separated_identities_verify_perfectly(model: calibration.Calibration) -> None:
    vectors, ids = synthetic(noise=0.2)
    summary = evaluate(vectors, ids, NAMES, image_labels(ids, NAMES), model)
    v = summary["verification"]
    assert v["genuine_pairs"] == 60 * 6 and v["impostor_pairs"] == 240 * 239 // 2 - 360
    assert [r["measurable"] for r in v["tar_at_far"]] == [True, True, False, False]
    assert all(r["tar"] >= 0.99 for r in v["tar_at_far"][:2])
    assert v["eer"] < 0.005
    assert all(row["tar"] > 0.99 for row in summary["calibration_check"])

    blurred = evaluate(*synthetic(noise=0.7), NAMES, image_labels(ids, NAMES), model)["verification"]
    assert blurred["eer"] > v["eer"] + 0.01 and blurred["tar_at_far"][0]["tar"] < v["tar_at_far"][0]["tar"]


def test_noisier_group_shows_higher_fnmr_and_the_ratio(tmp_path: Path, model: calibration.Calibration) -> None:
    noisy = set(range(30, 60))
    vectors, ids = synthetic(noise=np.where(np.arange(60) >= 30, 0.8, 0.4))
    groups = read_group_labels(write_groups(tmp_path / "groups.csv", NAMES, noisy), NAMES, ids,
                               [f"{NAMES[i]}/{label}.jpg" for i, label in zip(ids, image_labels(ids, NAMES),
                                                                              strict=True)])
    summary = evaluate(vectors, ids, NAMES, image_labels(ids, NAMES), model, groups=groups, groups_source="csv")
    table = summary["demographics"]["attributes"]["skin"]
    a, b = table["groups"]
    assert (a["group"], b["group"]) == ("A", "B")
    assert a["genuine_pairs"] == b["genuine_pairs"] == 30 * 6
    assert a["impostor_pairs"] == 120 * 119 // 2 - 180  # within-group pairs only
    for at_a, at_b, spread in zip(a["at"], b["at"], table["spread"], strict=True):
        assert at_b["fnmr"] > at_a["fnmr"]
        assert at_b["fnmr_ratio"] == pytest.approx(at_b["fnmr"] / at_a["fnmr"]) and at_a["fnmr_ratio"] == 1.0
        assert spread["fnmr_worst_over_best"] == pytest.approx(at_b["fnmr_ratio"])
        assert at_b["false_non_matches"] == round(at_b["fnmr"] * b["genuine_pairs"])
    assert b["at"][1]["fnmr_ratio"] > 1.5


def test_group_labels_by_image_path_and_bad_header(tmp_path: Path) -> None:
    ids = np.array([0, 0, 1, 1])
    keys = ["Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", "Bob/Bob_0001.jpg", "Bob/Bob_0002.jpg"]
    csv = tmp_path / "images.csv"
    csv.write_text("image,gender,age\nAnn/Ann_0001.jpg,F,30-40\nAnn_0002,F,\nBob_0001.jpg,M,50-60\nnobody.jpg,M,1\n")
    labels = read_group_labels(csv, ["Ann", "Bob"], ids, keys)
    assert labels["gender"].tolist() == ["F", "F", "M", ""]
    assert labels["age"].tolist() == ["30-40", "", "50-60", ""]
    (tmp_path / "bad.csv").write_text("who,gender\nAnn,F\n")
    with pytest.raises(ValueError, match="first column"):
        read_group_labels(tmp_path / "bad.csv", ["Ann", "Bob"], ids, keys)


def test_false_match_counts_equal_a_brute_force_recount(lenient: calibration.Calibration) -> None:
    vectors, ids = synthetic(noise=0.7)
    found = np.ones(len(ids), dtype=bool)
    found[[0, 9, 10]] = False  # person 0 and 2 lose their first image, person 2 keeps two
    summary = evaluate(vectors, ids, NAMES, image_labels(ids, NAMES), lenient, found=found, seed=3)
    experiment = summary["false_match"]
    gallery_people = {NAMES.index(name) for name in experiment["gallery"]}
    assert experiment["gallery_people"] == len(gallery_people) == 42  # 70% of 60 people
    gallery = [next(i for i in range(len(ids)) if ids[i] == p and found[i]) for p in sorted(gallery_people)]
    probes = [i for i in range(len(ids)) if found[i] and ids[i] not in gallery_people]
    assert experiment["probe_images"] == len(probes) and experiment["probe_people"] == 60 - 42
    assert summary["dataset"]["images_without_face"] == 3
    matched_any = 0
    for at in experiment["at"]:
        threshold = lenient.cosine_at(at["similarity"])
        pairs = [(p, g) for p in probes for g in gallery if float(np.dot(vectors[p], vectors[g])) >= threshold]
        assert at["false_match_pairs"] == len(pairs)
        assert at["probes_with_match"] == len({p for p, _ in pairs})
        assert at["probes_with_match_without_suspected_noise"] <= at["probes_with_match"]
        assert at["expected_false_match_pairs"] == pytest.approx(42 * len(probes) * at["fmr"])
        matched_any += at["probes_with_match"]
    assert matched_any > 0  # the lenient scale lets strangers through: the recount is not of zeros
    threshold = lenient.cosine_at(90)
    listed = [(p, g) for p in probes for g in gallery if float(np.dot(vectors[p], vectors[g])) >= threshold]
    assert len(experiment["matches"]) == len(listed)
    assert all(m["probe_person"] != m["gallery_person"] and m["similarity"] >= 90 for m in experiment["matches"])


def _parse(text: str) -> tuple[float, float]:
    """A number as shown (1,234 / 96.94% / ×1.59 / 2.47e-04) and half a unit of its last shown digit."""
    cleaned = text.strip().replace(",", "").replace("×", "")
    scale = 0.01 if cleaned.endswith("%") else 1.0
    cleaned = cleaned.rstrip("%")
    mantissa, _, exponent = cleaned.lower().partition("e")
    digits = len(mantissa.partition(".")[2])
    unit = 10.0 ** (-digits) * 10.0 ** int(exponent or 0) * scale
    return float(cleaned) * scale, 0.5 * unit + 1e-12


def shown_numbers(summary: dict) -> dict[str, float]:
    """Element id in the report -> the summary value it must show."""
    v = summary["verification"]
    out = {"eer": v["eer"], "impostor-pairs": v["impostor_pairs"], "genuine-pairs": v["genuine_pairs"],
           "images": summary["dataset"]["images"], "people": summary["dataset"]["people"],
           "no-face": summary["dataset"]["images_without_face"]}
    for row in v["tar_at_far"]:
        if row["measurable"]:
            key = f"{row['far']:.0e}".replace("+", "")
            out[f"tar-{key}"], out[f"tar-cos-{key}"] = row["tar"], row["cosine"]
    if v["pairs_txt"]:
        out["pairs-accuracy"] = v["pairs_txt"]["accuracy"]
    for row in summary["calibration_check"]:
        s = f"{row['similarity']:.0f}"
        out |= {f"cal-fmr-{s}": row["measured_fmr"], f"cal-n-{s}": row["impostor_pairs_above"],
                f"cal-ratio-{s}": row["ratio"], f"cal-tar-{s}": row["tar"]}
    for row in summary["promise"]["rows"]:  # the promise per group, with the worst ratio per level
        out[f"promise-fmr-{row['group']}-{row['similarity']:.0f}"] = row["fmr"]
    out |= {f"promise-worst-{s}": v for s, v in summary["promise"]["worst_ratio"].items() if v is not None}
    f = summary["false_match"]
    out |= {"fm-gallery": f["gallery_people"], "fm-probe-images": f["probe_images"],
            "fm-probe-people": f["probe_people"]}
    for at in f["at"]:
        s = f"{at['similarity']:.0f}"
        out |= {f"fm-probes-{s}": at["probes_with_match"], f"fm-pairs-{s}": at["false_match_pairs"],
                f"fm-expected-{s}": at["expected_false_match_pairs"],
                f"fm-expected-probes-{s}": at["expected_probes_with_match"],
                f"fm-probes-clean-{s}": at["probes_with_match_without_suspected_noise"]}
    for attribute, table in summary["demographics"]["attributes"].items():
        for group in table["groups"]:
            for at in group["at"]:
                key = f"{attribute}-{group['group']}-{at['similarity']:.0f}"
                out |= {f"dem-fm-{key}": at["false_matches"], f"dem-fmr-{key}": at["fmr"],
                        f"dem-fnmr-{key}": at["fnmr"]}
        for entry in table["female_over_male"] or []:
            out[f"fm-fmr-{entry['similarity']:.0f}"] = entry["fmr"]
            out[f"fm-fnmr-{entry['similarity']:.0f}"] = entry["fnmr"]
    return out


def assert_page_matches(page: str, summary: dict) -> None:
    """Every key number of the page (by element id) equals the summary's, to the digits shown."""
    cells = dict(re.findall(r'id=["\']([^"\']+)["\'][^>]*>([^<]*)<', page))
    expected = shown_numbers(summary)
    assert len(expected) > 30
    for ident, value in expected.items():
        assert ident in cells, f"{ident} missing from the page"
        if value is None:
            assert cells[ident] == "–"
            continue
        shown, tolerance = _parse(cells[ident])
        assert shown == pytest.approx(value, abs=tolerance), f"{ident}: page {cells[ident]!r}, JSON {value}"


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def check_rendered(html: Path, summary: dict, tmp_path: Path) -> None:
    """Chromium renders the page to a non-blank PNG with plots, and its DOM shows the summary's numbers."""
    from PIL import Image

    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1200,4000", html.resolve().as_uri())
    assert screenshot.is_file() and screenshot.stat().st_size > 50_000
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (4000, 1200)
    assert pixels.std() > 20  # text, tables and plots, not a blank page
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 80  # curves are coloured, text and tables are not
    assert colourful.sum() > 2_000
    dom = chromium("--dump-dom", html.resolve().as_uri()).stdout
    assert "<h1>FaceLens model card" in dom
    assert "<script" not in dom.lower()
    sources = re.findall(r'src="([^"]*)"', dom)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert_page_matches(dom, summary)


def test_json_and_html_agree(tmp_path: Path, lenient: calibration.Calibration) -> None:
    vectors, ids = synthetic(noise=0.7)
    groups = {"skin": np.where(ids >= 30, "B", "A")}
    summary = evaluate(vectors, ids, NAMES, image_labels(ids, NAMES), lenient, groups=groups, groups_source="t")
    json_path, html_path = write_report(summary, tmp_path / "out")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(summary))
    assert_page_matches(html_path.read_text(), summary)


@needs_chromium
def test_chromium_renders_the_report(tmp_path: Path, lenient: calibration.Calibration) -> None:
    """`facelens eval`'s report step (its own command-line arguments), given synthetic vectors of a folder of
    (empty) images and a lenient calibration in place of the embedding step and the shipped table."""
    from facelens import cli
    from facelens.eval.report import report

    vectors, ids = synthetic(noise=0.7)
    root = tmp_path / "faces"
    for name, label in zip((NAMES[i] for i in ids), image_labels(ids, NAMES), strict=True):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / f"{label}.jpg").write_bytes(b"")
    folder = Dataset.from_folder(root)
    assert (folder.identities == ids).all()
    found = np.ones(len(ids), dtype=bool)
    found[5] = False
    embedded = SimpleNamespace(dataset=folder, analyzer=SimpleNamespace(model_version="lenient", flip=False),
                               embeddings=Embeddings(vectors, vectors, found, found.astype(np.float32)),
                               vectors=vectors)
    labels = tmp_path / "labels.csv"
    labels.write_text("image,sex\n" + "".join(f"{NAMES[i]}/{label}.jpg,{'F' if i % 2 else 'M'}\n"
                                             for i, label in zip(ids, image_labels(ids, NAMES), strict=True)))
    out = tmp_path / "report"
    args = cli.build_parser().parse_args(["eval", "--dataset", str(root), "--labels", str(labels), "--out", str(out)])
    assert report(args, embedded, lambda _model: lenient) == 0  # type: ignore[arg-type]
    summary = json.loads((out / "report.json").read_text())
    assert summary["dataset"]["images_without_face"] == 1
    assert summary["demographics"]["attributes"]["sex"]["female_over_male"] is not None
    assert summary["meta"]["date"] and summary["meta"]["machine"]
    assert summary["false_match"]["at"][0]["probes_with_match"] > 0
    check_rendered(out / "report.html", summary, tmp_path)


DOCS = Path(__file__).resolve().parents[2] / "docs"


@needs_chromium
def test_the_shipped_lfw_model_card_as_rendered(tmp_path: Path) -> None:
    """docs/model-card-lfw.html (the LFW report) in Chromium shows exactly the numbers of its JSON summary."""
    summary = json.loads((DOCS / "model-card-lfw.json").read_text())
    assert summary["dataset"]["images"] == 13_233 and summary["dataset"]["people"] == 5_749
    assert summary["false_match"]["gallery_people"] >= 4_000 and summary["false_match"]["probe_people"] >= 500
    assert (DOCS / "model-card-lfw.html").stat().st_size < 1_500_000
    check_rendered(DOCS / "model-card-lfw.html", summary, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (lfw_root() / "pairs.txt").is_file() or os.environ.get("FACELENS_EVAL_LFW") != "1",
                    reason="opt-in (FACELENS_EVAL_LFW=1, LFW present): re-runs the LFW evaluation, 10-17 min cold")
@needs_chromium
def test_lfw_report_as_rendered(tmp_path: Path) -> None:
    """The real thing: LFW through the default pipeline, rendered, and the same as the shipped card."""
    from facelens import cli

    out = tmp_path / "lfw"
    assert cli.main(["eval", "--dataset", str(lfw_root()), "--out", str(out)]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary["dataset"]["images"] == 13_233 and summary["dataset"]["people"] == 5_749
    assert summary["verification"]["impostor_pairs"] > 80_000_000
    assert all(row["measurable"] for row in summary["verification"]["tar_at_far"])
    assert summary["verification"]["pairs_txt"]["accuracy"] > 0.9
    experiment = summary["false_match"]
    assert experiment["gallery_people"] >= 4_000 and experiment["probe_people"] >= 500
    assert {g["group"] for g in summary["demographics"]["attributes"]["gender"]["groups"]} == {"F", "M"}
    names = {frozenset(entry["names"]) for entry in summary["label_noise"]}
    assert frozenset(("Choi_Sung-hong", "Sung_Hong_Choi")) in names
    assert (out / "report.html").stat().st_size < 1_500_000
    check_rendered(out / "report.html", summary, tmp_path)
    shipped = json.loads((DOCS / "model-card-lfw.json").read_text())
    for section in ("verification", "calibration_check", "false_match"):
        assert summary[section] == shipped[section]  # the published card is what this code measures
