"""Console audit and evaluation pages: browse and filter the audit chain (ListAuditRecords, admin keys), its
status (`facelens audit verify`'s check, with the anchors), an export (the JSON Lines `facelens audit export`
writes), the subject-access query by FaceId, and the model card of the face model in use.

Records are read through ListAuditRecords as the signed-in key, so a non-admin key is refused as over the API;
the chain check needs the same right. The model card is the evaluation report (`facelens.eval.render`) of the
summary shipped for the model (`console/cards/<model version>.json`, a copy of docs/model-card-lfw.json), drawn
once per process; a model without one says so and how to make one (`facelens eval`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from facelens import errors
from facelens.accountability import audit
from facelens.accountability.commands import check_store
from facelens.console import html
from facelens.console.app import Console
from facelens.console.collection_pages import all_collections
from facelens.console.html import esc
from facelens.console.sessions import Session
from facelens.store.audit import canonical, face_ids

CARDS = Path(__file__).parent / "cards"
PER_PAGE = 50
CARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'"


def _filters(request: Request) -> dict[str, Any]:
    """ListAuditRecords' filters from the query string (empty ones left out)."""
    query = request.query_params
    found: dict[str, Any] = {}
    if query.get("collection"):
        found["CollectionId"] = query["collection"]
    if query.get("face_id"):
        found["FaceId"] = query["face_id"].strip()
    if query.get("since"):
        try:
            since = dt.datetime.fromisoformat(query["since"])
        except ValueError:
            raise errors.InvalidParameterException(f"since must be a date, not {query['since'][:40]!r}") from None
        found["Since"] = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    return found


def _summary(record: dict[str, Any]) -> str:
    """The fields a reader scans for, per record kind."""
    parts = []
    if record.get("effective_threshold") is not None:
        parts.append(f"at {record['effective_threshold']:g} (p {record.get('false_match_probability', '?'):g})")
    if record.get("decision"):
        parts.append(f"{record['decision']} about search record {record.get('search_seq')}"
                     + (f": {record['note']}" if record.get("note") else ""))
    if record.get("reason"):
        parts.append(str(record["reason"]))
    named = face_ids(record)
    if named:
        parts.append(f"{len(named)} face(s): " + " ".join(f[:8] for f in named[:4]) + ("…" if len(named) > 4 else ""))
    return "; ".join(parts)


