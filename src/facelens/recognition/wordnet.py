"""The label taxonomy from WordNet 3.0: names, Parents, Aliases and Categories of every label DetectLabels can give.

    python -m facelens.recognition.wordnet [--wordnet /usr/share/wordnet] [--out src/facelens/data/labels.json]

Generates `facelens/data/labels.json` (committed, so a server needs no WordNet) from the installed WordNet 3.0
(Debian's `wordnet-base`) and ImageNet-1k's class list (`timm/data/_info/imagenet_synsets.txt`, the 1000 WordNet
noun ids in the classifier's output order; `timm` is installed `--no-deps` for that file only).
tests/api/test_labels.py regenerates the table when both are installed and checks it equals the committed one.

* A label is a WordNet noun synset: each of ImageNet's 1000 classes, each COCO class the detector knows (`COCO`:
  its synset, chosen by hand from the senses of its name), and every ancestor kept as a parent. Its Name is COCO's
  class name where a COCO class is that synset, else the synset's first lemma ("_" -> " ", words capitalised);
  when two synsets would get one name, the later ones (in ImageNet order) take their next unused lemma, or the
  name of their nearest kept parent (else of their first hypernym) in brackets. Aliases: the synset's other
  lemmas, less names of other labels.
* Parents: the synset's hypernyms (`@` and `@i`, every path up to `entity`), keeping only ancestors a user would
  expect as a label: other labels' synsets, and ancestors tagged at least `MIN_TAGGED` times in WordNet's
  semantic concordance (`cntlist.rev`) that are in the label's own lexicographer file or noun.Tops (animal,
  food, person...) and are not the abstract top (`ABSTRACT_TOP`: entity, object, whole, artifact...). So a tiger
  cat's parents are Cat, Animal, Mammal (not feline, placental or chordate) and espresso's Coffee, Beverage,
  Food (not liquid, part or relation). Nearest first. A parent is a label too, with its own parents.
* Categories: Rekognition's category names for the nearest of the `CATEGORY_OF` synsets at or above the label
  (one category; none when no such synset is above it). The mapping is by hand, synset to category.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
TABLE = Path(__file__).resolve().parent.parent / "data" / "labels.json"
MIN_TAGGED = 2  # ancestors tagged fewer times in WordNet's semantic concordance are skipped (placental, feline)
# synsets too general to be a parent: entity ... whole, living thing, organism, artifact, instrumentality,
# creation, structure, substance, relation, article, commodity, communication
ABSTRACT_TOP = {"n00001740", "n00001930", "n00002137", "n00002452", "n00002684", "n00003553", "n00004258",
                "n00004475", "n00007347", "n00019128", "n00020827", "n00021939", "n03575240", "n03129123",
                "n04341686", "n00019613", "n00020090", "n00031921", "n00022903", "n03076708", "n00033020"}
# COCO's 80 classes (the detector's order) -> WordNet 3.0 synset; "~": WordNet has no synset of the class itself,
# so the class is a label of its own, a child of that synset (stop sign -> street sign, sports ball -> ball).
COCO = {
    "Person": "n00007846", "Bicycle": "n02834778", "Car": "n02958343", "Motorcycle": "n03790512",
    "Airplane": "n02691156", "Bus": "n02924116", "Train": "n04468005", "Truck": "n04490091", "Boat": "n02858304",
    "Traffic Light": "n06874185", "Fire Hydrant": "n03346898", "Stop Sign": "~n06794110",
    "Parking Meter": "n03891332", "Bench": "n02828884", "Bird": "n01503061", "Cat": "n02121620",
    "Dog": "n02084071", "Horse": "n02374451", "Sheep": "n02411705", "Cow": "n02402425", "Elephant": "n02503517",
    "Bear": "n02131653", "Zebra": "n02391049", "Giraffe": "n02439033", "Backpack": "n02769748",
    "Umbrella": "n04507155", "Handbag": "n02774152", "Tie": "n03815615", "Suitcase": "n02773838",
    "Frisbee": "n03397947", "Skis": "n04228054", "Snowboard": "n04251791", "Sports Ball": "~n02778669",
    "Kite": "n03621473", "Baseball Bat": "n02799175", "Baseball Glove": "n02800213", "Skateboard": "n04225987",
    "Surfboard": "n04363559", "Tennis Racket": "n04409806", "Bottle": "n02876657", "Wine Glass": "n04592099",
    "Cup": "n03147509", "Fork": "n03383948", "Knife": "n03623556", "Spoon": "n04284002", "Bowl": "n02881193",
    "Banana": "n07753592", "Apple": "n07739125", "Sandwich": "n07695965", "Orange": "n07747607",
    "Broccoli": "n07714990", "Carrot": "n07730207", "Hot Dog": "n07697537", "Pizza": "n07873807",
    "Donut": "n07639069", "Cake": "n07628870", "Chair": "n03001627", "Couch": "n04256520",
    "Potted Plant": "n13083023", "Bed": "n02818832", "Dining Table": "n03201208", "Toilet": "n04446521",
    "TV": "n04405907", "Laptop": "n03642806", "Mouse": "n03793489", "Remote": "n04074963",
    "Keyboard": "n03614007", "Cell Phone": "n02992529", "Microwave": "n03761084", "Oven": "n03862676",
    "Toaster": "n04442312", "Sink": "n04223580", "Refrigerator": "n04070727", "Book": "n02870092",
    "Clock": "n03046257", "Vase": "n04522168", "Scissors": "n04148054", "Teddy Bear": "n04399382",
    "Hair Drier": "n03483316", "Toothbrush": "n04453156",
}
# WordNet synset -> Rekognition's label category name; a label gets the category of the nearest one at or above it
CATEGORY_OF = {
    "n00015388": "Animals and Pets",  # animal
    "n00007846": "Person Description",  # person
    "n00017222": "Plants and Flowers",  # plant (flora)
    "n11669921": "Plants and Flowers",  # flower
    "n00021265": "Food and Beverage",  # food, nutrient
    "n07555863": "Food and Beverage",  # food, solid food
    "n07881800": "Food and Beverage",  # beverage
    "n07707451": "Food and Beverage",  # vegetable
    "n13134947": "Food and Beverage",  # fruit
    "n04524313": "Vehicles and Automotive",  # vehicle
    "n03100490": "Vehicles and Automotive",  # conveyance, transport
    "n04530566": "Vehicles and Automotive",  # vessel (watercraft)
    "n03051540": "Apparel and Accessories",  # clothing
    "n03419014": "Apparel and Accessories",  # garment
    "n03381126": "Apparel and Accessories",  # footwear (clothing)
    "n03502509": "Apparel and Accessories",  # headdress
    "n03597469": "Apparel and Accessories",  # jewelry
    "n02773037": "Apparel and Accessories",  # bag
    "n03405725": "Furniture and Furnishings",  # furniture
    "n03405265": "Furniture and Furnishings",  # furnishing
    "n04565375": "Weapons and Military",  # weapon
    "n03082979": "Technology and Computing",  # computer
    "n03278248": "Technology and Computing",  # electronic equipment
    "n04401088": "Technology and Computing",  # telephone
    "n03183080": "Tools and Machinery",  # device
    "n04451818": "Tools and Machinery",  # tool
    "n03699975": "Tools and Machinery",  # machine
    "n04381994": "Kitchen and Dining",  # tableware
    "n03621049": "Kitchen and Dining",  # kitchen utensil
    "n03133538": "Kitchen and Dining",  # crockery, dishware
    "n03528263": "Home and Indoors",  # home appliance
    "n04285146": "Sports",  # sports equipment
    "n03800933": "Hobbies and Interests",  # musical instrument
    "n04341686": "Buildings and Architecture",  # structure
    "n09287968": "Nature and Outdoors",  # geological formation
}
# WordNet's lexicographer files (lexnames(5WN)), by number
LEXNAMES = ("adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
            "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
            "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
            "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
            "noun.shape", "noun.state", "noun.substance", "noun.time")
NOTICE = """This table is derived from WordNet 3.0 (Princeton University). Its licence, verbatim:

