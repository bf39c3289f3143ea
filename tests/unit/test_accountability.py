"""Policy arithmetic, the audit log's hash chain against tampering in the database itself, and `facelens audit`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facelens.accountability import audit
from facelens.accountability.anchors import ANCHOR_FILE
from facelens.accountability.policy import (
    Policy,
    PolicyError,
    false_match_probability,
    search_threshold,
    size_floor,
)
from facelens.cli import main
from facelens.context import KeyScope, RequestContext
from facelens.store.sql.sqlite import DATABASE
from tests.collections_fakes import DIM, make_backend, unit


# -- policy
def test_size_floor_is_the_issue_arithmetic() -> None:
    assert size_floor(25_000, 0.01) == pytest.approx(83.98, abs=0.01)  # the 25,000-mugshot gallery: 84
    assert size_floor(50, 0.01) == pytest.approx(56.99, abs=0.01)
    assert size_floor(0, 0.01) == 0.0


def test_search_threshold_takes_the_largest_of_request_minimum_and_size_floor() -> None:
    policy = Policy()  # min 80, p = 1%
    small = search_threshold(policy, 50.0, 80.0, 100)
    assert (small.requested, small.effective, small.floor) == (50.0, 80.0, 80.0)
    large = search_threshold(policy, None, 80.0, 25_000)
    assert large.effective == pytest.approx(83.98, abs=0.01)
    assert large.false_match_probability == pytest.approx(0.01, rel=0.01)  # the floor keeps p at 1%
    above = search_threshold(policy, 95.0, 80.0, 25_000)
    assert above.effective == 95.0 and above.false_match_probability < 1e-3


def test_false_match_probability_grows_with_the_gallery() -> None:
    assert false_match_probability(80.0, 1) == pytest.approx(1e-6)
    assert false_match_probability(80.0, 1_000_000) == pytest.approx(1 - np.exp(-1), rel=1e-3)
    assert false_match_probability(50.0, 10) < false_match_probability(50.0, 100)


def test_policy_refuses_impossible_values_and_reads_the_environment() -> None:
    with pytest.raises(PolicyError, match="MaxFalseMatchProbability"):
        Policy(max_false_match_probability=0.0)
    with pytest.raises(PolicyError, match="MinSearchSimilarity"):
        Policy(min_search_similarity=101)
    env = Policy.from_env({"FACELENS_MIN_SEARCH_SIMILARITY": "85", "FACELENS_REQUIRE_PURPOSE": "1",
                           "FACELENS_MAX_FALSE_MATCH_PROBABILITY": "0.001"})
    assert (env.min_search_similarity, env.require_purpose, env.max_false_match_probability) == (85.0, True, 0.001)
    with pytest.raises(PolicyError, match="FACELENS_MIN_COMPARE_SIMILARITY"):
        Policy.from_env({"FACELENS_MIN_COMPARE_SIMILARITY": "high"})


def test_key_scopes() -> None:
    from facelens.errors import AccessDeniedException

    read_only = KeyScope(read_only=True)
    read_only.check("SearchFacesByImage", "a")
    for operation in ("IndexFaces", "DeleteFaces", "DeleteCollection", "PutCollectionPolicy"):
        with pytest.raises(AccessDeniedException):
            read_only.check(operation, "a")
    scoped = KeyScope(collections=frozenset({"a"}), operations=frozenset({"SearchFaces"}))
    scoped.check("SearchFaces", "a")
    with pytest.raises(AccessDeniedException, match="collection b"):
        scoped.check("SearchFaces", "b")
    with pytest.raises(AccessDeniedException, match="not allowed to call ListFaces"):
        scoped.check("ListFaces", "a")
    assert scoped.sees("a") and not scoped.sees("b")


# -- the audit trail of backend operations, and tampering
@pytest.fixture
def audited(tmp_path: Path) -> Path:
    """A data dir whose collection store holds a few audited operations (the layout `facelens serve` uses)."""
    store_dir = tmp_path / "data" / "collections"
    rng = np.random.default_rng(3)
    people = unit(rng.standard_normal((3, DIM)))
    context = RequestContext(key_id="FLKTEST", purpose="case 42")
    with make_backend(store_dir.parent) as backend:
        backend.call("CreateCollection", {"CollectionId": "c1"}, context)
        ids = backend.collections.add_embeddings("c1", people)
        for face_id in ids:
            backend.call("SearchFaces", {"CollectionId": "c1", "FaceId": face_id, "FaceMatchThreshold": 10.0},
                         context)
        backend.call("DeleteFaces", {"CollectionId": "c1", "FaceIds": ids[:1]}, context)
    return tmp_path / "data"


def _database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "collections" / DATABASE, isolation_level=None)


def _rows(data_dir: Path) -> list[tuple]:
    with _database(data_dir) as db:
        return db.execute("SELECT seq, operation, record FROM audit ORDER BY seq").fetchall()


def test_every_operation_is_recorded_with_who_why_and_what(audited: Path) -> None:
    rows = _rows(audited)
    assert [op for _, op, _ in rows] == ["CreateCollection", "IndexFaces", "SearchFaces", "SearchFaces",
                                         "SearchFaces", "DeleteFaces"]
    search = json.loads(rows[2][2])
    assert search["key"] == "FLKTEST" and search["purpose"] == "case 42" and search["face_model"] == "synthetic"
    assert search["requested_threshold"] == 10.0 and search["effective_threshold"] == 80.0  # the server floor
    assert search["gallery"] == 3 and search["matches"] == []  # three different people: nothing above 80
    assert "embedding" not in rows[1][2] and "Bytes" not in rows[1][2]


def test_the_log_refuses_plain_updates_and_deletes(audited: Path) -> None:
    with _database(audited) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit SET record = '{}' WHERE seq = 2")
    with _database(audited) as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 2")


def _tamper(data_dir: Path, *statements: str) -> None:
    """What someone with write access to the file can do: drop the guards, then change rows."""
    with _database(data_dir) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for statement in statements:
            db.execute(statement)


@pytest.mark.parametrize(("edit", "broken"), [
    # an edited similarity / purpose, with the row's own hash left as it was
    ("UPDATE audit SET record = replace(record, '\"purpose\":\"case 42\"', '\"purpose\":\"case 43\"') "
     "WHERE seq = 3", 3),
    # a deleted record in the middle
    ("DELETE FROM audit WHERE seq = 4", 5),
    # two records swapped, whole rows (content, links and hashes) moved to each other's place
    ("UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; "
     "UPDATE audit SET seq = 4 WHERE seq = -3", 3),
    # a record edited and its own hash recomputed: the next record's link no longer fits
    ("RECHAIN 2", 3),
    # an indexed column edited (the collection a record is filed under)
    ("UPDATE audit SET collection = 'other' WHERE seq = 5", 5),
])
def test_audit_verify_names_the_first_broken_record(audited: Path, edit: str, broken: int,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert main(["audit", "verify", "--data-dir", str(audited)]) == 0
    assert "6 records" in capsys.readouterr().out
    if edit.startswith("RECHAIN"):
        seq = int(edit.split()[1])
        with _database(audited) as db:
            prev, text = db.execute("SELECT prev_hash, record FROM audit WHERE seq = ?", (seq,)).fetchone()
        text = text.replace('"outcome":"ok"', '"outcome":"no"')
        _tamper(audited, f"UPDATE audit SET record = '{text}', hash = '{audit.link(prev, text)}' WHERE seq = {seq}")
    else:
        _tamper(audited, *edit.split("; "))
    assert main(["audit", "verify", "--data-dir", str(audited)]) == 1
    assert f"BROKEN at record {broken}:" in capsys.readouterr().err


def test_cutting_the_end_off_is_caught_by_an_anchor(audited: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["audit", "verify", "--data-dir", str(audited)]) == 0
    head = capsys.readouterr().out.split("head ")[1].split()[0]
    _tamper(audited, "DELETE FROM audit WHERE seq = 6")
    assert main(["audit", "verify", "--data-dir", str(audited)]) == 1  # the data directory's anchor file
    assert "record 6 missing: the anchor of" in capsys.readouterr().err
    (audited / "collections" / ANCHOR_FILE).unlink()
    assert main(["audit", "verify", "--data-dir", str(audited)]) == 0  # without anchors a shorter chain is a chain
    assert "no anchor found" in capsys.readouterr().out
    assert main(["audit", "verify", "--data-dir", str(audited), "--anchor", head]) == 1  # one noted by hand
    assert "anchor" in capsys.readouterr().err


def test_export_filters_and_verifies_on_its_own(audited: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    everything = tmp_path / "all.jsonl"
    assert main(["audit", "export", "--data-dir", str(audited), "--output", str(everything)]) == 0
    lines = [json.loads(line) for line in everything.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert main(["audit", "verify", "--export", str(everything)]) == 0
    forged = everything.read_text().replace('"case 42"', '"case 99"', 1)
    everything.write_text(forged)
    assert main(["audit", "verify", "--export", str(everything)]) == 1

    deleted = lines[5]["deleted"][0]
    capsys.readouterr()
    assert main(["audit", "export", "--data-dir", str(audited), "--face-id", deleted, "--format", "csv"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("seq,time,operation,collection,key")
    assert [row.split(",")[2] for row in table[1:]] == ["IndexFaces", "DeleteFaces"]  # subject access

    assert main(["audit", "export", "--data-dir", str(audited), "--collection", "nope"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "export", "--data-dir", str(audited), "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
