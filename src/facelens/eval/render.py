"""HTML rendering of an evaluation summary (`facelens.eval.report.evaluate`): every number shown is read from the
summary dict, plots are drawn with matplotlib (Agg) from its curves and embedded as base64 PNG data URIs, and the
page loads nothing from anywhere (no scripts, no external files, no face images)."""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

DPI = 80


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def sci(value: float | None) -> str:
    return "–" if value is None else f"{value:.2e}"


def num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def est(value: float | None) -> str:
    """An expected count: whole numbers from 100, one decimal from 1, two significant digits below."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"×{value:.2f}"


def _cell(text: str, ident: str | None = None, cls: str = "n") -> str:
    attributes = (f' id="{escape(ident)}"' if ident else "") + (f' class="{cls}"' if cls else "")
    return f"<td{attributes}>{escape(text)}</td>"


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _key(value: float) -> str:
    return f"{value:.0e}".replace("+", "")


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(summary: dict) -> dict[str, str]:
    """The report's figures as PNG data URIs, drawn only from the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = summary["curves"]
    fmr, fnmr = np.asarray(curve["fmr"]), np.asarray(curve["fnmr"])
    keep = fmr > 0
    out = {}
    points = [r for r in summary["verification"]["tar_at_far"] if r["measurable"]]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.semilogx(fmr[keep], 1 - fnmr[keep], color="C0")
    axis.scatter([r["far"] for r in points], [r["tar"] for r in points], color="C3", zorder=3, label="TAR at FAR")
    axis.set(xlabel="false accept rate (FAR = FMR)", ylabel="true accept rate (TAR)", title="ROC, all pairs")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="lower right")
    out["roc"] = _png(figure)

    figure, axis = plt.subplots(figsize=(6, 4))
    both = keep & (fnmr > 0)
    axis.loglog(fmr[both], fnmr[both], color="C1")
    eer = summary["verification"]["eer"]
    axis.scatter([eer], [eer], color="C3", zorder=3, label=f"EER {pct(eer)}")
    axis.set(xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)", title="DET, all pairs")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="upper right")
    out["det"] = _png(figure)

    histogram = curve["histogram"]
    figure, axis = plt.subplots(figsize=(6, 4))
    edges = histogram["from"] + histogram["width"] * np.arange(len(histogram["impostor"]) + 1)
    for key, color, label in (("impostor", "C0", "different-person pairs"), ("genuine", "C2", "same-person pairs")):
        counts = np.asarray(histogram[key], dtype=float)
        axis.stairs(counts / max(counts.sum(), 1), edges, color=color, label=label)
    for i, row in enumerate(summary["calibration_check"]):
        axis.axvline(row["cosine"], color="gray", lw=0.7, ls="--")
        axis.text(row["cosine"], 0.92 - 0.06 * i, f" {row['similarity']:.0f}", transform=axis.get_xaxis_transform(),
                  fontsize=7)
    axis.set_yscale("log")
    axis.set(xlabel="cosine score (dashed: Similarity thresholds)", ylabel="fraction of pairs per bin",
             title="Score distributions")
    axis.legend(loc="upper left", fontsize=8)
    out["scores"] = _png(figure)

    check = summary["calibration_check"]
    figure, axis = plt.subplots(figsize=(6, 4))
    s = [r["similarity"] for r in check]
    axis.semilogy(s, [r["promised_fmr"] for r in check], "k--", label="promised by the calibration")
    measured = [(r["similarity"], r["measured_fmr"]) for r in check if r["measured_fmr"] > 0]
    if measured:
        axis.semilogy(*zip(*measured, strict=True), "o-", color="C3", label="measured, all pairs as labelled")
    for name, table in summary["demographics"]["attributes"].items():
        for row in table["groups"]:
            values = [(a["similarity"], a["fmr"]) for a in row["at"] if a["fmr"]]
            if values:
                axis.semilogy(*zip(*values, strict=True), ".:", label=f"{name} {row['group']} (within group)")
    axis.set(xlabel="Similarity threshold", ylabel="false match rate", title="Calibration check")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    out["calibration"] = _png(figure)
    return out


