"""Console video view (read-only): every stored-video job kind (face search and detection, labels, moderation,
text, persons, segments) with its status, metadata and results on a timeline.

A job is read with its kind's Get operation (`console.video_views.VIEWS`) as the signed-in key, so the scope rules
of docs/accountability.md apply (a key limited to some collections reads only its own face-search jobs) and every
Get is audited with what it disclosed. Rekognition has no operation that lists jobs; for an admin key the page
lists the jobs the audit log names (their Start and Get records carry `job_id`; the status shown there is the one
the latest Get record reported, "started" before any Get), any other key opens a job by its JobId and kind.
Below the jobs, the stream processors the key may see (`console.stream_views`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from facelens.console import html, stream_views
from facelens.console.app import Console
from facelens.console.html import esc
from facelens.console.sessions import Session
from facelens.console.video_views import VIEWS, View, header, kind_of_operation, rows, timeline, view_of

RESULTS = 1000  # results read per job page (Get* MaxResults)
SHOWN = 200  # rows of the results table
VERSIONS = ("LabelModelVersion", "ModerationModelVersion", "TextModelVersion")


async def _jobs_from_audit(console: Console, session: Session) -> list[dict[str, Any]]:
    """Every job the audit log names, newest first (admin keys only): JobId, kind, collection, video, when it
    was started and the status its latest Get reported."""
    found: dict[str, dict[str, Any]] = {}
    token = None
    while True:
        answer, _ = await console.call(session, "ListAuditRecords", {"MaxResults": 1000,
                                                                     **({"NextToken": token} if token else {})})
        for item in answer.get("AuditRecords", []):
            record = json.loads(item["Record"])
            job_id, kind = record.get("job_id"), kind_of_operation(record.get("operation"))
            if not isinstance(job_id, str) or kind is None:
                continue
            job = found.setdefault(job_id, {"job_id": job_id, "kind": kind, "collection": "", "video": "",
                                            "started": "", "status": "started"})
            if str(record.get("operation")).startswith("Start"):
                job.update(collection=record.get("collection") or "", video=record.get("video") or "",
                           started=str(record.get("time", ""))[:19].replace("T", " "))
            elif record.get("job_status"):
                job["status"] = record["job_status"]
        token = answer.get("NextToken")
        if not token:
            return list(reversed(found.values()))


def _open_form() -> str:
    options = "".join(f'<option value="{v.kind}">{esc(v.label)}</option>' for v in VIEWS.values())
    return ('<form method="get" action="/console/video" class="filters"><p><label for="job">JobId</label>'
            '<input id="job" name="job" required spellcheck="false"></p><p><label for="kind">Kind</label>'
            f'<select id="kind" name="kind">{options}</select></p>'
            '<p><button type="submit">Open job</button></p></form>')


async def video(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    job_id = request.query_params.get("job", "").strip()
    if job_id:
        return await _job(console, session, job_id, view_of(request.query_params.get("kind")))
    body = _open_form()
    if console.may(session, "ListAuditRecords"):
        listed = [[f'<a href="/console/video?job={esc(quote(j["job_id"]))}&amp;kind={j["kind"]}">'
                   f'<code>{esc(j["job_id"])}</code></a>', esc(VIEWS[j["kind"]].label), esc(j["status"]),
                   esc(j["video"]), esc(j["collection"]), esc(j["started"])]
                  for j in await _jobs_from_audit(console, session)]
        body += html.table("Jobs named by the audit log", ["JobId", "Kind", "Last status read", "Video",
                                                           "Collection", "Started (UTC)"], listed,
                           "No video job yet.", "jobs")
        body += html.notice("The status in this list is the one the job's latest Get reported (from the audit "
                            "log); open a job for its status now.")
    else:
        body += html.notice("Rekognition has no operation that lists jobs; an admin key sees the jobs the audit "
                            "log names. Open a job by its JobId and kind.")
    body += await stream_views.section(console, session)
    return html.page("Video jobs and stream processors", body, session, "video")


async def _job(console: Console, session: Session, job_id: str, view: View) -> Response:
    answer, _ = await console.call(session, view.get, {"JobId": job_id, "MaxResults": RESULTS})
    results: list[dict[str, Any]] = list(answer.get(view.key, []))
    token = answer.get("NextToken")
    while token and len(results) < 10 * RESULTS:
        more, _ = await console.call(session, view.get, {"JobId": job_id, "MaxResults": RESULTS,
                                                         "NextToken": token})
        results += more.get(view.key, [])
        token = more.get("NextToken")
    meta = answer.get("VideoMetadata") or {}
    meta = (meta[0] if meta else {}) if isinstance(meta, list) else meta  # GetSegmentDetection: a list
    video_name = (answer.get("Video") or {}).get("S3Object", {}).get("Name", "")
    versions = "".join(f"<dt>{esc(name)}</dt><dd>{esc(answer[name])}</dd>" for name in VERSIONS if answer.get(name))
    body = (f'<dl class="facts"><dt>JobId</dt><dd><code>{esc(job_id)}</code></dd><dt>Kind</dt>'
            f'<dd id="job-kind">{esc(view.label)}</dd><dt>Status</dt>'
            f'<dd id="job-status">{esc(answer.get("JobStatus"))}</dd>'
            + (f'<dt>Message</dt><dd>{esc(answer["StatusMessage"])}</dd>' if answer.get("StatusMessage") else "")
            + f'<dt>Video</dt><dd>{esc(video_name)}</dd>'
            + (f'<dt>Duration</dt><dd>{meta.get("DurationMillis", 0) / 1000:.1f} s, {esc(meta.get("FrameWidth"))}x'
               f'{esc(meta.get("FrameHeight"))}, {esc(meta.get("FrameRate"))} fps</dd>' if meta else "")
            + versions + f'<dt>Results</dt><dd id="result-count">{len(results)}</dd></dl>')
    if view.warning and results:
        body += html.notice(view.warning, "warn")
    if results:
        body += timeline(view, results, float(meta.get("DurationMillis") or 0))
    body += html.table(f"Results (first {SHOWN})", header(view, results), rows(view, results, SHOWN),
                       "No results.", "results")
    body += '<p><a href="/console/video">All jobs</a></p>'
    return html.page(f"Video job ({view.label})", body, session, "video")


ROUTES = (("/video", video, ("GET",)),)
