"""DetectLabels through boto3 against a real `facelens serve` subprocess: known-content images
from scikit-image, image properties on synthetic images, the filters and the errors a client sees; the classifier's
ONNX conversion against a numpy reference, and the WordNet table against a regeneration from the installed WordNet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelens.models.registry import ModelNotFoundError, bundled
from facelens.recognition import efficientnet, labels, taxonomy, wordnet
from facelens.recognition.classifier import SIDE, WEIGHTS, preprocess
from tests.conftest import encode
from tests.service_fixtures import KEY_ID, SECRET, client, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rekognition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real `facelens serve` subprocess (the models load on its first DetectLabels) and a boto3 client."""
    server = start_server(tmp_path_factory.mktemp("labels") / "data", {"FACELENS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}"})
    yield client(server.url)
    server.stop()


def sample(name: str) -> bytes:
    from skimage import data

    pixels = getattr(data, name)()
    if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
        pixels = pixels[0]
    return encode(np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels)


def names(response: dict) -> list[str]:
    return [label["Name"] for label in response["Labels"]]


@pytest.mark.parametrize(("image", "expected", "min_confidence"), [
    ("chelsea", "Cat", 55), ("coffee", "Cup", 55),
    # YOLOv3-tiny scores the astronaut's close-up 30: darknet's score is not Rekognition's confidence (docs)
    ("astronaut", "Person", 25),
])
def test_the_expected_object_is_the_top_label_with_a_box(rekognition, image: str, expected: str,
                                                         min_confidence: float) -> None:
    response = rekognition.detect_labels(Image={"Bytes": sample(image)}, MinConfidence=min_confidence)
    assert response["LabelModelVersion"] == labels.MODEL_VERSION
    top = next(label for label in response["Labels"] if label["Instances"])  # the first object (not a parent)
    assert top["Name"] == expected
    box = top["Instances"][0]["BoundingBox"]
    assert box["Width"] > 0.3 and box["Height"] > 0.3 and 0 <= box["Left"] <= 1 and 0 <= box["Top"] <= 1
    assert all(label["Confidence"] >= min_confidence for label in response["Labels"])
    assert "ImageProperties" not in response  # not asked for


def test_wordnet_parents_aliases_and_categories(rekognition) -> None:
    response = rekognition.detect_labels(Image={"Bytes": sample("chelsea")})
    by_name = {label["Name"]: label for label in response["Labels"]}
    cat = by_name["Cat"]
    assert cat["Parents"] == [{"Name": "Mammal"}, {"Name": "Animal"}]
    assert {"Name": "True Cat"} in cat["Aliases"] and cat["Categories"] == [{"Name": "Animals and Pets"}]
    assert cat["Instances"]  # the detector's box
    # a parent is a label too, with no instances and a confidence at least its child's (its subtree's probability)
    assert by_name["Animal"]["Instances"] == [] and by_name["Animal"]["Confidence"] >= cat["Confidence"]
    assert by_name["Mammal"]["Parents"] == [{"Name": "Animal"}]


@pytest.mark.parametrize(("image", "expected"), [
    ("chelsea", {"Cat", "Mammal", "Animal"}), ("coffee", {"Espresso", "Coffee", "Beverage", "Cup"}),
    ("camera", {"Person", "Tripod"}), ("stereo_motorcycle", {"Motorcycle", "Vehicle"}),
])
def test_the_classifier_names_what_the_photo_shows(rekognition, image: str, expected: set[str]) -> None:
    response = rekognition.detect_labels(Image={"Bytes": sample(image)})  # default MinConfidence 55
    assert expected <= set(names(response))
    assert response["LabelModelVersion"] == labels.MODEL_VERSION
    assert "efficientnet-lite2" in labels.MODEL_VERSION and "yolov3-tiny" in labels.MODEL_VERSION


def test_the_rocket_gets_no_label_at_the_default(rekognition) -> None:
    """COCO has no rocket and the classifier is unsure (Missile about 5): nothing is claimed at the default; and the
    thin probability it spreads over hundreds of animal classes does not add up to an Animal (CLASS_FLOOR)."""
    assert rekognition.detect_labels(Image={"Bytes": sample("rocket")})["Labels"] == []
    found = names(rekognition.detect_labels(Image={"Bytes": sample("rocket")}, MinConfidence=5))
    assert "Animal" not in found and "Vehicle" in found


def test_filters_max_labels_and_min_confidence(rekognition) -> None:
    image = {"Bytes": sample("chelsea")}
    assert names(rekognition.detect_labels(Image=image, Settings={"GeneralLabels": {
        "LabelInclusionFilters": ["cat"]}})) == ["Cat"]
    everything = names(rekognition.detect_labels(Image=image))
    assert "Animal" in everything
    assert names(rekognition.detect_labels(Image=image, Settings={"GeneralLabels": {
        "LabelExclusionFilters": ["Animal"]}})) == [n for n in everything if n != "Animal"]
    assert len(rekognition.detect_labels(Image=image, MaxLabels=1)["Labels"]) == 1
    assert rekognition.detect_labels(Image=image, MinConfidence=99.9)["Labels"] == []


