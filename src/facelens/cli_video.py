"""`facelens video labels|moderation|text|persons|segments FILE`: a stored-video analysis run in the CLI process.

Like `facelens video detect`: the job is created and claimed in one transaction on the data directory (a server
using it does not take the job), run here with a progress bar, and the JSON its Get* would return is printed,
all pages merged. Exit status 1 when the job failed. Registered from `facelens.cli` (`add_analyses`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# subcommand -> (Start*, Get*, the results' member, help)
ANALYSES = {
    "labels": ("StartLabelDetection", "GetLabelDetection", "Labels", "objects per sampled frame (DetectLabels)"),
    "moderation": ("StartContentModeration", "GetContentModeration", "ModerationLabels",
                   "explicit content per sampled frame (DetectModerationLabels)"),
    "text": ("StartTextDetection", "GetTextDetection", "TextDetections", "lines and words, once a second"),
    "persons": ("StartPersonTracking", "GetPersonTracking", "Persons", "persons tracked, with their faces"),
    "segments": ("StartSegmentDetection", "GetSegmentDetection", "Segments", "shot boundaries and black frames"),
}


def add_analyses(video_sub: Any) -> None:
    """The analyses' subcommands under `facelens video`."""
    for name, (_, _, _, text) in ANALYSES.items():
        parser = video_sub.add_parser(name, help=text)
        parser.add_argument("file")
        if name in ("labels", "moderation"):
            parser.add_argument("--min-confidence", type=float, default=None, help="MinConfidence (default 50)")
            parser.add_argument("--aggregate", default="TIMESTAMPS", choices=("TIMESTAMPS", "SEGMENTS"),
                                help="AggregateBy of the printed result")
        if name == "segments":
            parser.add_argument("--types", nargs="+", default=["SHOT", "TECHNICAL_CUE"],
                                choices=("SHOT", "TECHNICAL_CUE"), help="SegmentTypes (default both)")
        parser.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
        parser.set_defaults(func=cmd_analysis)


def cmd_analysis(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facelens.config import ServerSettings
    from facelens.context import RequestContext
    from facelens.domain.video_jobs import LOCAL_BUCKET
    from facelens.service import build
    from facelens.video.decode import VideoError, probe

    start, get, key, _ = ANALYSES[args.video_command]
    path = Path(args.file).resolve()
    request: dict[str, Any] = {"Video": {"S3Object": {"Bucket": LOCAL_BUCKET, "Name": path.name}}}
    if getattr(args, "min_confidence", None) is not None:
        request["MinConfidence"] = args.min_confidence
    if args.video_command == "segments":
        request["SegmentTypes"] = args.types
    reading: dict[str, Any] = {"AggregateBy": args.aggregate} if hasattr(args, "aggregate") else {}
    try:
        total = probe(path).duration_ms
    except VideoError:
        total = None  # the job reports why
    context = RequestContext("local-cli")
    settings = ServerSettings.from_env(data_dir=args.data_dir, video_dir=path.parent)
    with build(settings) as backend:
        assert backend.video is not None
        params = backend.validate(start, request)
        with tqdm(total=total, unit="ms", desc=f"{args.video_command} {path.name}", file=sys.stderr) as bar:
            job_id = backend.video.run_here(start, params, context, lambda ms: bar.update(max(0, ms - bar.n)))
            bar.update(max(0, (bar.total or 0) - bar.n))
        response = backend.call(get, {"JobId": job_id, **reading}, context)
        while token := response.pop("NextToken", None):
            more = backend.call(get, {"JobId": job_id, "NextToken": token, **reading}, context)
            response[key] += more[key]
            response["NextToken"] = more.get("NextToken")
    response.pop("NextToken", None)
    json.dump(response, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if response["JobStatus"] == "SUCCEEDED" else 1
