"""Console video view (read-only): a stored-video job's status, metadata and results on a timeline.

A job is read with GetFaceDetection or GetFaceSearch as the signed-in key (so the scope rules of docs/
accountability.md apply: a key limited to some collections reads only its own detection jobs, and every Get is
audited with what it disclosed). Rekognition has no operation that lists jobs; for an admin key the page lists
the jobs the audit log names (their Start and Get records carry `job_id`), any other key opens a job by its
JobId. The timeline is inline SVG drawn from the results (one row per tracked person; a filled mark where a
face search found candidates), so it needs no script and no inline style.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from facelens.console import html
from facelens.console.app import Console
from facelens.console.html import esc
from facelens.console.sessions import Session

RESULTS = 1000  # results read per job page (GetFace* MaxResults)
SHOWN = 200  # rows of the results table
WIDTH, ROW = 1000, 18


async def _jobs_from_audit(console: Console, session: Session) -> list[tuple[str, str, str]]:
    """(JobId, kind, collection) of every job the audit log names, newest first (admin keys only)."""
    found: dict[str, tuple[str, str, str]] = {}
    token = None
    while True:
        answer, _ = await console.call(session, "ListAuditRecords", {"MaxResults": 1000,
                                                                     **({"NextToken": token} if token else {})})
        for item in answer.get("AuditRecords", []):
            record = json.loads(item["Record"])
            job_id = record.get("job_id")
            if isinstance(job_id, str):
                kind = "search" if "FaceSearch" in str(record.get("operation")) else "detection"
                found[job_id] = (job_id, kind, record.get("collection") or "")
        token = answer.get("NextToken")
        if not token:
            return list(reversed(found.values()))


async def video(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    job_id = request.query_params.get("job", "").strip()
    kind = request.query_params.get("kind", "search")
    if job_id:
        return await _job(console, session, job_id, "detection" if kind == "detection" else "search")
    body = ('<form method="get" action="/console/video" class="filters"><p><label for="job">JobId</label>'
            '<input id="job" name="job" required spellcheck="false"></p><p><label for="kind">Kind</label>'
            '<select id="kind" name="kind"><option value="search">face search</option>'
            '<option value="detection">face detection</option></select></p>'
            '<p><button type="submit">Open job</button></p></form>')
    if console.may(session, "ListAuditRecords"):
        rows = [[f'<a href="/console/video?job={esc(quote(j))}&amp;kind={k}"><code>{esc(j)}</code></a>', esc(k),
                 esc(c)] for j, k, c in await _jobs_from_audit(console, session)]
        body += html.table("Jobs named by the audit log", ["JobId", "Kind", "Collection"], rows,
                           "No video job yet.", "jobs")
    else:
        body += html.notice("Rekognition has no operation that lists jobs; an admin key sees the jobs the audit "
                            "log names. Open a job by its JobId.")
    return html.page("Video jobs", body, session, "video")


async def _job(console: Console, session: Session, job_id: str, kind: str) -> Response:
    operation = "GetFaceSearch" if kind == "search" else "GetFaceDetection"
    key = "Persons" if kind == "search" else "Faces"
    answer, _ = await console.call(session, operation, {"JobId": job_id, "MaxResults": RESULTS})
    results: list[dict[str, Any]] = list(answer.get(key, []))
    token = answer.get("NextToken")
    while token and len(results) < 10 * RESULTS:
        more, _ = await console.call(session, operation, {"JobId": job_id, "MaxResults": RESULTS,
                                                          "NextToken": token})
        results += more.get(key, [])
        token = more.get("NextToken")
    meta = answer.get("VideoMetadata") or {}
    video_name = (answer.get("Video") or {}).get("S3Object", {}).get("Name", "")
    body = (f'<dl class="facts"><dt>JobId</dt><dd><code>{esc(job_id)}</code></dd><dt>Status</dt>'
            f'<dd id="job-status">{esc(answer.get("JobStatus"))}</dd>'
            + (f'<dt>Message</dt><dd>{esc(answer["StatusMessage"])}</dd>' if answer.get("StatusMessage") else "")
            + f'<dt>Video</dt><dd>{esc(video_name)}</dd>'
            + (f'<dt>Duration</dt><dd>{meta.get("DurationMillis", 0) / 1000:.1f} s, {esc(meta.get("FrameWidth"))}x'
               f'{esc(meta.get("FrameHeight"))}, {esc(meta.get("FrameRate"))} fps</dd>' if meta else "")
            + f'<dt>Results</dt><dd>{len(results)}</dd></dl>')
    if kind == "search" and results:
        body += html.notice("Matches in a video are candidates, not identifications: a person must check each.",
                            "warn")
    if results:
        body += _timeline(results, kind, float(meta.get("DurationMillis") or 0))
    rows = []
    for item in results[:SHOWN]:
        if kind == "search":
            person = item.get("Person", {})
            matches = ", ".join(f'{m["Face"].get("ExternalImageId") or m["Face"]["FaceId"][:8]} '
                                f'({m["Similarity"]:.1f})' for m in item.get("FaceMatches") or ())
            rows.append([esc(item["Timestamp"]), esc(person.get("Index")), esc(matches or "—")])
        else:
            rows.append([esc(item["Timestamp"]), "", esc(f'{item["Face"].get("Confidence", 0):.1f}')])
    third = "Candidates (Similarity)" if kind == "search" else "Detection confidence"
    body += html.table(f"Results (first {SHOWN})", ["Time (ms)", "Person", third], rows, "No results.", "results")
    body += '<p><a href="/console/video">All jobs</a></p>'
    return html.page(f"Video job ({'face search' if kind == 'search' else 'face detection'})", body, session,
                     "video")


def _timeline(results: list[dict[str, Any]], kind: str, duration: float) -> str:
    """Inline SVG: x is time, one row per person (face search) or one row (detection); filled where matched."""
    end = max(duration, max(float(r["Timestamp"]) for r in results), 1.0)
    tracks = sorted({int((r.get("Person") or {}).get("Index", 0)) for r in results}) if kind == "search" else [0]
    height = ROW * len(tracks) + 24
    marks = []
    for item in results:
        track = tracks.index(int((item.get("Person") or {}).get("Index", 0))) if kind == "search" else 0
        x = 40 + (WIDTH - 60) * float(item["Timestamp"]) / end
        matched = bool(item.get("FaceMatches"))
        marks.append(f'<rect x="{x:.1f}" y="{track * ROW + 3}" width="4" height="{ROW - 6}" '
                     f'class="{"hit" if matched else "seen"}"><title>{esc(item["Timestamp"])} ms'
                     f'{" — candidates found" if matched else ""}</title></rect>')
    labels = "".join(f'<text x="0" y="{i * ROW + 13}">#{t}</text>' for i, t in enumerate(tracks))
    axis = (f'<line x1="40" x2="{WIDTH - 20}" y1="{height - 18}" y2="{height - 18}" class="axis"/>'
            f'<text x="40" y="{height - 4}">0 s</text><text x="{WIDTH - 60}" y="{height - 4}">{end / 1000:.1f} s'
            "</text>")
    return (f'<figure><svg viewBox="0 0 {WIDTH} {height}" role="img" class="timeline" aria-labelledby="tl-cap">'
            f'{labels}{"".join(marks)}{axis}</svg><figcaption id="tl-cap">Timeline: one row per tracked person; '
            "dark marks where a face search returned candidates, light marks where a face was seen."
            "</figcaption></figure>")


ROUTES = (("/video", video, ("GET",)),)