def test_category_filters(rekognition) -> None:
    coffee = {"Bytes": sample("coffee")}
    kitchen = rekognition.detect_labels(Image=coffee, Settings={"GeneralLabels": {
        "LabelCategoryInclusionFilters": ["kitchen and dining"]}})["Labels"]
    assert [label["Name"] for label in kitchen] == ["Cup"]
    assert all(label["Categories"] == [{"Name": "Kitchen and Dining"}] for label in kitchen)
    rest = rekognition.detect_labels(Image=coffee, Settings={"GeneralLabels": {
        "LabelCategoryExclusionFilters": ["Food and Beverage"]}})["Labels"]
    assert rest and not any({"Name": "Food and Beverage"} in label["Categories"] for label in rest)
    both = rekognition.detect_labels(Image=coffee, Settings={"GeneralLabels": {
        "LabelCategoryInclusionFilters": ["Kitchen and Dining"], "LabelInclusionFilters": ["Espresso"]}})
    assert sorted(names(both)) == ["Cup", "Espresso"]  # either filter includes


def test_image_properties_of_a_flat_red_image(rekognition) -> None:
    red = np.zeros((120, 160, 3), np.uint8)
    red[..., 0] = 255
    response = rekognition.detect_labels(Image={"Bytes": encode(red, "PNG")}, Features=["IMAGE_PROPERTIES"])
    assert "Labels" not in response and "LabelModelVersion" not in response  # GENERAL_LABELS not asked for
    properties = response["ImageProperties"]
    assert not {"Foreground", "Background"} & set(properties)
    [only] = properties["DominantColors"]
    assert only == {"Red": 255, "Green": 0, "Blue": 0, "HexCode": "#ff0000", "CSSColor": "red",
                    "SimplifiedColor": "red", "PixelPercent": 100.0}
    quality = properties["Quality"]
    assert quality["Contrast"] < 1 and quality["Sharpness"] < 1 and 29 < quality["Brightness"] < 31


def test_blurring_lowers_sharpness_and_colours_are_bounded(rekognition) -> None:
    from skimage import data

    pixels = data.astronaut()

    def properties(image: np.ndarray, **settings: int) -> dict:
        return rekognition.detect_labels(Image={"Bytes": encode(image, "PNG")}, Features=["IMAGE_PROPERTIES"],
                                         Settings={"ImageProperties": settings})["ImageProperties"]

    sharp, blurred = properties(pixels, MaxDominantColors=4), properties(cv2.GaussianBlur(pixels, (0, 0), 3))
    assert sharp["Quality"]["Sharpness"] > 80 > 20 > blurred["Quality"]["Sharpness"]
    assert len(sharp["DominantColors"]) == 4 and len(blurred["DominantColors"]) == 10  # default 10
    shares = [color["PixelPercent"] for color in sharp["DominantColors"]]
    assert shares == sorted(shares, reverse=True) and 99 < sum(shares) <= 100.0001
    half = np.zeros((100, 100, 3), np.uint8)
    half[:, 50:] = 255
    assert properties(half)["Quality"]["Contrast"] == pytest.approx(100, abs=0.5)


def test_both_features_give_instance_colours(rekognition) -> None:
    response = rekognition.detect_labels(Image={"Bytes": sample("coffee")},
                                         Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"])
    cup = next(label for label in response["Labels"] if label["Name"] == "Cup")
    assert cup["Instances"][0]["DominantColors"] and response["ImageProperties"]["DominantColors"]


@pytest.mark.parametrize("data", [b"not an image at all", b"\xff\xd8\xff\xe0" + b"\0" * 64])
def test_bad_image_is_invalid_image_format(rekognition, data: bytes) -> None:
    with pytest.raises(rekognition.exceptions.InvalidImageFormatException):
        rekognition.detect_labels(Image={"Bytes": data})


def test_the_package_names_match_the_coco_table() -> None:
    """The darknet `coco.names` of the package is COCO's 80 classes in our order (darknet's few spellings)."""
    spelled = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted plant",
               "diningtable": "dining table", "tvmonitor": "tv"}
    shipped = (Path(labels.model_files()[0]).parent / "coco.names").read_text().strip().split("\n")
    assert [labels._title(spelled.get(n, n)) for n in shipped] == list(labels.CLASSES)


