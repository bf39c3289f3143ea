"""Tampering a real server's audit log where the hash chain alone cannot see it: records cut off the end and
subject-access index rows deleted. A plain `facelens audit verify` (no flags), run as a subprocess on the data
directory `facelens serve` wrote, must report each, naming what is missing, from the anchors kept outside the
database (the data directory's anchor file, an S3 witness)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service_fixtures import BIN, BUCKET, Server, client, moto_s3, s3_env, start_server  # noqa: F401

pytestmark = pytest.mark.slow

KEYS = {"FACELENS_ACCESS_KEYS": "FLKANCHOR00000000001:anchor-secret", "FACELENS_WORKERS": "2",
        "FACELENS_AUDIT_ANCHOR_INTERVAL": "0.2"}
KEY = ("FLKANCHOR00000000001", "anchor-secret")
ANCHORS = Path("collections") / "audit-anchors.jsonl"  # beside the SQLite database, in the data directory


def exercise(server: Server, astronaut: bytes, cameraman: bytes, searches: int = 8) -> str:
    """A collection, two faces, some searches: a dozen audit records. The first indexed FaceId."""
    rek = client(server.url, *KEY)
    name = f"c-{uuid.uuid4().hex[:8]}"
    rek.create_collection(CollectionId=name)
    face_id = rek.index_faces(CollectionId=name, Image={"Bytes": astronaut})["FaceRecords"][0]["Face"]["FaceId"]
    rek.index_faces(CollectionId=name, Image={"Bytes": cameraman})
    for _ in range(searches):
        rek.search_faces_by_image(CollectionId=name, Image={"Bytes": astronaut})
    return face_id


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, astronaut_jpeg: bytes,
            cameraman_jpeg: bytes) -> Iterator[tuple[Path, str]]:
    """A data directory a real server wrote a dozen records into, the server stopped; and a FaceId it names."""
    data = tmp_path_factory.mktemp("anchors") / "data"
    server = start_server(data, KEYS)
    try:
        face_id = exercise(server, astronaut_jpeg, cameraman_jpeg)
    finally:
        server.stop()
    yield data, face_id


@pytest.fixture
def copy(written: tuple[Path, str], tmp_path: Path) -> Path:
    """This test's own copy of the written data directory (to tamper with)."""
    target = tmp_path / "data"
    shutil.copytree(written[0], target)
    return target


