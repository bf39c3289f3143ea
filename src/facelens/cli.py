"""`facelens` command line: detect | labels | moderation | text | compare | calibrate | eval | serve | index |
search | video | reindex | audit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facelens import errors
from facelens.bulk import EXTERNAL_ID_SOURCES
from facelens.imaging import MAX_S3_IMAGE_BYTES

if TYPE_CHECKING:
    from facelens.config import ServerSettings
    from facelens.context import RequestContext

QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")  # Rekognition's QualityFilter values


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise errors.InvalidParameterException(f"cannot read {path}: {exc.strerror}") from exc


def _print(response: dict) -> None:
    json.dump(response, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _settings(args: argparse.Namespace, **overrides: object) -> ServerSettings:
    """The settings a server with this data directory runs with (so the CLI and a running server agree)."""
    from facelens.config import ServerSettings

    return ServerSettings.from_env(data_dir=getattr(args, "data_dir", None), **overrides)


def _context(args: argparse.Namespace, **options: object) -> RequestContext:
    """The local operator, with the command's --purpose (audited)."""
    from facelens.context import RequestContext

    return RequestContext("local-cli", purpose=getattr(args, "purpose", None), **options)  # type: ignore[arg-type]


def _disclose(context: RequestContext) -> None:
    """Tell the operator the threshold a comparison or search was answered at (the HTTP headers' content)."""
    if context.disclosures:
        shown = ", ".join(f"{name} {value}" for name, value in sorted(context.disclosures.items()))
        print(f"answered at: {shown}", file=sys.stderr)


def cmd_detect(args: argparse.Namespace) -> int:
    from facelens.service import build_faces

    backend = build_faces(_settings(args))
    _print(backend.call("DetectFaces", {"Image": {"Bytes": _read(args.image)}, "Attributes": args.attributes}))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """CompareFaces through the gate: the server's compare floor applies; with --data-dir it is audited there."""
    from facelens.service import build, build_faces

    request = {"SourceImage": {"Bytes": _read(args.source)}, "TargetImage": {"Bytes": _read(args.target)},
               "SimilarityThreshold": args.threshold, "QualityFilter": args.quality_filter}
    context = _context(args)
    settings = _settings(args)
    with build(settings) if args.data_dir else build_faces(settings) as backend:
        _print(backend.call("CompareFaces", request, context))
    _disclose(context)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure the Similarity scale of the configured models (FACELENS_RECOGNIZER_MODEL, FACELENS_FLIP_TTA, ...)."""
    from facelens.eval.calibrate import main as calibrate_main
    from facelens.service import default_analyzer

    settings = _settings(args)
    return calibrate_main(args, default_analyzer(settings), settings.policy.min_search_similarity)


def cmd_eval(args: argparse.Namespace) -> int:
    """The model card of the configured models, through the service's own face path."""
    from facelens.config import EvalSettings
    from facelens.eval.report import main as eval_main
    from facelens.service import calibration_in_force, default_analyzer

    if args.dataset is None:
        args.dataset = str(EvalSettings.from_env().lfw)
    settings = _settings(args)
    return eval_main(args, default_analyzer(settings), calibration_in_force(settings))


def cmd_serve(args: argparse.Namespace) -> int:
    from facelens.api.server import serve
    from facelens.config import ConfigError, ServerSettings

    try:
        return serve(ServerSettings.from_env(host=args.host, port=args.port, data_dir=args.data_dir))
    except ConfigError as exc:
        print(f"facelens serve: {exc}", file=sys.stderr)
        return 2


