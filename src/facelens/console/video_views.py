"""How the console shows each stored-video job kind: its Get operation, where its results are, and how one result
becomes a mark on the timeline (a track, a time or a span, a short text, whether it is a hit) and a table row.

One `View` per kind of `facelens.domain.video_kinds.KINDS` (the test checks they match), in the wire shapes of
`facelens.api.wire_video` (Rekognition's Get* responses). The timeline is inline SVG (no script, no inline
style): one row per track (a tracked person, a label name, a text type, a segment type), at most `MAX_TRACKS`
of them, the most frequent first (the rest are summed up in the caption).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facelens.console.html import esc

Item = dict[str, Any]
MAX_TRACKS = 12
WIDTH, ROW, LEFT = 1000, 18, 150  # viewBox units: width, row height, room for the track names


def _confidence(value: Any) -> str:
    return f"{float(value):.1f}" if isinstance(value, int | float) else ""


def _matches(item: Item) -> str:
    return ", ".join(f'{m["Face"].get("ExternalImageId") or m["Face"]["FaceId"][:8]} ({m["Similarity"]:.1f})'
                     for m in item.get("FaceMatches") or ()) or "—"


def _segment_text(item: Item) -> str:
    if item.get("Type") == "SHOT":
        shot = item.get("ShotSegment") or {}
        return f'shot {shot.get("Index", "")} ({_confidence(shot.get("Confidence"))})'
    cue = item.get("TechnicalCueSegment") or {}
    return f'{cue.get("Type", "")} ({_confidence(cue.get("Confidence"))})'


def _named(member: str) -> Callable[[Item], str]:
    return lambda item: str((item.get(member) or {}).get("Name", ""))


def _named_text(member: str) -> Callable[[Item], str]:
    def text(item: Item) -> str:
        found = item.get(member) or {}
        parent = f' under {found["ParentName"]}' if found.get("ParentName") else ""
        return f'{found.get("Name", "")}{parent} ({_confidence(found.get("Confidence"))})'
    return text


def _start(item: Item) -> int:
    return int(item.get("Timestamp", item.get("StartTimestampMillis", 0)))


@dataclass(frozen=True)
class View:
    kind: str  # as in video_kinds.KINDS and the audit record's operation (Start<kind>, Get<kind>)
    label: str
    key: str  # the Get response's member holding the results
    track: Callable[[Item], str]
    text: Callable[[Item], str]
    column: str  # the table's heading of `text`
    hit: Callable[[Item], bool] = lambda item: False
    warning: str | None = None  # said above the results, when there are any

    @property
    def get(self) -> str:
        return f"Get{self.kind}"


VIEWS: dict[str, View] = {view.kind: view for view in (
    View("FaceSearch", "face search", "Persons", lambda i: f'person #{(i.get("Person") or {}).get("Index", 0)}',
         _matches, "Candidates (Similarity)", lambda i: bool(i.get("FaceMatches")),
         "Matches in a video are candidates, not identifications: a person must check each."),
    View("FaceDetection", "face detection", "Faces", lambda i: "faces",
         lambda i: _confidence((i.get("Face") or {}).get("Confidence")), "Detection confidence"),
    View("LabelDetection", "labels", "Labels", _named("Label"), _named_text("Label"), "Label (confidence)"),
    View("ContentModeration", "moderation", "ModerationLabels", _named("ModerationLabel"),
         _named_text("ModerationLabel"), "Moderation label (confidence)",
         lambda i: float((i.get("ModerationLabel") or {}).get("Confidence", 0)) >= 50),
    View("TextDetection", "text", "TextDetections", lambda i: str((i.get("TextDetection") or {}).get("Type", "")),
         lambda i: f'{(i.get("TextDetection") or {}).get("DetectedText", "")} '
                   f'({_confidence((i.get("TextDetection") or {}).get("Confidence"))})', "Text read (confidence)"),
    View("PersonTracking", "persons", "Persons", lambda i: f'person #{(i.get("Person") or {}).get("Index", 0)}',
         lambda i: "with face" if "Face" in (i.get("Person") or {}) else "body only", "Seen"),
    View("SegmentDetection", "segments", "Segments", lambda i: str(i.get("Type", "")), _segment_text,
         "Segment (confidence)"),
)}
PERSONS = ("FaceSearch", "PersonTracking")  # kinds whose tracks are people (`person #<Index>`)
LEGACY = {"search": "FaceSearch", "detection": "FaceDetection"}  # the kind= values of the first video view


def view_of(kind: str | None) -> View:
    return VIEWS.get(LEGACY.get(kind or "", kind or ""), VIEWS["FaceSearch"])


def kind_of_operation(operation: Any) -> str | None:
    """The job kind an audit record's operation names (StartLabelDetection, GetLabelDetection), or None."""
    text = str(operation or "")
    for prefix in ("Start", "Get"):
        if text.startswith(prefix) and text[len(prefix):] in VIEWS:
            return text[len(prefix):]
    return None


