"""Three `facelens serve` replicas on one PostgreSQL database and one Milvus standalone server: concurrent IndexFaces
through all three, every acknowledged face found through each, one linear audit chain, and a video job whose
replica is killed with SIGKILL mid-job finished by another."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from facelens.pipeline import default_analyzer
from tests.conftest import encode
from tests.pg_fixtures import fresh_database
from tests.service_fixtures import BIN, Server, client, start_server
from tests.video_fixtures import EILEEN_MS, OTHER_MS, two_people

pytestmark = pytest.mark.slow
KEYS = "FLKTESTKEY0000000001:test-secret-do-not-use"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, milvus: str, astronaut: np.ndarray,
            cameraman: np.ndarray) -> Iterator[list[Server]]:
    root = tmp_path_factory.mktemp("replicas")
    videos = root / "videos"
    # long enough that the job is still running when its worker is killed (20 s of this clip took 1.1 s)
    two_people(videos / "long.mp4", default_analyzer(), astronaut, cameraman, seconds=40)
    with contextlib.ExitStack() as stack:
        env = {"FACELENS_ACCESS_KEYS": KEYS, "FACELENS_DATABASE_URL": stack.enter_context(fresh_database()),
               "FACELENS_VECTOR_URL": milvus, "FACELENS_VIDEO_DIR": str(videos), "FACELENS_WORKERS": "1",
               "FACELENS_VIDEO_LEASE_SECONDS": "3"}
        servers = []
        for i in range(3):
            server = start_server(root / f"replica-{i}", env)
            stack.callback(server.stop)
            servers.append(server)
        yield servers


def test_faces_indexed_through_any_replica_are_found_through_every_one(cluster, astronaut: np.ndarray) -> None:
    servers = cluster
    rek = client(servers[0].url)
    rek.create_collection(CollectionId="shared")
    images = [encode(cv2.resize(np.ascontiguousarray(astronaut[20 * i:400 + 20 * i, 10 * i:400 + 10 * i]),
                                (360, 360))) for i in range(4)]
    acknowledged: list[str] = []
    lock = threading.Lock()

    def index(server: Server) -> None:
        replica = client(server.url)
        for image in images:
            response = replica.index_faces(CollectionId="shared", Image={"Bytes": image}, MaxFaces=1)
            with lock:
                acknowledged.extend(r["Face"]["FaceId"] for r in response["FaceRecords"])

    threads = [threading.Thread(target=index, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(acknowledged) == 12
    for server in servers:  # the same person twelve times: each replica finds every acknowledged face
        found = client(server.url).search_faces_by_image(CollectionId="shared", Image={"Bytes": images[0]},
                                                         MaxFaces=100)
        assert sorted(m["Face"]["FaceId"] for m in found["FaceMatches"]) == sorted(acknowledged)
        assert client(server.url).describe_collection(CollectionId="shared")["FaceCount"] == 12
    verify = subprocess.run([str(BIN / "facelens"), "audit", "verify", "--data-dir", str(servers[1].data_dir)],
                            capture_output=True, text=True, timeout=120, env=servers[1].env)
    assert verify.returncode == 0, verify.stderr
    assert re.search(r"intact: (\d+) records", verify.stdout).group(1) == "16"  # 1 + 12 + 3 searches


def test_a_killed_replicas_video_job_is_finished_by_another(cluster) -> None:
    servers = cluster
    job = client(servers[0].url).start_face_detection(
        Video={"S3Object": {"Bucket": "facelens-local", "Name": "long.mp4"}})["JobId"]
    deadline = time.monotonic() + 60
    owner = None
    while owner is None:  # whichever replica claimed it
        assert time.monotonic() < deadline, "nobody claimed the job"
        owner = next((s for s in servers if f"video job {job} (FaceDetection) claimed" in s.output()), None)
        time.sleep(0.1)
    time.sleep(1.0)
    owner.process.kill()  # SIGKILL mid-job
    owner.process.wait(10)
    survivors = [s for s in servers if s is not owner]
    rek = client(survivors[0].url)
    deadline = time.monotonic() + 180
    while (done := rek.get_face_detection(JobId=job))["JobStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, "the job was not taken over"
        time.sleep(0.5)
    assert done["JobStatus"] == "SUCCEEDED"
    assert sorted(f["Timestamp"] for f in done["Faces"]) == sorted(EILEEN_MS + OTHER_MS)
    assert any("took over a job" in s.output() for s in survivors)
    assert any(f"video job {job} (FaceDetection) claimed, attempt 2" in s.output() for s in survivors)