def cmd_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facelens.bulk import image_files, index_files
    from facelens.service import build

    files = image_files(args.source)
    context = _context(args)
    with build(_settings(args)) as backend:
        try:
            backend.call("DescribeCollection", {"CollectionId": args.collection}, context)
        except errors.ResourceNotFoundException:
            backend.call("CreateCollection", {"CollectionId": args.collection}, context)
            print(f"created collection {args.collection}", file=sys.stderr)
        with tqdm(total=len(files), unit="img", desc=f"indexing into {args.collection}") as bar:
            try:
                report = index_files(backend.collections, args.collection, files,
                                     external_id_from=args.external_id_from, quality_filter=args.quality_filter,
                                     max_faces=args.max_faces, batch=args.batch, progress=bar.update,
                                     context=context)
            except KeyboardInterrupt:
                print(f"\ninterrupted after {bar.n} of {len(files)} files; the same command resumes",
                      file=sys.stderr)
                raise
        count = backend.call("DescribeCollection", {"CollectionId": args.collection}, context)["FaceCount"]
    for path, error in report.failed:
        print(f"failed: {path}: {error}", file=sys.stderr)
    _print({"Files": report.files, "SkippedAlreadyIndexed": report.skipped, "IndexedImages": report.indexed_images,
            "IndexedFaces": report.faces, "UnindexedFaces": report.unindexed_faces,
            "ImagesWithoutFaces": len(report.no_face), "FailedImages": len(report.failed),
            "CollectionFaceCount": count})
    return 1 if report.failed and not report.indexed_images else 0


def cmd_search(args: argparse.Namespace) -> int:
    """SearchFacesByImage through the gate (floors, purpose, audit), on an image file up to the S3 limit."""
    from facelens.service import build

    request = {"CollectionId": args.collection, "Image": {"Bytes": _read(args.image)},
               "FaceMatchThreshold": args.threshold, "MaxFaces": args.max_faces, "QualityFilter": args.quality_filter}
    context = _context(args, max_image_bytes=MAX_S3_IMAGE_BYTES)
    with build(_settings(args)) as backend:
        _print(backend.call("SearchFacesByImage", request, context))
    _disclose(context)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from facelens.accountability.commands import verify

    return verify(args, _settings(args))


def cmd_audit_export(args: argparse.Namespace) -> int:
    from facelens.accountability.commands import export

    return export(args, _settings(args))