async def audit_page(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    if not console.may(session, "ListAuditRecords"):
        return html.error_page("Audit", "Reading the audit log needs an admin key (as ListAuditRecords does).",
                               session, 403)
    filters = _filters(request)
    operation = request.query_params.get("operation", "")
    token = request.query_params.get("page")
    answer, _ = await console.call(session, "ListAuditRecords", {**filters, "MaxResults": PER_PAGE,
                                                                 **({"NextToken": token} if token else {})})
    rows = []
    for item in answer.get("AuditRecords", []):
        record = json.loads(item["Record"])
        if operation and record.get("operation") != operation:
            continue
        rows.append([esc(item["Sequence"]), esc(record.get("time", "")[:19].replace("T", " ")),
                     esc(record.get("operation")), esc(record.get("collection") or ""), esc(record.get("key")),
                     esc(record.get("purpose") or ""), esc(record.get("outcome")), esc(_summary(record)),
                     f'<details><summary>record</summary><pre>{esc(json.dumps(record, indent=1))}</pre>'
                     f'<p>hash <code>{esc(item["Hash"])}</code></p></details>'])
    collections = [c for c, _ in await all_collections(console, session)]
    query = request.query_params
    options = '<option value="">all</option>' + "".join(
        f'<option{" selected" if c == query.get("collection") else ""}>{esc(c)}</option>' for c in collections)
    body = ('<form method="get" action="/console/audit" class="filters"><p><label for="f-collection">Collection'
            f'</label><select id="f-collection" name="collection">{options}</select></p>'
            f'<p><label for="f-face">FaceId (subject access)</label><input id="f-face" name="face_id" '
            f'value="{esc(query.get("face_id", ""))}" spellcheck="false"></p>'
            f'<p><label for="f-since">Since</label><input id="f-since" name="since" type="date" '
            f'value="{esc(query.get("since", ""))}"></p>'
            f'<p><label for="f-op">Operation</label><input id="f-op" name="operation" value="{esc(operation)}" '
            'list="ops"></p><datalist id="ops"><option>SearchFacesByImage</option><option>SearchFaces</option>'
            '<option>ReviewDecision</option><option>IndexFaces</option><option>CreateCollection</option>'
            '<option>PutCollectionPolicy</option></datalist><p><button type="submit">Filter</button></p></form>')
    export_query = urlencode({k: v for k, v in query.items() if k in ("collection", "face_id", "since")})
    body += (f'<p class="actions"><a href="/console/audit/export?{esc(export_query)}" download>Export these records '
             '(JSON Lines, as <code>facelens audit export</code>)</a> · <a href="/console/audit/verify">Verify the '
             'chain</a></p>')
    body += html.table("Audit records, in chain order", ["Seq", "Time (UTC)", "Operation", "Collection", "Key",
                                                          "Purpose", "Outcome", "Summary", "Record"],
                       rows, "No record matches.", "audit")
    if answer.get("NextToken"):
        more = urlencode({**{k: v for k, v in query.items() if k != "page"}, "page": answer["NextToken"]})
        body += f'<p><a href="/console/audit?{esc(more)}" rel="next">Later records</a></p>'
    return html.page("Audit", body, session, "audit")


async def export(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    filters = _filters(request)
    lines, token = [], None
    while True:
        answer, _ = await console.call(session, "ListAuditRecords", {**filters, "MaxResults": 1000,
                                                                     **({"NextToken": token} if token else {})})
        for item in answer.get("AuditRecords", []):
            record = json.loads(item["Record"])
            lines.append(canonical({**record, "prev_hash": item["PreviousHash"], "hash": item["Hash"]}) + "\n")
        token = answer.get("NextToken")
        if not token:
            break
    return Response("".join(lines), media_type="application/x-ndjson", headers={
        **html.HEADERS, "Content-Disposition": 'attachment; filename="facelens-audit.jsonl"'})


def _verify(console: Console) -> tuple[audit.Verification, list[str]]:
    """`facelens audit verify` of this server's store and anchor file (and S3 witness, when configured)."""
    if console.backend.store is None:
        raise errors.InvalidParameterException("this FaceLens has no audit log")
    return check_store(console.settings, console.backend.store)


async def verify(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    session.scope.check("ListAuditRecords", None)  # the chain is the audit log: the same right reads it
    result, notes = await console.pools.io.run(_verify, console)
    if result.ok:
        body = html.notice(f"Audit log intact: {result.records} records, head {result.head}.")
        body += (f"<p>Anchored: seq {esc(result.anchor.seq)} with hash <code>{esc(result.anchor.hash)}</code> "
                 f"({esc(result.anchor.source)}).</p>" if result.anchor else
                 "<p>No anchor found: records cut off the end could not be detected.</p>")
    else:
        body = html.notice(f"Audit log BROKEN at record {result.broken_seq}: {result.reason} ({result.records} "
                           "records before it verified).", "error")
    body += "".join(f"<p class=hint>note: {esc(n)}</p>" for n in notes)
    body += '<p><a href="/console/audit">Back to the audit log</a></p>'
    return html.page("Audit chain status", f'<div id="chain">{body}</div>', session, "audit")


@functools.lru_cache(maxsize=4)
def _card_html(version: str) -> str | None:
    path = CARDS / f"{version}.json"
    if not path.exists():
        return None
    from facelens.eval.render import render_html

    return render_html(json.loads(path.read_text(encoding="utf-8")))


async def _models(console: Console, session: Session) -> list[str]:
    versions = {model for _, model in await all_collections(console, session)}
    in_use = getattr(console.backend.analyzer, "model_version", None)
    if isinstance(in_use, str):
        versions.add(in_use)
    return sorted(versions)


async def evaluation(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    body = ""
    for version in await _models(console, session) or ["(no collection yet)"]:
        known = (CARDS / f"{version}.json").exists()
        body += f"<section><h2>Face model {esc(version)}</h2>"
        if known:
            body += (f'<p><a href="/console/evaluation/card/{esc(version)}">Open the model card on its own</a></p>'
                     f'<iframe class="card" src="/console/evaluation/card/{esc(version)}" '
                     f'title="Model card of {esc(version)}"></iframe>')
        else:
            body += html.notice("No evaluation of this model ships with FaceLens: run `facelens eval` on a data set "
                                "you may use to make one (docs/model-card.md).")
        body += "</section>"
    return html.page("Evaluation", body, session, "evaluation")


async def card(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    version = request.path_params["version"]
    if "/" in version or version.startswith(".") or not (CARDS / f"{version}.json").exists():
        raise errors.ResourceNotFoundException(f"no model card for {version}")
    text = await asyncio.to_thread(_card_html, version)
    return HTMLResponse(text or "", headers={**html.HEADERS, "Content-Security-Policy": CARD_CSP,
                                             "X-Frame-Options": "SAMEORIGIN"})


ROUTES = (
    ("/audit", audit_page, ("GET",)),
    ("/audit/export", export, ("GET",)),
    ("/audit/verify", verify, ("GET",)),
    ("/evaluation", evaluation, ("GET",)),
    ("/evaluation/card/{version}", card, ("GET",)),
)
