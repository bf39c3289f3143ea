"""`facelens labels | moderation | text IMAGE`: image recognition beyond faces, as DetectLabels,
DetectModerationLabels and DetectText answer it (the same service calls, the same input rules)."""

from __future__ import annotations

import argparse

from facelens.cli import _print, _read, _settings


def cmd_labels(args: argparse.Namespace) -> int:
    from facelens.service import build_faces

    request = {"Image": {"Bytes": _read(args.image)}, "Features": args.features, "MinConfidence": args.min_confidence}
    _print(build_faces(_settings(args)).call("DetectLabels", {k: v for k, v in request.items() if v is not None}))
    return 0


def cmd_moderation(args: argparse.Namespace) -> int:
    """DetectModerationLabels (open_nsfw + nsfwjs: Explicit, Suggestive, ContentTypes Illustrated; docs/models.md)."""
    from facelens.service import build_faces

    backend = build_faces(_settings(args))
    _print(backend.call("DetectModerationLabels", {"Image": {"Bytes": _read(args.image)},
                                                   "MinConfidence": args.min_confidence}))
    return 0


def cmd_text(args: argparse.Namespace) -> int:
    from facelens.service import build_faces

    request: dict = {"Image": {"Bytes": _read(args.image)}}
    if args.min_confidence is not None:
        request["Filters"] = {"WordFilter": {"MinConfidence": args.min_confidence}}
    _print(build_faces(_settings(args)).call("DetectText", request))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The three commands, on `facelens`'s subcommands."""
    labels = sub.add_parser("labels", help="DetectLabels on an image file (objects, image properties); prints JSON")
    labels.add_argument("image")
    labels.add_argument("--features", nargs="+", choices=("GENERAL_LABELS", "IMAGE_PROPERTIES"), default=None)
    labels.add_argument("--min-confidence", type=float, default=None, help="0-100 (default 55, as Rekognition)")
    labels.set_defaults(func=cmd_labels)

    moderation = sub.add_parser("moderation", help="DetectModerationLabels on an image file (Explicit and "
                                "Suggestive only); prints Rekognition JSON")
    moderation.add_argument("image")
    moderation.add_argument("--min-confidence", type=float, default=50.0, help="MinConfidence (default 50)")
    moderation.set_defaults(func=cmd_moderation)

    text = sub.add_parser("text", help="DetectText on an image file (LINEs and WORDs); prints Rekognition JSON")
    text.add_argument("image")
    text.add_argument("--min-confidence", type=float, metavar="PERCENT", help="WordFilter MinConfidence (0-100)")
    text.set_defaults(func=cmd_text)