def _verification(summary: dict, images: dict[str, str]) -> str:
    v = summary["verification"]
    rows = []
    for r in v["tar_at_far"]:
        key = _key(r["far"])
        if r["measurable"]:
            rows.append(f"<tr><td>{sci(r['far'])}</td>{_cell(pct(r['tar']), f'tar-{key}')}"
                        f"{_cell(num(r['cosine'], 3), f'tar-cos-{key}')}{_cell(num(r['impostor_pairs_allowed']))}</tr>")
        else:
            rows.append(f"<tr><td>{sci(r['far'])}</td><td colspan=3>not measurable: fewer than 1 / FAR "
                        f"different-person pairs</td></tr>")
    text = (f"<p>Over <b id='impostor-pairs'>{num(v['impostor_pairs'])}</b> different-person and "
            f"<b id='genuine-pairs'>{num(v['genuine_pairs'])}</b> same-person pairs (every pair of images with a "
            f"detected face). Equal error rate <b id='eer'>{pct(v['eer'], 3)}</b> at cosine "
            f"{num(v['eer_cosine'], 3)}.</p>")
    table = _table(["FAR (= FMR)", "TAR", "cosine threshold", "different-person pairs allowed above"], rows)
    pairs = v["pairs_txt"]
    if pairs:
        text += (f"<p>pairs.txt protocol ({num(pairs['pairs'])} pairs, {pairs['folds']}-fold, threshold chosen on "
                 f"the other folds; an image without a detected face scores 0): accuracy <b id='pairs-accuracy'>"
                 f"{pct(pairs['accuracy'])}</b> ± {pct(pairs['std'])}.</p>")
    return (f"<h2>1. Verification</h2>{text}{table}<div class=plots><img alt='ROC' src='{images['roc']}'>"
            f"<img alt='DET' src='{images['det']}'></div>"
            f"<h2>2. Score distributions</h2><img alt='score distributions' src='{images['scores']}'>")


def _calibration(summary: dict, images: dict[str, str]) -> str:
    rows = []
    for r in summary["calibration_check"]:
        s = f"{r['similarity']:.0f}"
        rows.append(f"<tr><td>{s}</td>{_cell(num(r['cosine'], 3))}{_cell(sci(r['promised_fmr']))}"
                    f"{_cell(sci(r['measured_fmr']), f'cal-fmr-{s}')}"
                    f"{_cell(num(r['impostor_pairs_above']), f'cal-n-{s}')}"
                    f"{_cell(est(r['expected_pairs_above']))}{_cell(ratio(r['ratio']), f'cal-ratio-{s}')}"
                    f"{_cell(sci(r['measured_fmr_without_noise']))}{_cell(pct(r['tar']), f'cal-tar-{s}')}</tr>")
    n = summary["verification"]["impostor_pairs"]
    return ("<h2>3. Calibration check</h2><p>Each Similarity promises a false-match rate, 10<sup>-(s-20)/10</sup>. "
            f"Measured here over all {num(n)} different-person pairs as labelled (and without the suspected label "
            "noise of section 6); TAR is the fraction of same-person pairs kept.</p>"
            + _table(["Similarity", "cosine", "promised FMR", "measured FMR", "pairs above", "pairs promised",
                      "measured / promised", "FMR without suspected noise", "TAR"], rows)
            + f"<img alt='calibration check' src='{images['calibration']}'>")


def _promise(summary: dict) -> str:
    """Per group: FMR against the promise with its interval; the worst ratio per level."""
    block = summary.get("promise")
    if not block:
        return ""
    tar = {f"{r['similarity']:.0f}": r["tar"] for r in summary["calibration_check"]}
    rows = []
    for r in block["rows"]:
        s, group = f"{r['similarity']:.0f}", r["group"]
        low, high = r["interval"]
        rows.append(f"<tr><td>{escape(group)}</td><td>{s}</td>{_cell(num(r['impostor_pairs']))}"
                    f"{_cell(num(r['false_matches']))}{_cell(sci(r['fmr']), f'promise-fmr-{group}-{s}')}"
                    f"{_cell(sci(low) + ' – ' + sci(high))}{_cell(sci(r['promised']))}{_cell(ratio(r['ratio']))}"
                    f"{_cell(pct(tar.get(s)))}</tr>")
    worst = [f"<tr><td>{s}</td>{_cell(ratio(v), f'promise-worst-{s}')}</tr>"
             for s, v in block["worst_ratio"].items()]
    in_force = escape(summary["model"].get("calibration", ""))
    return (f"<h2>3b. The promise, per group</h2><p>Calibration in force: {in_force}. "
            f"FMR over same-group impostor pairs with its {block['confidence']:.0%} interval (bootstrap over "
            "identities) against the promised rate; TAR over all same-person pairs.</p>"
            + _table(["group", "Similarity", "impostor pairs", "false matches", "FMR", "interval", "promised",
                      "measured / promised", "TAR"], rows)
            + _table(["Similarity", "worst measured / promised"], worst))


