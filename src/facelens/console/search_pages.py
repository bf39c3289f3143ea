"""Console search and review: a probe image (SearchFacesByImage) or a stored face (SearchFaces), with a purpose
where the policy asks for one; candidates shown as candidates, each with what its Similarity means in false
matches; the threshold the gate answered at and the collection's chance of a stranger; a decision per candidate.

The search is the registered operation, run as the signed-in key (`Console.call`): the gate raises the threshold
to the policy's floors, refuses a missing purpose, and audits the search before its answer comes back. What the
gate disclosed (`x-facelens-effective-threshold`, `x-facelens-false-match-probability` on the wire) is read from
the same `RequestContext.disclosures`. A result is kept in the server-side session under the search's request id
(the audit record's `request_id`), so a reviewer's decision (RecordReviewDecision) names exactly that record.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from facelens import calibration, errors
from facelens.accountability.review import DECISIONS
from facelens.console import html
from facelens.console.app import Console
from facelens.console.collection_pages import MAX_IMAGE_BYTES, all_collections, describe, policy_of
from facelens.console.html import esc
from facelens.console.sessions import Session

SCALES = {"conservative": " (a false-match rate is a 95% upper bound for every measured group, docs/calibration.md)",
          "pooled": " (a false-match rate is the average over the groups measured, docs/calibration.md)"}
DECISION_LABELS = {"CONFIRMED": "Confirmed: same person", "REJECTED": "Rejected: not the same person",
                   "INCONCLUSIVE": "Inconclusive"}


def meaning(similarity: float) -> str:
    """What a Similarity stands for on FaceLens's calibrated scale, in false matches."""
    fmr = calibration.fmr_from_similarity(similarity)
    return f"about 1 false match in {max(1.0, 1 / fmr):,.0f} comparisons of two different people"


async def search_form(console: Console, request: Request, session: Session, form: FormData | None,
                      message: str | None = None, status: int = 200) -> Response:
    chosen = request.query_params.get("collection") or str((form or {}).get("collection") or "")
    visible = [c for c, _ in await all_collections(console, session)]
    if not visible:
        return html.page("Search and review", html.notice("This key sees no collection to search."), session,
                         "search")
    chosen = chosen if chosen in visible else visible[0]
    policy = await policy_of(console, session, chosen)
    effective = (policy or {}).get("EffectivePolicy", {})
    needs = bool(effective.get("RequirePurpose"))
    pattern = effective.get("PurposePattern")
    options = "".join(f'<option value="{esc(c)}"{" selected" if c == chosen else ""}>{esc(c)}</option>'
                      for c in visible)
    allowed = [op for op in ("SearchFacesByImage", "SearchFaces") if console.may(session, op, chosen)]
    if not allowed:
        return html.page("Search and review", html.notice("This key may not search this collection."), session,
                         "search")
    floor = f"; this collection's floor is Similarity {policy['SearchFloor']:g}" if policy else ""
    body = (html.notice(message, "error") if message else "") + (
        f'<form method="post" action="/console/search" enctype="multipart/form-data" class="drop" data-drop>'
        f'{html.csrf_field(session)}<p><label for="collection">Collection</label>'
        f'<select id="collection" name="collection" data-reload>{options}</select></p>'
        '<fieldset><legend>Probe</legend>'
        + ('<p><label for="probe">Probe image (drop it here or choose it; its largest face is searched)</label>'
           '<input id="probe" name="probe" type="file" accept="image/jpeg,image/png"></p>'
           if "SearchFacesByImage" in allowed else "")
        + ('<p><label for="face_id">or a stored FaceId</label><input id="face_id" name="face_id" '
           f'value="{esc(request.query_params.get("face_id", ""))}" spellcheck="false" autocomplete="off"></p>'
           if "SearchFaces" in allowed else "")
        + "</fieldset>"
        f'<p><label for="purpose">Purpose (case or ticket reference){" — required" if needs else ""}</label>'
        f'<input id="purpose" name="purpose" maxlength="1024"{" required" if needs else ""} '
        f'aria-describedby="purpose-hint"><span id="purpose-hint" class="hint">Stored in the audit record'
        f'{esc(f"; must match {pattern}") if pattern else ""}.</span></p>'
        '<p><label for="threshold">FaceMatchThreshold (optional; raised to the policy\'s floor'
        f'{esc(floor)})</label><input id="threshold" name="threshold" type="number" min="0" max="100" step="0.1"></p>'
        '<p><label for="max_faces">Most candidates</label><input id="max_faces" name="max_faces" type="number" '
        'min="1" max="4096" value="10"></p>'
        '<p class="progress" role="status" aria-live="polite" data-progress></p>'
        '<p><button type="submit">Search</button></p></form>')
    return html.page("Search and review", body, session, "search", status)


