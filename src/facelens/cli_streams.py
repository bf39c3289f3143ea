"""`facelens streams ...`: oversight of live video, for the operator of a data directory.

`facelens streams watchers` lists every stream processor: who created it (access key), which camera it
watches, for which collection, why (the purpose fixed at its creation), at what requested threshold, and its
status now. It reads the same store the server uses (the data directory, or FACELENS_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import json
import sys


def cmd_watchers(args: argparse.Namespace) -> int:
    from facelens.config import ServerSettings
    from facelens.service import build

    with build(ServerSettings.from_env(data_dir=args.data_dir)) as backend:
        assert backend.streams is not None
        processors = backend.streams.watchers()
    rows = [{"Name": p.name, "Status": p.status, "Camera": p.camera, "CollectionId": p.collection_id,
             "Purpose": p.purpose, "AccessKey": p.key_id,
             "FaceMatchThreshold": ((p.request.get("Settings") or {}).get("FaceSearch") or {}).get(
                 "FaceMatchThreshold"),
             "Created": p.created.isoformat(timespec="seconds"), "StatusMessage": p.status_message} for p in processors]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    columns = ("Name", "Status", "Camera", "CollectionId", "Purpose", "AccessKey", "Created")
    table = [columns] + [tuple("-" if row[c] is None else str(row[c]) for c in columns) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `facelens streams` on the CLI's subcommands."""
    streams = sub.add_parser("streams", help="live video: who is watching which camera, for which collection, why")
    streams_sub = streams.add_subparsers(dest="streams_command", required=True)
    watchers = streams_sub.add_parser("watchers", help="every stream processor: camera, collection, purpose, key")
    watchers.add_argument("--json", action="store_true", help="JSON instead of a table")
    watchers.add_argument("--data-dir", default=None, help="data directory (FACELENS_DATA_DIR, default ./data)")
    watchers.set_defaults(func=cmd_watchers)
