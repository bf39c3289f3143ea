"""Durability through the service: clients index faces while the server is killed with SIGKILL at random
moments, 12 rounds; after every restart each acknowledged face is there and searchable, and nothing else is.
Each round's kill comes at a random moment after the round's first write was acknowledged, so every round kills
a server that is writing (FACELENS_CRASH_ROUNDS sets another number of rounds).

Images: two LFW photos side by side (two faces per request, so a half-written image would show), from
`../shared/data/lfw` when present, otherwise crops of scikit-image's astronaut and cameraman.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from facelens.eval.dataset import lfw_root
from tests.conftest import encode, pages
from tests.service_fixtures import KEY_ID, SECRET, client, start_server

pytestmark = [pytest.mark.slow, pytest.mark.long]
ROUNDS = int(os.environ.get("FACELENS_CRASH_ROUNDS", "12"))
CLIENTS = 2
COLLECTION = "crash"


def collages(astronaut: np.ndarray, cameraman: np.ndarray, count: int = 24) -> list[bytes]:
    folder = lfw_root() / "lfw-deepfunneled"
    if folder.is_dir():
        people = sorted(p for p in folder.iterdir() if p.is_dir())[: 2 * count]  # different people
        paths = [min(person.glob("*.jpg")) for person in people]
        pixels = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    else:
        rng = np.random.default_rng(0)
        pixels = []
        for _ in range(2 * count):
            source = astronaut if rng.random() < 0.5 else cameraman
            top, left = rng.integers(0, 60, 2)
            pixels.append(cv2.resize(np.ascontiguousarray(source[top:top + 440, left:left + 440]), (250, 250)))
    return [encode(np.concatenate(pixels[i:i + 2], axis=1)) for i in range(0, len(pixels), 2)]


def all_faces(rek) -> list[dict]:
    return pages(rek.list_faces, "Faces", CollectionId=COLLECTION, MaxResults=1000)[0]


class Indexer(threading.Thread):
    """Indexes images until the server dies; remembers what was acknowledged and what was in flight."""

    def __init__(self, url: str, name: str, images: list[bytes], acknowledged: dict[str, list[str]],
                 image_of: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.rek = client(url, KEY_ID, SECRET, connect_timeout=2, read_timeout=30)
        self.name, self.images, self.acknowledged, self.image_of = name, images, acknowledged, image_of
        self.in_flight: tuple[str, int] | None = None  # (ExternalImageId, image number) sent, not answered
        self.sent = 0

    def run(self) -> None:
        while True:
            number = random.randrange(len(self.images))
            external = f"{self.name}-{self.sent}"
            self.in_flight, self.sent = (external, number), self.sent + 1
            self.image_of[external] = number
            try:
                response = self.rek.index_faces(CollectionId=COLLECTION, Image={"Bytes": self.images[number]},
                                                ExternalImageId=external, QualityFilter="NONE")
            except (BotoCoreError, ClientError):
                return  # the server is gone: this request's fate is unknown
            self.acknowledged[external] = [r["Face"]["FaceId"] for r in response["FaceRecords"]]
            self.in_flight = None


def test_acknowledged_faces_survive_sigkill(tmp_path: Path, astronaut: np.ndarray, cameraman: np.ndarray) -> None:
    random.seed(20261123)
    images = collages(astronaut, cameraman)
    data_dir = tmp_path / "data"
    env = {"FACELENS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}", "FACELENS_WORKERS": "2"}
    server = start_server(data_dir, env)
    rek = client(server.url)
    rek.create_collection(CollectionId=COLLECTION)
    faces_in = [len(rek.detect_faces(Image={"Bytes": image})["FaceDetails"]) for image in images]
    assert min(faces_in) >= 2  # every request carries several faces
    acknowledged: dict[str, list[str]] = {}  # ExternalImageId -> FaceIds, over all rounds
    image_of: dict[str, int] = {}
    unknown_fates = committed_unacknowledged = 0
    try:
        for round_number in range(ROUNDS):
            indexers = [Indexer(server.url, f"r{round_number}c{i}", images, acknowledged, image_of)
                        for i in range(CLIENTS)]
            written = len(acknowledged)
            for indexer in indexers:
                indexer.start()
            deadline = time.monotonic() + 60
            while len(acknowledged) == written:  # the server is writing: now kill it at a random moment
                assert time.monotonic() < deadline, f"round {round_number}: no write was acknowledged"
                time.sleep(0.01)
            time.sleep(random.uniform(0.0, 1.2))  # about 30 images a second: every window holds many writes
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(30)
            for indexer in indexers:
                indexer.join(60)
                assert not indexer.is_alive()
            in_flight = {ix.in_flight[0]: ix.in_flight[1] for ix in indexers if ix.in_flight is not None}
            unknown_fates += len(in_flight)

            server = start_server(data_dir, env)
            rek = client(server.url)
            stored: dict[str, list[str]] = defaultdict(list)
            for face in all_faces(rek):
                stored[face["ExternalImageId"]].append(face["FaceId"])
            for external, face_ids in acknowledged.items():  # every acknowledged face, exactly
                assert sorted(stored.get(external, [])) == sorted(face_ids), f"round {round_number}: {external}"
            for external, face_ids in stored.items():  # anything else: a request cut off, with all its faces
                if external not in acknowledged:
                    assert external in in_flight, f"round {round_number}: {external} was never sent"
                    assert len(face_ids) == faces_in[in_flight[external]], f"half an image: {external}"
                    acknowledged[external] = face_ids  # committed before the kill, answer lost: adopt it
                    committed_unacknowledged += 1
            total = sum(len(ids) for ids in acknowledged.values())
            assert rek.describe_collection(CollectionId=COLLECTION)["FaceCount"] == total
            # searchable with its own FaceId (this round's faces and a sample of older ones), and the vector index
            # agrees with the database: a face finds its copies that other requests of the same image indexed
            recent = sorted(e for e in acknowledged if e.startswith(f"r{round_number}c"))
            older = sorted(set(acknowledged) - set(recent))
            for external in recent + random.sample(older, min(10, len(older))):
                others = [e for e in acknowledged if e != external and image_of[e] == image_of[external]]
                for face_id in acknowledged[external]:
                    found = rek.search_faces(CollectionId=COLLECTION, FaceId=face_id, FaceMatchThreshold=90,
                                             MaxFaces=4096)
                    matched = {m["Face"]["FaceId"] for m in found["FaceMatches"]}
                    assert found["SearchedFaceId"] == face_id
                    assert all(matched & set(acknowledged[e]) for e in others), f"round {round_number}: {face_id}"
    finally:
        server.stop()
    print(f"{ROUNDS} SIGKILL rounds: {len(acknowledged)} images acknowledged or adopted, "
          f"{sum(len(v) for v in acknowledged.values())} faces; {unknown_fates} requests cut off, "
          f"{committed_unacknowledged} of them committed before the kill (all their faces)")
    assert len(acknowledged) >= ROUNDS
