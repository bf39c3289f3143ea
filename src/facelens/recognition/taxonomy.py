"""The label taxonomy DetectLabels answers with: `facelens/data/labels.json`, generated from WordNet 3.0 by
`facelens.recognition.wordnet` (its docstring says how names, Parents, Aliases and Categories are derived).

Invariants of the table (checked by tests/api/test_labels.py): every ImageNet class index and every COCO class
names a label; every parent of a label is a label; a label's parents are all its kept ancestors (the parents of a
parent are a subset of the child's), so adding a probability to a label and each of its parents counts it once
per label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "data" / "labels.json"
VERSION = "wordnet-3.0"


@dataclass(frozen=True)
class Entry:
    name: str
    wnid: str | None  # None: a COCO class WordNet has no synset for (a child of its nearest synset)
    parents: tuple[str, ...]
    aliases: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    labels: dict[str, Entry]
    imagenet: tuple[str, ...]  # label name of each ImageNet-1k class index
    coco: tuple[str, ...]  # label name of each COCO class index (the detector's order)


@cache
def load(path: Path = TABLE) -> Taxonomy:
    """The committed table (read once per process)."""
    table = json.loads(path.read_text(encoding="utf-8"))
    labels = {name: Entry(name, value["wnid"], tuple(value["parents"]), tuple(value["aliases"]),
                          tuple(value["categories"])) for name, value in table["labels"].items()}
    return Taxonomy(labels, tuple(table["imagenet"]), tuple(table["coco"]))