def verify(data: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A plain `facelens audit verify` (no flags but the data directory), as an operator runs it."""
    return subprocess.run([str(BIN / "facelens"), "audit", "verify", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120, env=env)


def tamper(data: Path, *statements: str) -> int:
    """Drop the append-only guards and run `statements` on the SQLite file; the newest seq before them."""
    with contextlib.closing(sqlite3.connect(data / "collections" / "facelens.db", isolation_level=None)) as db:
        newest = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for statement in statements:
            db.execute(statement.format(newest=newest))
    return newest


def head_hash(data: Path, seq: int) -> str:
    with contextlib.closing(sqlite3.connect(data / "collections" / "facelens.db")) as db:
        return db.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()[0]


def test_the_untouched_log_verifies_with_its_anchor(copy: Path) -> None:
    result = verify(copy)
    assert result.returncode == 0, result.stderr
    assert "audit log intact" in result.stdout


@pytest.mark.parametrize(("cut", "missing"), [
    ("DELETE FROM audit WHERE seq = {newest}", "record {newest} missing"),
    ("DELETE FROM audit WHERE seq > {newest} - 10", "records {first}-{newest} missing"),
    ("DELETE FROM audit", "records 1-{newest} missing"),
])
def test_records_cut_off_the_end_are_reported_by_a_plain_verify(copy: Path, cut: str, missing: str) -> None:
    newest = tamper(copy)
    hashed = head_hash(copy, newest)
    tamper(copy, cut)
    result = verify(copy)
    assert result.returncode == 1, result.stdout
    assert missing.format(newest=newest, first=newest - 9) in result.stderr
    assert f"names seq {newest} with hash {hashed}" in result.stderr


def test_deleted_subject_access_rows_are_reported(copy: Path, written: tuple[Path, str]) -> None:
    face_id = written[1]

    def subject_access() -> str:
        return subprocess.run([str(BIN / "facelens"), "audit", "export", "--data-dir", str(copy), "--face-id",
                               face_id], capture_output=True, text=True, timeout=120).stderr

    assert "exported 9 records" in subject_access()  # its IndexFaces and the eight searches that returned it
    tamper(copy, f"DELETE FROM audit_faces WHERE face_id = '{face_id}'")
    assert "exported 0 records" in subject_access()
    result = verify(copy)
    assert result.returncode == 1, result.stdout
    assert face_id in result.stderr and "audit_faces" in result.stderr


def test_a_torn_last_anchor_line_is_tolerated(copy: Path) -> None:
    with (copy / ANCHORS).open("a") as handle:
        handle.write('{"hash":"ab12')  # a write cut short by a crash
    assert verify(copy).returncode == 0
    newest = tamper(copy, "DELETE FROM audit WHERE seq = {newest}")
    result = verify(copy)
    assert result.returncode == 1
    assert f"record {newest} missing" in result.stderr


def test_the_s3_witness_reports_truncation_without_the_anchor_file(
        tmp_path: Path, request: pytest.FixtureRequest, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    s3 = request.getfixturevalue("moto_s3")  # moto's S3 server: the witness bucket
    prefix = f"witness-{uuid.uuid4().hex[:8]}/"
    env = {**KEYS, **s3_env(s3), "FACELENS_AUDIT_WITNESS_S3": f"s3://{BUCKET}/{prefix}"}
    server = start_server(tmp_path / "data", env)
    try:
        exercise(server, astronaut_jpeg, cameraman_jpeg, searches=2)
        newest = tamper(server.data_dir, "SELECT 1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the witness is sent every FACELENS_AUDIT_ANCHOR_INTERVAL
            listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
            seqs = [json.loads(s3.client().get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())["seq"]
                    for item in listed]
            if newest in seqs:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no witness of seq {newest} under s3://{BUCKET}/{prefix}")
    finally:
        server.stop()
    (server.data_dir / ANCHORS).unlink()  # whoever cut the log also removed the local anchor file
    tamper(server.data_dir, "DELETE FROM audit WHERE seq > {newest} - 3")
    result = verify(server.data_dir, server.env)
    assert result.returncode == 1, result.stdout
    assert f"records {newest - 2}-{newest} missing" in result.stderr
    assert f"s3://{BUCKET}/{prefix}" in result.stderr


def test_replicas_sharing_postgresql_each_anchor_and_verify_takes_the_highest(
        tmp_path: Path, astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    import psycopg

    from tests.pg_fixtures import fresh_database

    with fresh_database() as url:
        env = {**KEYS, "FACELENS_DATABASE_URL": url}
        first, second = tmp_path / "first" / "data", tmp_path / "second" / "data"
        for data in (first, second):  # one after the other: the second replica writes the newest records
            server = start_server(data, env)
            try:
                face_id = exercise(server, astronaut_jpeg, cameraman_jpeg, searches=2)
            finally:
                server.stop()
        run_env = {**server.env}
        assert verify(first, run_env).returncode == 0
        with psycopg.connect(url, autocommit=True) as db:
            newest = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
            db.execute("ALTER TABLE audit DISABLE TRIGGER USER")
            db.execute("DELETE FROM audit WHERE seq > %s", (newest - 2,))
            db.execute("DELETE FROM audit_faces WHERE face_id = %s", (face_id,))
        result = verify(second, run_env)  # the replica that anchored the newest record
        assert result.returncode == 1, result.stdout
        assert f"records {newest - 1}-{newest} missing" in result.stderr
        other = subprocess.run([str(BIN / "facelens"), "audit", "verify", "--data-dir", str(first), "--anchors",
                                str(second / ANCHORS)], capture_output=True, text=True, timeout=120, env=run_env)
        assert other.returncode == 1 and f"records {newest - 1}-{newest} missing" in other.stderr
        with psycopg.connect(url, autocommit=True) as db:  # put the cut records' absence aside: the index alone
            db.execute("DELETE FROM audit_faces WHERE seq > %s", (newest - 2,))
        (second / ANCHORS).unlink()
        (first / ANCHORS).unlink()
        index = verify(first, run_env)
        assert index.returncode == 1 and face_id in index.stderr and "audit_faces" in index.stderr