def _number(form: FormData, name: str, default: float | None) -> float | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise errors.InvalidParameterException(f"{name} must be a number, not {raw[:40]!r}") from None


async def run_search(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    form = form or FormData()
    collection_id = str(form.get("collection") or "")
    purpose = str(form.get("purpose") or "").strip() or None
    if purpose is not None and (len(purpose) > 1024 or not purpose.isprintable()):
        raise errors.InvalidParameterException("the purpose must be printable text of at most 1024 characters")
    probe = form.get("probe")
    face_id = str(form.get("face_id") or "").strip()
    request_: dict[str, Any] = {"CollectionId": collection_id, "MaxFaces": int(_number(form, "max_faces", 10))}
    threshold = _number(form, "threshold", None)
    if threshold is not None:
        request_["FaceMatchThreshold"] = threshold
    data = await probe.read(MAX_IMAGE_BYTES + 1) if isinstance(probe, UploadFile) else b""
    if data:
        operation, request_["Image"] = "SearchFacesByImage", data
        probe_text = f"image {probe.filename}" if isinstance(probe, UploadFile) else "image"
    elif face_id:
        operation, request_["FaceId"] = "SearchFaces", face_id
        probe_text = f"stored face {face_id}"
    else:
        return await search_form(console, request, session, form, "Give a probe image or a stored FaceId.", 400)
    described = await describe(console, session, collection_id)
    policy = await policy_of(console, session, collection_id)
    try:
        answer, context = await console.call(session, operation, request_, purpose)
    except errors.AccessDeniedException as exc:  # a purpose refusal: audited by the gate; shown on the form
        return await search_form(console, request, session, form, exc.message, 403)
    session.remember(context.request_id or "", {
        "collection": collection_id, "operation": operation, "probe": probe_text, "purpose": purpose,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "answer": answer,
        "gallery": described.get("FaceCount"), "calibration": (policy or {}).get("Calibration"),
        "disclosures": dict(context.disclosures), "reviews": {}})
    return RedirectResponse(f"/console/search/{quote(context.request_id or '')}", status_code=303)


async def result(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    request_id = request.path_params["request_id"]
    search = session.searches.get(request_id)
    if search is None:
        return html.error_page("Not found", "This search is not among this session's searches (sessions keep "
                               "their last 50).", session, 404, "/console/search")
    disclosures = search["disclosures"]
    effective = float(disclosures.get("effective-threshold", "nan"))
    probability = disclosures.get("false-match-probability", "?")
    collection_id = search["collection"]
    matches = search["answer"].get("FaceMatches", [])
    body = (html.notice("These are candidates, not identifications. A person must compare each one with the probe "
                        "and record a decision; a match alone is never evidence.", "warn")
            + f'<dl class="facts"><dt>Collection</dt><dd>{esc(collection_id)} ({esc(_or(search["gallery"]))} '
            'faces)</dd>'
            f'<dt>Probe</dt><dd>{esc(search["probe"])}</dd><dt>Purpose</dt><dd>{esc(search["purpose"] or "none")}'
            f'</dd><dt>Effective threshold</dt><dd id="effective">Similarity {effective:.2f} '
            f'({esc(meaning(effective))})</dd><dt>False-match probability of this search</dt>'
            f'<dd id="fmp">{esc(probability)}: the chance, for '
            f'a collection of this size, that a search for someone who is not in it still returns a stranger</dd>'
            + (f'<dt>Similarity scale</dt><dd>{esc(search["calibration"])}'
               f'{esc(SCALES.get(str(search["calibration"]).split(":")[0], ""))}</dd>' if search["calibration"] else "")
            + f'<dt>Audit record</dt><dd>request id <code id="request-id">{esc(request_id)}</code>, '
            f'{esc(search["time"])}</dd></dl>')
    may_review = console.may(session, "RecordReviewDecision", collection_id)
    rows = []
    for rank, match in enumerate(matches, 1):
        face = match["Face"]
        similarity = float(match["Similarity"])
        reviews = search["reviews"].get(face["FaceId"], [])
        recorded = "".join(f'<p class="decision">{esc(DECISION_LABELS[r["decision"]])}'
                           f'{esc(": " + r["note"]) if r["note"] else ""} (audit record {esc(r["seq"])})</p>'
                           for r in reviews)
        control = _review_form(session, request_id, face["FaceId"], rank) if may_review else ""
        rows.append([esc(rank), f"<strong>{similarity:.2f}</strong>", esc(meaning(similarity)),
                     f"<code>{esc(face['FaceId'])}</code>", esc(face.get("ExternalImageId", "")),
                     recorded + control])
    body += html.table("Candidates", ["#", "Similarity", "What it means", "FaceId", "ExternalImageId",
                                      "Review"], rows, "No face reached the effective threshold: no candidate.",
                       "candidates")
    body += (f'<p class="actions"><a href="/console/search/{esc(quote(request_id))}/export" download>Export these '
             'results (JSON, with the decisions)</a> · <a href="/console/search">New search</a></p>')
    return html.page("Search result", body, session, "search", flash=_flash(request))


async def export(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    """The search's results with the decisions recorded on them; where the collection's policy has
    RequireReview, refused (409) until every candidate has one."""
    request_id = request.path_params["request_id"]
    search = session.searches.get(request_id)
    if search is None:
        raise errors.ResourceNotFoundException("this search is not among this session's searches")
    matches = search["answer"].get("FaceMatches", [])
    policy = await policy_of(console, session, search["collection"])
    pending = [m["Face"]["FaceId"] for m in matches if not search["reviews"].get(m["Face"]["FaceId"])]
    if pending and (policy or {}).get("EffectivePolicy", {}).get("RequireReview"):
        return html.error_page("Review first", f"Collection {search['collection']} requires a decision on every "
                               f"candidate before its results are exported; {len(pending)} of {len(matches)} have "
                               "none yet.", session, 409, f"/console/search/{quote(request_id)}")
    body = {"SearchRequestId": request_id, "CollectionId": search["collection"], "Operation": search["operation"],
            "Probe": search["probe"], "Purpose": search["purpose"], "Time": search["time"],
            "EffectiveThreshold": search["disclosures"].get("effective-threshold"),
            "FalseMatchProbability": search["disclosures"].get("false-match-probability"),
            "Calibration": search["calibration"],
            "Candidates": [{"FaceId": m["Face"]["FaceId"], "ExternalImageId": m["Face"].get("ExternalImageId"),
                            "Similarity": m["Similarity"], "Decisions": [
                                {"Decision": r["decision"], "Note": r["note"], "AuditSequence": r["seq"]}
                                for r in search["reviews"].get(m["Face"]["FaceId"], [])]} for m in matches]}
    return Response(json.dumps(body, indent=1), media_type="application/json", headers={
        **html.HEADERS, "Content-Disposition": f'attachment; filename="search-{request_id}.json"'})


def _or(value: Any, missing: str = "?") -> Any:
    return missing if value is None else value


def _flash(request: Request) -> list[str]:
    done = request.query_params.get("done")
    return [done[:200]] if done else []


def _review_form(session: Session, request_id: str, face_id: str, rank: int) -> str:
    choices = "".join(
        f'<label class="inline"><input type="radio" name="decision" value="{d}" required> '
        f'{esc(DECISION_LABELS[d].split(":")[0])}</label>' for d in DECISIONS)
    return (f'<form method="post" action="/console/review" class="review" aria-label="Review candidate {rank}">'
            f'{html.csrf_field(session)}<input type="hidden" name="search" value="{esc(request_id)}">'
            f'<input type="hidden" name="face_id" value="{esc(face_id)}">'
            f'<fieldset><legend>Decision on candidate {rank}</legend>{choices}</fieldset>'
            f'<p><label for="note-{rank}">Note</label><input id="note-{rank}" name="note" maxlength="2000"></p>'
            '<p><button type="submit">Record decision</button></p></form>')


async def review(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    form = form or FormData()
    request_id = str(form.get("search") or "")
    search = session.searches.get(request_id)
    if search is None:
        raise errors.ResourceNotFoundException("this search is not among this session's searches")
    face_id, decision = str(form.get("face_id") or ""), str(form.get("decision") or "")
    note = str(form.get("note") or "").strip()
    answer, _ = await console.call(session, "RecordReviewDecision", {
        "CollectionId": search["collection"], "SearchRequestId": request_id, "FaceId": face_id,
        "Decision": decision, **({"Note": note} if note else {})})
    search["reviews"].setdefault(face_id, []).append({"decision": decision, "note": note, "seq": answer["Sequence"]})
    text = (f"Decision recorded as audit record {answer['Sequence']} (linked to search record "
            f"{answer['SearchSequence']}).")
    return RedirectResponse(f"/console/search/{quote(request_id)}?done={quote(text)}", status_code=303)


ROUTES = (
    ("/search", search_form, ("GET",)),
    ("/search", run_search, ("POST",)),
    ("/search/{request_id}", result, ("GET",)),
    ("/search/{request_id}/export", export, ("GET",)),
    ("/review", review, ("POST",)),
)
