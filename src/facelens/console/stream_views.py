"""Console view of stream processors (read-only): each processor the key may see, with its status, camera,
collection (or the labels a ConnectedHome processor looks for) and threshold, and for admin keys the purpose it
was created with and the key that created it.

Name and status come from ListStreamProcessors, the rest from DescribeStreamProcessor, both run as the signed-in
key (so a key limited to some collections sees only their processors, as over the API). Rekognition's Describe has
no purpose and no creator; for an admin key those two come from `StreamService.watchers()`, the oversight list
`facelens streams watchers` prints, read in process as that command reads it. Starting, stopping and creating
processors stay with the API and the CLI (docs/streams.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from facelens.console import html
from facelens.console.app import Console
from facelens.console.html import esc
from facelens.console.sessions import Session
from facelens.store.streams import camera_name

MAX_SHOWN = 100  # processors listed (Rekognition allows 128 per account by default)


async def _names(console: Console, session: Session) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    token = None
    while len(found) < MAX_SHOWN:
        page, _ = await console.call(session, "ListStreamProcessors", {"MaxResults": 100,
                                                                         **({"NextToken": token} if token else {})})
        found += [(p["Name"], p["Status"]) for p in page.get("StreamProcessors", [])]
        token = page.get("NextToken")
        if not token:
            break
    return found[:MAX_SHOWN]


def _watching(described: dict[str, Any]) -> tuple[str, str]:
    """(what it searches or detects, its threshold) from a DescribeStreamProcessor answer."""
    settings = described.get("Settings") or {}
    if "FaceSearch" in settings:
        search = settings["FaceSearch"]
        return search.get("CollectionId", ""), f'{search.get("FaceMatchThreshold", 80):g}'
    home = settings.get("ConnectedHome") or {}
    labels = ", ".join(home.get("Labels", []))
    return f"labels: {labels}", f'{home.get("MinConfidence", 50):g}' if home else ""


async def section(console: Console, session: Session) -> str:
    """The stream processors part of the video page ('' when the key may not list them)."""
    if not console.may(session, "ListStreamProcessors"):
        return ""
    rows = []
    oversight: dict[str, Any] = {}
    streams = console.backend.streams
    if session.scope.admin and streams is not None:
        oversight = {r.name: r for r in await asyncio.to_thread(streams.watchers)}
    for name, status in await _names(console, session):
        described: dict[str, Any] = {}
        if console.may(session, "DescribeStreamProcessor"):
            described, _ = await console.call(session, "DescribeStreamProcessor", {"Name": name})
        arn = ((described.get("Input") or {}).get("KinesisVideoStream") or {}).get("Arn", "")
        watching, threshold = _watching(described) if described else ("", "")
        row = [f"<code>{esc(name)}</code>", esc(described.get("Status", status)),
               esc(described.get("StatusMessage", "")), esc(camera_name(arn) or ""), esc(watching), esc(threshold)]
        if session.scope.admin:
            record = oversight.get(name)
            row += [esc(record.purpose or "—") if record else "", esc(record.key_id) if record else ""]
        rows.append(row)
    header = ["Name", "Status", "Message", "Camera", "Collection (or labels)", "Requested threshold"]
    if session.scope.admin:
        header += ["Purpose", "Created by key"]
    return ('<section aria-labelledby="streams-h"><h2 id="streams-h">Stream processors</h2>'
            + html.table("Stream processors this key can see", header, rows, "No stream processor yet.", "streams")
            + '<p class="hint">Live cameras (docs/streams.md): started, stopped and created through the API or the '
              "CLI; every match a processor finds is an audit record with its purpose.</p></section>")