def _demographics(summary: dict) -> str:
    d = summary["demographics"]
    if not d["attributes"]:
        return ("<h2>4. Demographics</h2><p>No group labels: pass <code>--labels CSV</code> (columns: identity or "
                "image, then one column per grouping).</p>")
    parts = [f"<h2>4. Demographics</h2><p>Group labels: {escape(d['source'])}. FMR over impostor pairs with both "
             "images in the group, FNMR over the group's same-person pairs (NIST FRVT Part 3 style); ratios are "
             "to the group with the lowest rate. Counts of errors are shown so small samples are visible.</p>"]
    for attribute, table in d["attributes"].items():
        rows = []
        for g in table["groups"]:
            for a in g["at"]:
                key = f"{attribute}-{g['group']}-{a['similarity']:.0f}"
                rows.append(f"<tr><td>{escape(g['group'])}</td>{_cell(num(g['people']))}{_cell(num(g['images']))}"
                            f"<td>{a['similarity']:.0f}</td>{_cell(num(g['impostor_pairs']))}"
                            f"{_cell(num(a['false_matches']), f'dem-fm-{key}')}{_cell(sci(a['fmr']), f'dem-fmr-{key}')}"
                            f"{_cell(ratio(a['fmr_ratio']))}{_cell(num(g['genuine_pairs']))}"
                            f"{_cell(num(a['false_non_matches']))}{_cell(pct(a['fnmr']), f'dem-fnmr-{key}')}"
                            f"{_cell(ratio(a['fnmr_ratio']))}</tr>")
        parts.append(f"<h3>{escape(attribute)}</h3>" + _table(
            ["group", "people", "images", "Similarity", "impostor pairs", "false matches", "FMR", "FMR ratio",
             "genuine pairs", "false non-matches", "FNMR", "FNMR ratio"], rows))
        spread = [f"<tr><td>{e['similarity']:.0f}</td>{_cell(ratio(e['fmr_worst_over_best']))}"
                  f"{_cell(ratio(e['fnmr_worst_over_best']))}</tr>" for e in table["spread"]]
        parts.append(_table(["Similarity", "FMR worst / best group", "FNMR worst / best group"], spread))
        if table.get("female_over_male"):
            fm = []
            for e in table["female_over_male"]:
                s = f"{e['similarity']:.0f}"
                fm.append(f"<tr><td>{s}</td>{_cell(ratio(e['fmr']), f'fm-fmr-{s}')}"
                          f"{_cell(ratio(e['fnmr']), f'fm-fnmr-{s}')}</tr>")
            parts.append(_table(["Similarity", "FMR female / male", "FNMR female / male"], fm))
    return "".join(parts)


def _false_match(summary: dict) -> str:
    f = summary["false_match"]
    rows = []
    for a in f["at"]:
        s = f"{a['similarity']:.0f}"
        rows.append(f"<tr><td>{s}</td>{_cell(sci(a['fmr']))}{_cell(num(a['probes_with_match']), f'fm-probes-{s}')}"
                    f"{_cell(num(a['probes_with_match_without_suspected_noise']), f'fm-probes-clean-{s}')}"
                    f"{_cell(est(a['expected_probes_with_match']), f'fm-expected-probes-{s}')}"
                    f"{_cell(num(a['false_match_pairs']), f'fm-pairs-{s}')}"
                    f"{_cell(est(a['expected_false_match_pairs']), f'fm-expected-{s}')}</tr>")
    matches = [f"<tr>{_cell(num(m['similarity'], 1))}{_cell(num(m['cosine'], 3))}<td>{escape(m['probe'])}</td>"
               f"<td>{escape(m['gallery'])}</td><td>{escape(m['suspected_label_noise'])}</td></tr>"
               for m in f["matches"]]
    listed = (_table(["Similarity", "cosine", "probe image", "gallery image (another name)",
                      "suspected label noise"], matches) if matches else "<p>None.</p>")
    return (f"<h2>5. False-match experiment</h2><p>Gallery: <b id='fm-gallery'>{num(f['gallery_people'])}</b> people, "
            f"{escape(f['gallery_rule'])} (drawn with seed {f['seed']}). Probes: <b id='fm-probe-images'>"
            f"{num(f['probe_images'])}</b> images of <b id='fm-probe-people'>{num(f['probe_people'])}</b> other "
            f"people never in the gallery ({escape(f['probe_rule'])}). Exact search: every probe against every "
            f"gallery face ({num(f['at'][0]['comparisons'])} comparisons), so every hit is a false match. Expected "
            "counts come from the calibration: G × probe images × FMR(s) pairs.</p>"
            + _table(["Similarity", "FMR(s)", "probes with any match", "… not suspected label noise",
                      "expected probes", "false-match pairs",
                      "expected pairs (G × P × FMR)"], rows)
            + f"<h3>False matches at Similarity ≥ {f['list_above_similarity']:.0f}</h3>" + listed)


