"""Face crops (a collection policy's KeepFaceCrops) through a real `facelens serve` and boto3: none is kept by
default; once the policy opts in, IndexFaces keeps a 96x96 JPEG per face; each crop leaves every file of the data
directory (database, WAL, anything else) with its face: DeleteFaces, the retention sweep and DeleteCollection.
The same cascade on PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from tests.key_fixtures import credentials_file, profile, write_credentials
from tests.pg_fixtures import postgres_url  # noqa: F401 - fixture
from tests.service_fixtures import Server, client, start_server

pytestmark = pytest.mark.slow

KEY = ("FLKCROPS000000000001", "crops-secret")
BOUND_SECONDS = 2.0  # docs/accountability.md: a deleted face leaves the disk within 2 s of the last reader
CREDENTIALS = credentials_file(profile("crops", KEY, facelens_admin="true"))


def holders(data: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file() and needle in p.read_bytes())


def gone(data: Path, needle: bytes) -> list[str]:
    """The files still holding `needle` once the bound has passed (empty: it left the disk)."""
    started = time.monotonic()
    while holders(data, needle) and time.monotonic() - started < BOUND_SECONDS + 1.0:
        time.sleep(0.1)
    return holders(data, needle)


def serve(data: Path, **env: str) -> Server:
    data.mkdir(parents=True)
    write_credentials(data, CREDENTIALS)
    return start_server(data, {"FACELENS_WORKERS": "2", "FACELENS_RETENTION_INTERVAL": "1", **env})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = serve(tmp_path / "data")
    yield server
    server.stop()


def admin(server: Server):
    from facelens.client import admin_client
    from tests.service_fixtures import REGION

    return admin_client(server.url, region_name=REGION, aws_access_key_id=KEY[0], aws_secret_access_key=KEY[1])


def crops(database: Path) -> dict[str, bytes]:
    """FaceId -> the crop's bytes, read from the database file as another process would."""
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
        return dict(db.execute("SELECT f.face_id, c.jpeg FROM face_crops c JOIN faces f ON f.seq = c.face_seq"))


def index(rek: object, collection: str, image: bytes, name: str) -> str:
    return rek.index_faces(CollectionId=collection, Image={"Bytes": image},
                           ExternalImageId=name)["FaceRecords"][0]["Face"]["FaceId"]


def test_a_crop_is_kept_only_on_opt_in_and_leaves_the_disk_with_its_face(server: Server, astronaut_jpeg: bytes,
                                                                         cameraman_jpeg: bytes) -> None:
    rek, policies = client(server.url, *KEY, read_timeout=180), admin(server)
    database = server.data_dir / "collections" / "facelens.db"
    rek.create_collection(CollectionId="crops")
    index(rek, "crops", cameraman_jpeg, "before")
    assert crops(database) == {}  # off by default
    assert policies.get_collection_policy(CollectionId="crops")["EffectivePolicy"]["KeepFaceCrops"] is False

    policies.put_collection_policy(CollectionId="crops", Policy={"KeepFaceCrops": True})
    eileen = index(rek, "crops", astronaut_jpeg, "eileen")
    cameraman = index(rek, "crops", cameraman_jpeg, "cameraman")
    kept = crops(database)
    assert set(kept) == {eileen, cameraman}  # the face indexed before the opt-in has none
    thumbnail = Image.open(io.BytesIO(kept[eileen]))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (96, 96))
    assert holders(server.data_dir, kept[eileen])

    assert rek.delete_faces(CollectionId="crops", FaceIds=[eileen])["DeletedFaces"] == [eileen]
    assert gone(server.data_dir, kept[eileen]) == [], "DeleteFaces left the crop on disk"
    assert set(crops(database)) == {cameraman}

    rek.delete_collection(CollectionId="crops")
    assert gone(server.data_dir, kept[cameraman]) == [], "DeleteCollection left the crop on disk"
    assert crops(database) == {}


def test_the_retention_sweep_deletes_a_crop_with_its_face(server: Server, astronaut_jpeg: bytes) -> None:
    rek, policies = client(server.url, *KEY, read_timeout=180), admin(server)
    database = server.data_dir / "collections" / "facelens.db"
    rek.create_collection(CollectionId="kept-briefly")
    policies.put_collection_policy(CollectionId="kept-briefly", Policy={"KeepFaceCrops": True,
                                                                        "RetentionDays": 3 / 86400})
    face_id = index(rek, "kept-briefly", astronaut_jpeg, "eileen")
    crop = crops(database)[face_id]
    deadline = time.monotonic() + 30
    while rek.describe_collection(CollectionId="kept-briefly")["FaceCount"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rek.describe_collection(CollectionId="kept-briefly")["FaceCount"] == 0  # the sweep (every 1 s) ran
    assert gone(server.data_dir, crop) == [], "the retention sweep left the crop on disk"


def test_crops_on_postgresql_go_with_their_faces(tmp_path: Path, postgres_url: str,  # noqa: F811
                                                  astronaut_jpeg: bytes, cameraman_jpeg: bytes) -> None:
    server = serve(tmp_path / "data", FACELENS_DATABASE_URL=postgres_url)
    try:
        rek, policies = client(server.url, *KEY, read_timeout=180), admin(server)
        rek.create_collection(CollectionId="pg-crops")
        policies.put_collection_policy(CollectionId="pg-crops", Policy={"KeepFaceCrops": True})
        eileen = index(rek, "pg-crops", astronaut_jpeg, "eileen")
        index(rek, "pg-crops", cameraman_jpeg, "cameraman")
        with psycopg.connect(postgres_url, autocommit=True) as db:
            def count() -> int:
                return db.execute("SELECT count(*) FROM face_crops").fetchone()[0]

            assert count() == 2
            rek.delete_faces(CollectionId="pg-crops", FaceIds=[eileen])
            assert count() == 1
            rek.delete_collection(CollectionId="pg-crops")
            assert count() == 0
    finally:
        server.stop()
