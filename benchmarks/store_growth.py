"""`face_count.py --growth`: bulk adds as the SQLite store grows, the store as it was against the store now.

Run through face_count.py (see its docstring); this module holds the "before" insert path and the lockstep fill.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from _common import load_average

from facelens.store.ids import time_ordered_uuid
from facelens.store.records import NewFace
from facelens.store.sql import postgres
from facelens.store.sql.postgres import PostgresMetadataStore
from facelens.store.sql.session import SqlSession
from facelens.store.sql.sqlite import DATABASE, SqliteMetadataStore

CONTROL_FACES = 50_000  # the control store is emptied when it holds this many faces
LEGACY_PG_TRIGGERS = "DROP TRIGGER faces_added ON faces; DROP TRIGGER faces_deleted ON faces; " + \
    postgres._FACES_TRIGGERS + postgres._FACE_COUNT_TRIGGERS  # PostgreSQL's before schema 10


def legacy_add_faces(session: SqlSession, pk: int, faces: Sequence[NewFace]) -> list[int]:
    """`SqlSession.add_faces` as it was before: one INSERT statement per face."""
    now, seqs = time.time(), []
    for face in faces:
        row = session.db.execute(session.dialect.render(
            "INSERT INTO faces (collection, face_id, image_id, external_image_id, bounding_box, confidence, "
            "model_version, created, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq"),
            (pk, face.face_id, face.image_id, face.external_image_id, json.dumps(face.bounding_box),
             float(face.confidence), face.model_version, now,
             np.ascontiguousarray(face.embedding, dtype="<f4").tobytes())).fetchone()
        seqs.append(int(row[0]))
    return seqs


def _io() -> dict[str, int]:
    with open("/proc/self/io") as counters:
        return {key: int(value) for key, value in (line.split(":") for line in counters)}


@dataclass
class Filled:
    """One data directory filled batch by batch; per tenth: seconds inside the transactions, read syscalls and
    bytes passed to write() (this process's, taken around each transaction)."""

    root: Path
    make_id: Callable[[], str]
    add: Callable[[SqlSession, int, Sequence[NewFace]], list[int]]
    postgres: str | None = None  # an admin URL: fill a fresh database on that server instead (its I/O is the
    store: SqliteMetadataStore | PostgresMetadataStore = field(init=False)  # server's, not counted here)
    database: str = ""
    pk: int = field(init=False)
    held: int = 0
    tenths: list[tuple[float, int, int]] = field(default_factory=list)
    _now: list[float] = field(default_factory=lambda: [0.0, 0, 0])

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        if self.postgres is None:
            self.store = SqliteMetadataStore(self.root)
        else:
            self.database = f"facelens_growth_{self.root.name}_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(self.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{self.database}"')
            self.store = PostgresMetadataStore(self.postgres.rsplit("/", 1)[0] + f"/{self.database}", max_size=1)
            if self.add is legacy_add_faces and self.make_id is not time_ordered_uuid:  # "before": schema 9's
                with self.store.pool.connection() as connection:  # per-row face triggers
                    connection.execute(LEGACY_PG_TRIGGERS)
        with self.store.transaction(write=True) as session:
            self.pk = session.create_collection("c", "arn:c", "synthetic", {}).pk
        self.held = 0

    def close(self) -> float:
        """Close the store and drop what it wrote; the database's size in MiB."""
        if self.postgres is None:
            size = (self.root / DATABASE).stat().st_size
            self.store.close()
            shutil.rmtree(self.root)
            return size / 2**20
        with psycopg.connect(self.postgres, autocommit=True) as admin:
            size = admin.execute("SELECT pg_database_size(%s)", (self.database,)).fetchone()[0]
            self.store.close()
            admin.execute(f'DROP DATABASE "{self.database}" WITH (FORCE)')
        return size / 2**20

    def empty(self) -> None:
        self.close()
        self.open()

    def add_batch(self, vectors: np.ndarray) -> None:
        new = [NewFace(self.make_id(), str(uuid.uuid4()), None, {"Width": 0.5, "Height": 0.5, "Left": 0.1,
                       "Top": 0.1}, 99.9, "synthetic", vector) for vector in vectors]
        before, started = _io(), time.perf_counter()
        with self.store.transaction(write=True) as session:
            self.add(session, self.pk, new)
        seconds, after = time.perf_counter() - started, _io()
        self._now[0] += seconds
        self._now[1] += after["syscr"] - before["syscr"]
        self._now[2] += after["wchar"] - before["wchar"]
        self.held += len(vectors)

    def end_tenth(self) -> None:
        self.tenths.append((self._now[0], int(self._now[1]), int(self._now[2])))
        self._now = [0.0, 0, 0]


def growth(faces: int, batch: int, names: Sequence[str], postgres: str | None = None) -> None:
    """Fill `names` ("before", "now") and the control in lockstep, in SQLite data directories or (`postgres`,
    an admin URL) in fresh databases on that server; print the tables by tenth of the fill."""
    paths = {"before": (lambda: str(uuid.uuid4()), legacy_add_faces),
             "ordered-ids": (time_ordered_uuid, legacy_add_faces),  # each change alone
             "multi-row": (lambda: str(uuid.uuid4()), SqlSession.add_faces),
             "now": (time_ordered_uuid, SqlSession.add_faces)}
    tenth = max(batch, faces // 10)
    loads = [load_average().split()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: Filled(Path(tmp) / name, *paths[name], postgres) for name in names}
        stores["control"] = Filled(Path(tmp) / "control", *paths["now"], postgres)
        order, rng, done = list(stores.values()), np.random.default_rng(1), 0
        while done < faces:
            vectors = rng.standard_normal((batch, 128)).astype(np.float32)
            order = order[1:] + order[:1]  # each store goes first in turn
            for filled in order:
                filled.add_batch(vectors)
            done += batch
            if stores["control"].held >= CONTROL_FACES:
                stores["control"].empty()
            if done % tenth == 0:
                for filled in stores.values():
                    filled.end_tenth()
                loads.append(load_average().split()[0])
                print(f"{done:,} faces, load {loads[-1]}: " + ", ".join(
                    f"{name} {tenth / filled.tenths[-1][0]:,.0f}/s" for name, filled in stores.items()), flush=True)
        sizes = {name: filled.close() for name, filled in stores.items()}
    control = [tenth / seconds for seconds, _, _ in stores["control"].tenths]
    print(f"\n{'PostgreSQL' if postgres else 'SQLite'} faces={faces:,} batch={batch}; 1-min load average at the "
          f"start and each tenth: {' '.join(loads)}")
    print("| store | faces/s by tenth of the fill | last tenth / first | database MiB |")
    print("|---|---|---|---|")
    for name, filled in stores.items():
        rates = [tenth / seconds for seconds, _, _ in filled.tenths]
        label = f"control (emptied every {CONTROL_FACES:,})" if name == "control" else name
        size = "-" if name == "control" else f"{sizes[name]:,.0f}"
        print(f"| {label} | {' '.join(f'{rate:,.0f}' for rate in rates)} | {rates[-1] / rates[0]:.2f} | {size} |")
    print("\n| store | rate / control's, by tenth | read syscalls per face, by tenth | KiB written per face, "
          "by tenth |")
    print("|---|---|---|---|")
    for name in names:
        filled = stores[name]
        ratios = [tenth / seconds / rate for (seconds, _, _), rate in zip(filled.tenths, control, strict=True)]
        reads = " ".join(f"{reads / tenth:.2f}" for _, reads, _ in filled.tenths)
        written = " ".join(f"{written / tenth / 1024:.1f}" for _, _, written in filled.tenths)
        if postgres:
            reads = written = "the server's (not counted)"
        print(f"| {name} | {' '.join(f'{ratio:.2f}' for ratio in ratios)} | {reads} | {written} |")
    if "before" in names and "now" in names:
        ratios = [b[0] / n[0] for b, n in zip(stores["before"].tenths, stores["now"].tenths, strict=True)]
        print(f"\nnow / before, faces/s by tenth: {' '.join(f'{ratio:.2f}' for ratio in ratios)}")