def _noise(summary: dict) -> str:
    rows = [f"<tr><td>{escape(' / '.join(e['names']))}</td>{_cell(num(e['pairs']))}{_cell(num(e['max_cosine'], 3))}"
            f"<td>{escape('; '.join(e['reasons']))}</td></tr>" for e in summary["label_noise"]]
    return ("<h2>6. Suspected label noise</h2><p>Different-person pairs (as labelled) among the highest scores "
            "that look like one person under two names, identical crops or a misfiled image "
            "(<code>facelens.eval.calibrate</code> rules). They are counted as impostors above unless stated.</p>"
            + (_table(["names", "pairs", "highest cosine", "why"], rows) if rows else "<p>None found.</p>"))


def _meaning(summary: dict) -> str:
    large = summary["large_collections"]
    f = summary["false_match"]
    rows = [f"<tr>{_cell(num(r['collection']))}<td>{r['similarity']:.0f}</td>{_cell(sci(r['fmr']))}"
            f"{_cell(est(r['expected_false_candidates']))}{_cell(pct(r['chance_of_a_stranger']))}</tr>"
            for r in large["rows"]]
    at80 = next((a for a in f["at"] if a["similarity"] == 80.0), f["at"][0])
    worst = large["worst_group_at_80"]
    group = (f" Within one demographic group the measured FMR at Similarity 80 was up to {worst['factor']:.1f} times "
             f"the promise ({escape(worst['attribute'])} {escape(worst['group'])}), so multiply accordingly."
             if worst else "")
    return ("<h2>7. What this means for identification in large collections</h2><p>A search compares the probe "
            "with every face in a collection. For someone who is <i>not</i> in a collection of G faces, the chance "
            "that at least one stranger clears the threshold is about G × FMR (while that is small), and "
            "Similarity s stands for FMR 10<sup>-(s-20)/10</sup>: 80 is one in a million, 90 one in ten million. "
            f"In the experiment above ({num(f['gallery_people'])} gallery faces, {num(f['probe_images'])} probe "
            f"images of absent people) {num(at80['probes_with_match'])} probes returned a stranger at Similarity "
            f"{at80['similarity']:.0f} where the calibration predicts {est(at80['expected_probes_with_match'])}."
            f"{group} A threshold that is safe for comparing two photos is not safe for searching millions: a "
            "match from a large search is a lead for a person to check, never an identification.</p>"
            + _table(["collection size G", "Similarity", "FMR", "expected strangers per search",
                      "chance of at least one"], rows))


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.plots img{margin-right:8px}
h2{border-bottom:2px solid #445;margin-top:1.6em}dl{display:grid;grid-template-columns:14em auto}dt{font-weight:bold}"""


def render_html(summary: dict, images: dict[str, str] | None = None) -> str:
    """The self-contained report page for an evaluation summary."""
    images = images or plots(summary)
    meta, data, model = summary["meta"], summary["dataset"], summary["model"]
    header = (f"<h1>FaceLens model card: {escape(model['version'])}</h1><dl>"
              f"<dt>model</dt><dd id='model'>{escape(model['version'])} (flip TTA "
              f"{'on' if meta.get('flip_tta') else 'off'}); calibration table fitted on "
              f"{escape(str(model['calibration_source']) or 'unknown')}</dd>"
              + (f"<dt>faces</dt><dd>{escape(str(meta['face_path']))}</dd>" if meta.get("face_path") else "")
              + f"<dt>data set</dt><dd>{escape(str(meta.get('dataset', '')))}: <span id='images'>{num(data['images'])}"
              f"</span> images of <span id='people'>{num(data['people'])}</span> people; <span id='no-face'>"
              f"{num(data['images_without_face'])}</span> images without a detected face (left out)</dd>"
              f"<dt>date</dt><dd>{escape(str(meta.get('date', '')))}</dd>"
              f"<dt>machine</dt><dd>{escape(str(meta.get('machine', '')))}</dd></dl>")
    body = (header + _verification(summary, images) + _calibration(summary, images) + _promise(summary)
            + _demographics(summary) + _false_match(summary) + _noise(summary) + _meaning(summary))
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>FaceLens evaluation: "
            f"{escape(model['version'])}</title><style>{CSS}</style></head><body>{body}</body></html>\n")