def spans(results: list[Item]) -> bool:
    """Whether the results last a while (segments, aggregated labels): the table gets an "Until" column."""
    return any(item.get("EndTimestampMillis") is not None for item in results)


def header(view: View, results: list[Item]) -> list[str]:
    return ["Time (ms)", *(["Until (ms)"] if spans(results) else []), "Track", view.column]


def rows(view: View, results: list[Item], shown: int) -> list[list[str]]:
    """Table rows (escaped), as `header` names them: time (ms), end (when they last), track, what was found."""
    until = spans(results)
    out = []
    for item in results[:shown]:
        end = item.get("EndTimestampMillis")
        out.append([esc(_start(item)), *([esc(end if end is not None else "")] if until else []),
                    esc(view.track(item)), esc(view.text(item))])
    return out


def timeline(view: View, results: list[Item], duration: float) -> str:
    """Inline SVG: x is time; one row per track; a hit is dark, anything else light; a span is drawn as wide as
    it lasts (segments, aggregated labels)."""
    counts = Counter(view.track(item) for item in results)
    tracks = [name for name, _ in counts.most_common(MAX_TRACKS)]
    if view.kind in PERSONS:  # people in the order of their index
        tracks.sort(key=lambda name: int(name.rsplit("#", 1)[-1]))
    left_out = len(counts) - len(tracks)
    end = max(duration, *(float(item.get("EndTimestampMillis") or _start(item)) for item in results), 1.0)
    span = WIDTH - LEFT - 20
    height = ROW * len(tracks) + 24
    marks = []
    for item in results:
        track = view.track(item)
        if track not in tracks:
            continue
        start = _start(item)
        x = LEFT + span * start / end
        stop = item.get("EndTimestampMillis")
        width = max(4.0, span * (float(stop) - start) / end - 2) if stop is not None else 4.0  # a gap between
        hit = view.hit(item)
        marks.append(f'<rect x="{x:.1f}" y="{tracks.index(track) * ROW + 3}" width="{width:.1f}" '
                     f'height="{ROW - 6}" class="{"hit" if hit else "seen"}"><title>{esc(start)} ms: '
                     f'{esc(track)}: {esc(view.text(item))}</title></rect>')
    labels = "".join(f'<text x="0" y="{i * ROW + 13}">{esc(t[:20])}</text>' for i, t in enumerate(tracks))
    axis = (f'<line x1="{LEFT}" x2="{WIDTH - 20}" y1="{height - 18}" y2="{height - 18}" class="axis"/>'
            f'<text x="{LEFT}" y="{height - 4}">0 s</text><text x="{WIDTH - 60}" y="{height - 4}">'
            f"{end / 1000:.1f} s</text>")
    hits = {"FaceSearch": "dark marks where a face search returned candidates",
            "ContentModeration": "dark marks where a moderation label's confidence is 50 or more"}.get(
        view.kind, "each mark a result")
    more = f"; {left_out} more tracks are in the table only" if left_out else ""
    return (f'<figure><svg viewBox="0 0 {WIDTH} {height}" role="img" class="timeline" aria-labelledby="tl-cap">'
            f'{labels}{"".join(marks)}{axis}</svg><figcaption id="tl-cap">Timeline ({esc(view.label)}): one row '
            f"per {esc(_row_name(view))}, {hits}{more}.</figcaption></figure>")


def _row_name(view: View) -> str:
    return {"FaceSearch": "tracked person", "PersonTracking": "tracked person", "FaceDetection": "kind (faces)",
            "LabelDetection": "label", "ContentModeration": "moderation label", "TextDetection": "text type",
            "SegmentDetection": "segment type"}[view.kind]