def cmd_video(args: argparse.Namespace) -> int:
    """StartFaceDetection / StartFaceSearch on a local file, run here with a progress bar; prints Get*'s JSON."""
    from tqdm import tqdm

    from facelens.domain.video_jobs import LOCAL_BUCKET
    from facelens.service import build
    from facelens.video.decode import VideoError, probe

    path = Path(args.file).resolve()
    request: dict = {"Video": {"S3Object": {"Bucket": LOCAL_BUCKET, "Name": path.name}}}
    if args.video_command == "detect":
        start, get, key = "StartFaceDetection", "GetFaceDetection", "Faces"
        request["FaceAttributes"] = args.attributes
    else:
        start, get, key = "StartFaceSearch", "GetFaceSearch", "Persons"
        request["CollectionId"] = args.collection
        if args.threshold is not None:
            request["FaceMatchThreshold"] = args.threshold
    try:
        total = probe(path).duration_ms
    except VideoError:
        total = None  # the job reports why
    context = _context(args)
    with build(_settings(args, video_dir=path.parent)) as backend:
        assert backend.video is not None
        params = backend.validate(start, request)
        with tqdm(total=total, unit="ms", desc=f"{args.video_command} {path.name}", file=sys.stderr) as bar:
            job_id = backend.video.run_here(start, params, context, lambda ms: bar.update(max(0, ms - bar.n)))
            bar.update(max(0, (bar.total or 0) - bar.n))  # the last sample is up to one interval before the end
        response = backend.call(get, {"JobId": job_id}, context)
        while token := response.pop("NextToken", None):
            more = backend.call(get, {"JobId": job_id, "NextToken": token}, context)
            response[key] += more[key]
            response["NextToken"] = more.get("NextToken")
    response.pop("NextToken", None)
    _print(response)
    return 0 if response["JobStatus"] == "SUCCEEDED" else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    """Rebuild the vector store (FAISS cache or Milvus) of some or all collections from the database."""
    from facelens.service import build

    with build(_settings(args)) as backend:
        assert backend.store is not None and backend.vectors is not None
        with backend.store.transaction() as session:
            collections = session.list_collections(0, 1 << 62)
        wanted = set(args.collections)
        missing = wanted - {c.collection_id for c in collections}
        if missing:
            raise errors.ResourceNotFoundException(f"no collection {', '.join(sorted(missing))}")
        for collection in collections:
            if not wanted or collection.collection_id in wanted:
                count = backend.vectors.rebuild(collection.pk)
                print(f"{collection.collection_id}: {count} vectors", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facelens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    detect = sub.add_parser("detect", help="DetectFaces on an image file; prints Rekognition JSON")
    detect.add_argument("image")
    detect.add_argument("--attributes", nargs="+", default=["DEFAULT"], metavar="ATTR",
                        help="DEFAULT, ALL, or names such as AGE_RANGE GENDER EYES_OPEN MOUTH_OPEN")
    detect.set_defaults(func=cmd_detect)

    from facelens.cli_images import add_parsers as add_images  # labels | moderation | text
    add_images(sub)

    compare = sub.add_parser("compare", help="CompareFaces: largest face of SOURCE against faces of TARGET")
    compare.add_argument("source")
    compare.add_argument("target")
    compare.add_argument("--threshold", type=float, default=80.0, help="SimilarityThreshold (default 80)")
    compare.add_argument("--quality-filter", default="NONE", choices=QUALITY_FILTERS)
    compare.add_argument("--purpose", default=None, help="why (a case or ticket reference; audited)")
    compare.add_argument("--data-dir", default=None,
                         help="audit the comparison in this data directory's log (without it, nothing is recorded)")
    compare.set_defaults(func=cmd_compare)

    calibrate = sub.add_parser("calibrate", help="measure the score->FMR curve of the face model on a data set")
    calibrate.add_argument("--dataset", default=None, help="<identity>/<image> folder (default: LFW)")
    calibrate.add_argument("--output", default=None,
                           help="write a site calibration here (refused when the data cannot support the search "
                                "floor); default: the package's own conservative and pooled tables")
    calibrate.add_argument("--labels", default=None, metavar="CSV",
                           help="group labels (identity or image column, then one column per grouping); the "
                                "promise bounds every group's FMR")
    calibrate.add_argument("--aligned", action="store_true",
                           help="the images are aligned 112x112 crops: embed them as they are, without detecting")
    calibrate.set_defaults(func=cmd_calibrate)

    evaluate = sub.add_parser("eval", help="evaluation report (model card): HTML + JSON for the face model in use")
    evaluate.add_argument("--dataset", default=None,
                          help="<identity>/<image> folder (LFW: adds pairs.txt, genders; default: FACELENS_LFW)")
    evaluate.add_argument("--labels", default=None, metavar="CSV",
                          help="demographic groups: identity or image column, then one column per grouping")
    evaluate.add_argument("--aligned", action="store_true",
                          help="the images are aligned 112x112 crops: embed them as they are, without detecting")
    evaluate.add_argument("--out", default="eval-report", help="output folder (default ./eval-report)")
    evaluate.add_argument("--gallery", type=int, default=None,
                          help="false-match experiment gallery size in people (default min(4000, 70%% of people))")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the gallery draw (default 0)")
    evaluate.set_defaults(func=cmd_eval)

    serve = sub.add_parser("serve", help="the Rekognition-compatible HTTP service (boto3: endpoint_url=...)")
    serve.add_argument("--host", default=None, help="bind address (FACELENS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (FACELENS_PORT, default 8080)")
    serve.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    serve.set_defaults(func=cmd_serve)

    index = sub.add_parser("index", help="index every image of a folder or glob into a collection (resumable)")
    index.add_argument("collection", help="CollectionId (created when missing)")
    index.add_argument("source", metavar="DIR_OR_GLOB", help="a folder (searched recursively) or a glob pattern")
    index.add_argument("--external-id-from", default="filename", choices=EXTERNAL_ID_SOURCES,
                       help="ExternalImageId of each image (default: its file name)")
    index.add_argument("--quality-filter", default="AUTO", choices=QUALITY_FILTERS)
    index.add_argument("--max-faces", type=int, default=None, help="MaxFaces per image (default 100)")
    index.add_argument("--batch", type=int, default=16, help="images per batch through the models (default 16)")
    index.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    index.set_defaults(func=cmd_index)

    search = sub.add_parser("search", help="SearchFacesByImage: the largest face of IMAGE against a collection")
    search.add_argument("collection")
    search.add_argument("image")
    search.add_argument("--threshold", type=float, default=80.0, help="FaceMatchThreshold (default 80)")
    search.add_argument("--max-faces", type=int, default=10, help="MaxFaces (default 10)")
    search.add_argument("--quality-filter", default="NONE", choices=QUALITY_FILTERS)
    search.add_argument("--purpose", default=None, help="why (a case or ticket reference; audited)")
    search.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    search.set_defaults(func=cmd_search)

    video = sub.add_parser("video", help="faces in a stored video file (StartFaceDetection / StartFaceSearch)")
    video_sub = video.add_subparsers(dest="video_command", required=True)
    detect_video = video_sub.add_parser("detect", help="every face, about every 200 ms, tracked")
    detect_video.add_argument("file")
    detect_video.add_argument("--attributes", default="DEFAULT", choices=("DEFAULT", "ALL"))
    search_video = video_sub.add_parser("search", help="the people of a collection in a video")
    search_video.add_argument("collection")
    search_video.add_argument("file")
    search_video.add_argument("--threshold", type=float, default=None, help="FaceMatchThreshold (policy floor)")
    for parser_ in (detect_video, search_video):
        parser_.add_argument("--purpose", default=None, help="why (a case or ticket reference; audited)")
        parser_.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
        parser_.set_defaults(func=cmd_video)
    from facelens.cli_video import add_analyses  # labels, moderation, text, persons, segments
    add_analyses(video_sub)

    reindex = sub.add_parser("reindex", help="rebuild the vector store (FAISS or Milvus) from the database")
    reindex.add_argument("collections", nargs="*", metavar="COLLECTION", help="(default: every collection)")
    reindex.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    reindex.set_defaults(func=cmd_reindex)

    audit = sub.add_parser("audit", help="the hash-chained audit log: verify it, export it, subject-access queries")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; exits 1 naming the first broken record")
    verify.add_argument("--anchor", default=None, help="a head hash noted earlier that must still be in the chain")
    verify.add_argument("--anchors", action="append", metavar="FILE",
                        help="another replica's anchor file (audit-anchors.jsonl) to check against; repeatable "
                             "(the data directory's own and the S3 witness are always read)")
    verify.add_argument("--export", default=None, metavar="JSONL", help="verify an exported JSON Lines file instead")
    verify.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    verify.set_defaults(func=cmd_audit_verify)
    export = audit_sub.add_parser("export", help="records as JSON Lines or CSV (with their hashes)")
    export.add_argument("--since", default=None, help="ISO date/time (UTC unless given), e.g. 2026-11-01")
    export.add_argument("--collection", default=None, help="only records of this CollectionId")
    export.add_argument("--face-id", default=None,
                        help="subject access: only records naming this FaceId (searches that returned it, ...)")
    export.add_argument("--format", default="jsonl", choices=("jsonl", "csv"))
    export.add_argument("--output", default=None, help="file (default: standard output)")
    export.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    export.set_defaults(func=cmd_audit_export)
    from facelens.cli_streams import add_parser as add_streams  # live video oversight (its own module)
    add_streams(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except errors.FaceLensError as exc:
        message = "; ".join(line.strip() for line in exc.message.splitlines() if line.strip())
        print(f"{exc.code}: {message}", file=sys.stderr)  # one line, whatever the message
        return 2 if isinstance(exc, errors.ClientError) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
