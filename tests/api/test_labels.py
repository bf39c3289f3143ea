"""DetectLabels through boto3 against the app served in process (uvicorn in a thread): known-content images
from scikit-image, image properties on synthetic images, the filters and the errors a client sees."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import cv2
import numpy as np
import pytest
import uvicorn

from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.recognition import labels
from facelens.service import build_faces
from tests.conftest import encode
from tests.service_fixtures import KEY_ID, SECRET, client, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rekognition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    settings = ServerSettings.from_env({}, data_dir=tmp_path_factory.mktemp("labels"), warmup=False)
    app = create_app(settings, build_faces(settings), keys={KEY_ID: SECRET})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield client(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(10)


def sample(name: str) -> bytes:
    from skimage import data

    return encode(getattr(data, name)())


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


def test_a_parent_is_a_label_too_and_its_children_name_it(rekognition) -> None:
    response = rekognition.detect_labels(Image={"Bytes": sample("chelsea")})
    by_name = {label["Name"]: label for label in response["Labels"]}
    assert by_name["Cat"]["Parents"] == [{"Name": "Animal"}]
    assert by_name["Animal"]["Instances"] == [] and by_name["Animal"]["Confidence"] == by_name["Cat"]["Confidence"]
    assert not {"Aliases", "Categories"} & set(by_name["Cat"])  # nothing computes them


def test_rocket_has_no_coco_label(rekognition) -> None:
    """COCO's 80 classes have no rocket: nothing is claimed at the default confidence."""
    assert rekognition.detect_labels(Image={"Bytes": sample("rocket")})["Labels"] == []


def test_filters_max_labels_and_min_confidence(rekognition) -> None:
    image = {"Bytes": sample("chelsea")}
    assert names(rekognition.detect_labels(Image=image, Settings={"GeneralLabels": {
        "LabelInclusionFilters": ["cat"]}})) == ["Cat"]
    assert names(rekognition.detect_labels(Image=image, Settings={"GeneralLabels": {
        "LabelExclusionFilters": ["Animal"]}})) == ["Cat"]
    assert len(rekognition.detect_labels(Image=image, MaxLabels=1)["Labels"]) == 1
    assert rekognition.detect_labels(Image=image, MinConfidence=99)["Labels"] == []
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        rekognition.detect_labels(Image=image, Settings={"GeneralLabels": {
            "LabelCategoryInclusionFilters": ["Animals and Pets"]}})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"


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
    assert service.detector._session is None


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3000, 3), (3000, 2, 3)])
def test_degenerate_images_are_answered(rekognition, shape: tuple[int, int, int]) -> None:
    image = {"Bytes": encode(np.full(shape, 200, np.uint8), "PNG")}
    response = rekognition.detect_labels(Image=image, Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"])
    assert response["Labels"] == [] and response["ImageProperties"]["Quality"]["Sharpness"] == 0