def test_the_model_loads_only_when_labels_are_asked_for(tmp_path: Path) -> None:
    service = labels.LabelService()
    red = np.zeros((8, 8, 3), np.uint8)
    service.detect_labels(image=encode(red, "PNG"), features=["IMAGE_PROPERTIES"])
    assert service.detector._session is None and service.classifier._session is None


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3000, 3), (3000, 2, 3)])
def test_degenerate_images_are_answered(rekognition, shape: tuple[int, int, int]) -> None:
    image = {"Bytes": encode(np.full(shape, 200, np.uint8), "PNG")}
    response = rekognition.detect_labels(Image=image, Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"])
    assert response["Labels"] == [] and response["ImageProperties"]["Quality"]["Sharpness"] == 0


def test_the_classifier_graph_matches_a_numpy_reference() -> None:
    """The ONNX graph built from the state dict computes what the same network computes step by step in numpy."""
    from skimage import data

    from facelens.models.runtime import make_session

    weights = bundled(*WEIGHTS)
    image = preprocess(data.chelsea())
    session = make_session(efficientnet.to_onnx(weights, SIDE))
    logits = session.run(["logits"], {"image": image[None]})[0][0]
    expected = efficientnet.reference(weights, image)
    assert np.abs(logits - expected).max() < 1e-3 * np.abs(expected).max()
    assert int(np.argmax(logits)) == int(np.argmax(expected))


def test_a_state_dict_pickle_may_not_name_other_globals(tmp_path: Path) -> None:
    import pickle

    class Hostile:
        def __reduce__(self) -> tuple:
            return (print, ("ran",))

    path = tmp_path / "bad.pth"
    with path.open("wb") as handle:
        for value in (0x1950A86A20F9469CFC6C, 1001, {}, {"x": Hostile()}):
            pickle.dump(value, handle, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        efficientnet.read_state_dict(path)


def test_the_taxonomy_is_closed_and_consistent() -> None:
    table = taxonomy.load()
    assert len(table.imagenet) == 1000 and len(table.coco) == 80
    for name in (*table.imagenet, *table.coco):
        assert name in table.labels
    for entry in table.labels.values():
        assert entry.name not in entry.parents and len(set(entry.parents)) == len(entry.parents)
        for parent in entry.parents:
            assert set(table.labels[parent].parents) <= set(entry.parents), (entry.name, parent)
        assert not set(entry.aliases) & set(table.labels)  # an alias never names another label


def test_the_committed_table_is_what_wordnet_gives() -> None:
    """Regenerates labels.json from the installed WordNet 3.0 (`make test` installs wordnet-base) and timm's
    ImageNet id list (`make install`), and compares it with the committed table."""
    if not (wordnet.WORDNET_DIR / "data.noun").is_file():
        pytest.skip("WordNet 3.0 is not installed (Debian wordnet-base; `make wordnet`)")
    try:
        ids = wordnet.imagenet_ids()
    except ModelNotFoundError:
        pytest.skip("timm's imagenet_synsets.txt is not installed (`make install` installs timm --no-deps)")
    assert wordnet.dumps(wordnet.build(wordnet.WORDNET_DIR, ids)) == taxonomy.TABLE.read_text(encoding="utf-8")


class FakeClassifier:
    def __init__(self, probabilities: dict[str, float]) -> None:
        table = taxonomy.load()
        self.vector = np.zeros(1000)
        for name, p in probabilities.items():
            self.vector[table.imagenet.index(name)] = p

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return self.vector


class FakeDetector:
    def __init__(self, found: list[tuple[str, float]]) -> None:
        self.found = [(labels.CLASSES.index(name), score, np.array([0.1, 0.2, 0.5, 0.6])) for name, score in found]

    def detect(self, pixels: np.ndarray, floor: float) -> list:
        return [item for item in self.found if item[1] >= floor]


def test_subtree_sums_and_the_merge_of_both_models() -> None:
    """A parent's confidence is its subtree's probability; a label both models give takes the larger; classes
    under CLASS_FLOOR count for nothing; instances come from the detector only."""
    classifier = FakeClassifier({"Tiger Cat": 0.5, "Egyptian Cat": 0.25, "Espresso": 0.2, "Chihuahua": 0.009})
    service = labels.LabelService(classifier=classifier, detector=FakeDetector([("Cat", 0.9), ("Dog", 0.3)]))
    result = service.labels_of(np.zeros((32, 32, 3), np.uint8), min_confidence=10)
    by_name = {label.name: label for label in result.labels}
    assert by_name["Tiger Cat"].confidence == pytest.approx(50) and not by_name["Tiger Cat"].instances
    assert by_name["Cat"].confidence == pytest.approx(90) and len(by_name["Cat"].instances) == 1  # detector > 75
    assert by_name["Mammal"].confidence == pytest.approx(90)  # its best detected child
    assert by_name["Coffee"].confidence == pytest.approx(20) and by_name["Food"].confidence == pytest.approx(20)
    assert by_name["Dog"].confidence == pytest.approx(30)  # the detector's; Chihuahua's 0.9% is under the floor
    assert "Chihuahua" not in by_name
    assert [label.name for label in result.labels][:3] == ["Animal", "Cat", "Mammal"]  # by confidence, then name
    alone = labels.LabelService(classifier=classifier, detector=FakeDetector([]))
    cat = next(label for label in alone.labels_of(np.zeros((8, 8, 3), np.uint8)).labels if label.name == "Cat")
    assert cat.confidence == pytest.approx(75) and cat.instances == []  # 50 + 25: the sum over the cat classes