This software and database is being provided to you, the LICENSEE, by Princeton University under the following
license. By obtaining, using and/or copying this software and database, you agree that you have read, understood,
and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and database and its documentation for any purpose
and without fee or royalty is hereby granted, provided that you agree to comply with the following copyright
notice and statements, including the disclaimer, and that the same appear on ALL copies of the software, database
and documentation, including modifications that you make for internal use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES,
EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR
WARRANTIES OF MERCHANTABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE,
DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in advertising or publicity pertaining to
distribution of the software and/or database. Title to copyright in this software, database and any associated
documentation shall at all times remain with Princeton University and LICENSEE agrees to preserve same.
"""


@dataclass
class Synset:
    wnid: str
    lexfile: str
    lemmas: list[str]
    hypernyms: list[str]
    tagged: int = 0


def read_nouns(wordnet: Path) -> dict[str, Synset]:
    """Every noun synset of `data.noun`, with its hypernyms and its sense-tagged count (`cntlist.rev`)."""
    synsets: dict[str, Synset] = {}
    keys: dict[str, str] = {}
    for line in (wordnet / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split(" | ", 1)[0].split()
        offset, lexfile, count = fields[0], int(fields[1]), int(fields[3], 16)
        words = fields[4:4 + 2 * count]
        lemmas = words[::2]
        pointers = int(fields[4 + 2 * count])
        rest = fields[5 + 2 * count:]
        hypernyms = [f"n{rest[4 * i + 1]}" for i in range(pointers) if rest[4 * i] in {"@", "@i"}]
        wnid = f"n{offset}"
        synsets[wnid] = Synset(wnid, LEXNAMES[lexfile], [w.split("(")[0] for w in lemmas], hypernyms)
        for lemma, lex_id in zip(lemmas, words[1::2], strict=True):
            keys[f"{lemma.split('(')[0].lower()}%1:{lexfile:02d}:{int(lex_id, 16):02d}::"] = wnid
    for line in (wordnet / "cntlist.rev").read_text(encoding="latin-1").splitlines():
        key, _, tagged = line.split()
        if key in keys:
            synsets[keys[key]].tagged += int(tagged)
    return synsets


def _ancestors(synsets: dict[str, Synset], wnid: str) -> list[str]:
    """Every hypernym of `wnid` over all paths, nearest first (breadth first)."""
    seen, order, frontier = {wnid}, [], [wnid]
    while frontier:
        following = []
        for current in frontier:
            for up in synsets[current].hypernyms:
                if up not in seen:
                    seen.add(up)
                    order.append(up)
                    following.append(up)
        frontier = following
    return order


def _title(lemma: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in lemma.replace("_", " ").split())


def build(wordnet: Path, imagenet: Iterable[str]) -> dict:
    """The label table (see the module docstring) from WordNet at `wordnet` and ImageNet's class ids in order."""
    synsets = read_nouns(wordnet)
    imagenet = list(imagenet)
    coco_of = {wnid: name for name, wnid in COCO.items() if not wnid.startswith("~")}
    leaves = list(dict.fromkeys(imagenet + [w.lstrip("~") for w in COCO.values()]))
    labelled = set(leaves)

    def parents(wnid: str) -> list[str]:
        lexfiles = {synsets[wnid].lexfile, "noun.Tops"}
        return [a for a in _ancestors(synsets, wnid) if a in labelled or (
            synsets[a].tagged >= MIN_TAGGED and synsets[a].lexfile in lexfiles and a not in ABSTRACT_TOP)]

    parents_of = {wnid: parents(wnid) for wnid in leaves}
    order = list(dict.fromkeys(leaves + [p for wnid in leaves for p in parents_of[wnid]]))
    for wnid in order:
        parents_of.setdefault(wnid, parents(wnid))
    names: dict[str, str] = {}
    taken: set[str] = set(coco_of.values()) | {n for n, w in COCO.items() if w.startswith("~")}
    for wnid in order:  # COCO names first, then the first free lemma, in ImageNet order
        if wnid in coco_of:
            names[wnid] = coco_of[wnid]
            continue
        free = [_title(lemma) for lemma in synsets[wnid].lemmas if _title(lemma) not in taken]
        names[wnid] = free[0] if free else None
        if free:
            taken.add(free[0])
    for wnid in order:
        if names[wnid] is None:
            first = _title(synsets[wnid].lemmas[0])
            hypernym = synsets[synsets[wnid].hypernyms[0]].lemmas[0]
            up = names[parents_of[wnid][0]] if parents_of[wnid] else _title(hypernym)
            names[wnid] = f"{first} ({up})"
    labels = {}
    for wnid in order:
        chain = [wnid, *_ancestors(synsets, wnid)]
        category = next((CATEGORY_OF[a] for a in chain if a in CATEGORY_OF), None)
        aliases = [t for t in dict.fromkeys(_title(lemma) for lemma in synsets[wnid].lemmas)
                   if t != names[wnid] and t not in taken]
        labels[names[wnid]] = {"wnid": wnid, "parents": [names[p] for p in parents_of[wnid]], "aliases": aliases,
                               "categories": [category] if category else []}
    for name, wnid in COCO.items():  # COCO classes with no synset of their own: a child of the nearest one
        if wnid.startswith("~"):
            up = wnid[1:]
            labels[name] = {"wnid": None, "parents": [names[up], *labels[names[up]]["parents"]], "aliases": [],
                            "categories": labels[names[up]]["categories"]}
    return {"notice": NOTICE,
            "source": "WordNet 3.0 (Princeton University; Debian wordnet-base), ImageNet-1k class ids (timm)",
            "imagenet": [names[wnid] for wnid in imagenet], "coco": list(COCO), "labels": labels}


def imagenet_ids() -> list[str]:
    """ImageNet-1k's class ids in order, from the installed `timm` (not imported: it needs torch)."""
    from facelens.models.registry import bundled

    return bundled("timm", "data", "_info", "imagenet_synsets.txt").read_text().split()


def dumps(table: dict) -> str:
    return json.dumps(table, indent=0, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", type=Path, default=WORDNET_DIR)
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(build(args.wordnet, imagenet_ids())), encoding="utf-8")


if __name__ == "__main__":
    main()
