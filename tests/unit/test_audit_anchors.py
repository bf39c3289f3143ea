"""The anchors' own rules: a torn line is skipped and fenced off, a head is sent to a webhook witness once."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

from facelens.accountability.anchors import ANCHOR_FILE, Anchoring, WebhookWitness, read_file
from facelens.store.audit import GENESIS, seal


def test_a_torn_line_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path: Path) -> None:
    rows = [seal({"operation": "CreateCollection"}, 1, 1.0, GENESIS)]
    rows.append(seal({"operation": "DeleteCollection"}, 2, 2.0, rows[0].hash))
    anchoring = Anchoring(tmp_path)
    anchoring.committed(rows[:1])
    anchoring.close()
    with (tmp_path / ANCHOR_FILE).open("a") as handle:
        handle.write('{"seq":2,"ha')  # killed mid-write
    again = Anchoring(tmp_path)
    again.committed(rows[1:])
    again.close()
    best, skipped = read_file(tmp_path / ANCHOR_FILE)
    assert (best.seq, best.hash, skipped) == (2, rows[1].hash, 1)


def test_the_head_is_posted_to_the_webhook_witness_once(tmp_path: Path) -> None:
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    row = seal({"operation": "CreateCollection"}, 1, 1.0, GENESIS)
    anchoring = Anchoring(tmp_path, [WebhookWitness(f"http://127.0.0.1:{server.server_port}/audit")], 3600)
    try:
        anchoring.committed([row])
        anchoring.start(lambda: row)
        anchoring.tick()  # the same head again: not sent twice
    finally:
        anchoring.close()
        server.shutdown()
    assert [(item["seq"], item["hash"]) for item in received] == [(1, row.hash)]
