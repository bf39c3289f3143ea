"""Face attributes: dlib landmarks, head pose, eyes/mouth open, Rekognition landmarks, quality, age/gender.

Uses the face images shipped with scikit-image (no data set; fixtures in conftest.py): `astronaut` is a
woman's frontal face, `cameraman` a man in near profile.
"""

from __future__ import annotations

import math

import botocore.loaders
import cv2
import numpy as np
import pytest
from skimage import data

from facelens import geometry, quality
from facelens.models.attributes import AgeGenderEstimator, age_range
from facelens.models.detector import Detection, YuNetDetector
from facelens.models.landmarks import DlibLandmarker


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def landmarker() -> DlibLandmarker:
    return DlibLandmarker()


@pytest.fixture(scope="module")
def estimator(landmarker: DlibLandmarker) -> AgeGenderEstimator:
    return AgeGenderEstimator(landmarker)


def one_face(detector: YuNetDetector, image: np.ndarray) -> Detection:
    faces = detector.detect([image])[0]
    assert len(faces) == 1
    return faces[0]


def pose_of(detector: YuNetDetector, landmarker: DlibLandmarker, image: np.ndarray) -> tuple[float, ...]:
    face = one_face(detector, image)
    return geometry.head_pose(landmarker.landmarks68(image, face.box), image.shape[1], image.shape[0])


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise as displayed (OpenCV's positive angle) about the centre."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


# --- landmarks -------------------------------------------------------------------------------------------


def test_68_landmarks_lie_on_the_face(detector: YuNetDetector, landmarker: DlibLandmarker,
                                      astronaut: np.ndarray) -> None:
    face = one_face(detector, astronaut)
    points = landmarker.landmarks68(astronaut, face.box)
    assert points.shape == (68, 2) and points.dtype == np.float32
    x1, y1, x2, y2 = face.box
    margin = 0.1 * (x2 - x1)
    assert (points[:, 0] > x1 - margin).all() and (points[:, 0] < x2 + margin).all()
    assert (points[:, 1] > y1 - margin).all() and (points[:, 1] < y2 + margin).all()
    # The eye contours surround the detector's eye points, and the eyes are above the nose above the mouth.
    left_eye, right_eye = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    interocular = np.linalg.norm(right_eye - left_eye)
    assert np.linalg.norm(left_eye - face.landmarks[0]) < 0.25 * interocular
    assert np.linalg.norm(right_eye - face.landmarks[1]) < 0.25 * interocular
    assert max(left_eye[1], right_eye[1]) < points[30, 1] < points[48:68, 1].min()


def test_shape5_is_a_plain_array_on_the_eyes_and_nose(detector: YuNetDetector, landmarker: DlibLandmarker,
                                                      astronaut: np.ndarray) -> None:
    face = one_face(detector, astronaut)
    points = landmarker.shape5(astronaut, face.box)
    assert isinstance(points, np.ndarray) and points.shape == (5, 2)
    # dlib order: image-right eye corners, image-left eye corners, bottom of the nose.
    assert points[0:2, 0].min() > face.landmarks[0, 0] and points[2:4, 0].max() < face.landmarks[1, 0]
    assert points[4, 1] > points[:4, 1].max()


def test_grayscale_images_are_accepted(detector: YuNetDetector, landmarker: DlibLandmarker) -> None:
    gray = data.camera()
    face = one_face(detector, np.repeat(gray[:, :, None], 3, axis=2))
    assert landmarker.landmarks68(gray, face.box).shape == (68, 2)


# --- head pose -------------------------------------------------------------------------------------------


def project(rotation: np.ndarray, width: int = 640, height: int = 480, distance: float = 600.0) -> np.ndarray:
    """68-point array whose nose/eye points are the head model seen through head_pose's camera."""
    points = np.zeros((68, 2))
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    world = geometry.HEAD_MODEL_POINTS @ rotation.T + np.array([0.0, 0.0, distance])
    image = world @ camera.T
    points[list(geometry.HEAD_MODEL_INDICES)] = image[:, :2] / image[:, 2:]
    return points


def test_pose_of_a_synthetic_head_follows_the_documented_signs() -> None:
    assert np.allclose(geometry.head_pose(project(np.eye(3)), 640, 480), 0.0, atol=0.5)
    # Nose turned towards the image's right: a rotation about the (downward) y axis by -30 degrees.
    turn = np.deg2rad(30.0)
    yaw_right = np.array([[math.cos(turn), 0, -math.sin(turn)], [0, 1, 0], [math.sin(turn), 0, math.cos(turn)]])
    points = project(yaw_right)
    assert points[30, 0] > points[[36, 45], 0].mean()  # the test's rotation does turn the nose right
    roll, yaw, pitch = geometry.head_pose(points, 640, 480)
    assert yaw == pytest.approx(30.0, abs=1.0) and abs(roll) < 1.0 and abs(pitch) < 1.0
    # Chin up: a rotation about the x axis that moves the nose tip up in the image.
    tilt = np.deg2rad(15.0)
    up = np.array([[1, 0, 0], [0, math.cos(tilt), math.sin(tilt)], [0, -math.sin(tilt), math.cos(tilt)]])
    points, frontal = project(up), project(np.eye(3))
    assert points[30, 1] - points[[36, 45], 1].mean() < frontal[30, 1] - frontal[[36, 45], 1].mean()
    assert geometry.head_pose(points, 640, 480)[2] == pytest.approx(15.0, abs=1.0)


def test_astronaut_pose_is_near_frontal(detector: YuNetDetector, landmarker: DlibLandmarker,
                                        astronaut: np.ndarray) -> None:
    roll, yaw, pitch = pose_of(detector, landmarker, astronaut)
    assert all(-180.0 <= angle <= 180.0 for angle in (roll, yaw, pitch))
    assert abs(roll) < 8.0 and abs(yaw) < 12.0 and abs(pitch) < 20.0


def test_mirroring_the_image_flips_yaw_and_roll(detector: YuNetDetector, landmarker: DlibLandmarker,
                                                astronaut: np.ndarray) -> None:
    roll, yaw, pitch = pose_of(detector, landmarker, astronaut)
    m_roll, m_yaw, m_pitch = pose_of(detector, landmarker, np.ascontiguousarray(astronaut[:, ::-1]))
    assert yaw > 2.0 and m_yaw < -2.0  # she faces slightly towards the image's right
    assert m_yaw == pytest.approx(-yaw, abs=2.0)
    assert m_roll == pytest.approx(-roll, abs=2.0)
    assert m_pitch == pytest.approx(pitch, abs=2.0)


@pytest.mark.parametrize("degrees", [20.0, -20.0])
def test_roll_follows_an_image_rotation(detector: YuNetDetector, landmarker: DlibLandmarker,
                                        astronaut: np.ndarray, degrees: float) -> None:
    roll = pose_of(detector, landmarker, astronaut)[0]
    turned_roll = pose_of(detector, landmarker, rotated(astronaut, degrees))[0]
    # OpenCV's positive angle is counter-clockwise; Roll is positive clockwise.
    assert turned_roll - roll == pytest.approx(-degrees, abs=4.0)


# --- eyes and mouth --------------------------------------------------------------------------------------


def face_with(eye_ratio: float, mouth_gap: float) -> np.ndarray:
    """Synthetic 68 points: eyes 30 px wide, 60 px apart, with the given aspect ratio and lip gap / 60."""
    points = np.zeros((68, 2))
    for start, cx in ((36, 70.0), (42, 130.0)):
        half, lid = 15.0, eye_ratio * 30.0 / 2
        points[start:start + 6] = [(cx - half, 100), (cx - 5, 100 - lid), (cx + 5, 100 - lid), (cx + half, 100),
                                   (cx + 5, 100 + lid), (cx - 5, 100 + lid)]
    gap = mouth_gap * 60.0 / 2
    points[60:68] = [(80, 160), (90, 160 - gap), (100, 160 - gap), (110, 160 - gap), (120, 160),
                     (110, 160 + gap), (100, 160 + gap), (90, 160 + gap)]
    return points


def test_eyes_open_flips_at_the_threshold_and_confidence_grows_with_distance() -> None:
    t = geometry.EYE_THRESHOLD
    assert geometry.eye_aspect_ratio(face_with(0.3, 0.0)) == pytest.approx(0.3)
    assert geometry.eyes_open(face_with(t + 0.005, 0.0))[0] is True
    assert geometry.eyes_open(face_with(t - 0.005, 0.0))[0] is False
    open_conf = [geometry.eyes_open(face_with(t + d, 0.0))[1] for d in (0.002, 0.02, 0.1)]
    closed_conf = [geometry.eyes_open(face_with(t - d, 0.0))[1] for d in (0.002, 0.02, 0.1)]
    for confidences in (open_conf, closed_conf):
        assert 50.0 <= confidences[0] < 55.0 and confidences[0] < confidences[1] < confidences[2] <= 100.0
    assert geometry.eyes_open(face_with(0.0, 0.0))[1] > 99.5 and geometry.eyes_open(face_with(0.4, 0.0))[1] > 99.5


def test_mouth_open_flips_at_the_threshold_and_confidence_grows_with_distance() -> None:
    t = geometry.MOUTH_THRESHOLD
    assert geometry.mouth_opening(face_with(0.3, 0.2)) == pytest.approx(0.2)
    assert geometry.mouth_open(face_with(0.3, t + 0.005))[0] is True
    assert geometry.mouth_open(face_with(0.3, t - 0.005))[0] is False
    assert geometry.mouth_open(face_with(0.3, 0.0))[1] > geometry.mouth_open(face_with(0.3, t - 0.03))[1] > 50.0
    assert geometry.mouth_open(face_with(0.3, 0.4))[1] > geometry.mouth_open(face_with(0.3, t + 0.03))[1] > 50.0


def test_astronaut_eyes_open_and_smiling_mouth_open(detector: YuNetDetector, landmarker: DlibLandmarker,
                                                    astronaut: np.ndarray) -> None:
    points = landmarker.landmarks68(astronaut, one_face(detector, astronaut).box)
    assert geometry.eyes_open(points)[0] is True and geometry.eyes_open(points)[1] > 90.0
    assert geometry.mouth_open(points)[0] is True  # a broad smile showing the teeth


# --- Rekognition landmarks -------------------------------------------------------------------------------


def rekognition_types() -> list[str]:
    model = botocore.loaders.Loader().load_service_model("rekognition", "service-2")
    return list(model["shapes"]["LandmarkType"]["enum"])


def landmarks_of(detector: YuNetDetector, landmarker: DlibLandmarker, image: np.ndarray,
                 all_points: bool = True) -> dict[str, tuple[float, float]]:
    face = one_face(detector, image)
    points = landmarker.landmarks68(image, face.box) if all_points else None
    entries = geometry.rekognition_landmarks(face.landmarks, points, image.shape[1], image.shape[0])
    assert len({e["Type"] for e in entries}) == len(entries)
    return {str(e["Type"]): (float(e["X"]), float(e["Y"])) for e in entries}


def test_all_30_rekognition_landmark_types_are_present_as_ratios(detector: YuNetDetector,
                                                                 landmarker: DlibLandmarker,
                                                                 astronaut: np.ndarray) -> None:
    marks = landmarks_of(detector, landmarker, astronaut)
    assert sorted(marks) == sorted(rekognition_types()) and len(marks) == 30
    assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in marks.values())
    core = landmarks_of(detector, landmarker, astronaut, all_points=False)
    assert list(core) == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    assert all(marks[name] == core[name] for name in core)  # DEFAULT and ALL agree on the core five
    assert marks["chinBottom"][1] > marks["mouthDown"][1] > marks["nose"][1] > marks["leftEyeBrowUp"][1]


@pytest.mark.parametrize("mirror", [False, True])
def test_left_landmarks_are_on_the_image_left_even_when_mirrored(detector: YuNetDetector,
                                                                 landmarker: DlibLandmarker,
                                                                 astronaut: np.ndarray, mirror: bool) -> None:
    image = np.ascontiguousarray(astronaut[:, ::-1]) if mirror else astronaut
    marks = landmarks_of(detector, landmarker, image)
    for left, right in (("eyeLeft", "eyeRight"), ("mouthLeft", "mouthRight"), ("leftPupil", "rightPupil"),
                        ("leftEyeLeft", "leftEyeRight"), ("leftEyeBrowLeft", "rightEyeBrowRight"),
                        ("noseLeft", "noseRight"), ("upperJawlineLeft", "upperJawlineRight")):
        assert marks[left][0] < marks[right][0], (left, right)


# --- quality ---------------------------------------------------------------------------------------------


def test_quality_brightness_and_sharpness(detector: YuNetDetector, astronaut: np.ndarray) -> None:
    box = one_face(detector, astronaut).box
    brightness, sharpness = quality.face_quality(astronaut, box)
    assert 0.0 <= brightness <= 100.0 and 0.0 <= sharpness <= 100.0
    assert quality.face_quality(astronaut, box) == (brightness, sharpness)  # deterministic
    dark_brightness, _ = quality.face_quality((astronaut * 0.4).astype(np.uint8), box)
    assert dark_brightness == pytest.approx(0.4 * brightness, rel=0.05)
    _, blurred_sharpness = quality.face_quality(cv2.GaussianBlur(astronaut, (0, 0), 2.0), box)
    assert blurred_sharpness < 0.5 * sharpness
    flat = np.full((200, 200, 3), 128, dtype=np.uint8)
    assert quality.face_quality(flat, np.array([50, 50, 150, 150])) == (pytest.approx(50.2, abs=0.1), 0.0)


# --- age and gender --------------------------------------------------------------------------------------


def test_age_range_rule() -> None:
    ages = np.array([0.25, *range(1, 81)], dtype=np.float64)
    certain = np.zeros(81)
    certain[30] = 1.0
    low, high = age_range(certain, ages)
    assert low <= 30 <= high and high - low >= 2 * (1 + 0.08 * 30) - 1
    spread = np.exp(-0.5 * ((ages - 30) / 8.0) ** 2)
    wide_low, wide_high = age_range(spread / spread.sum(), ages)
    assert wide_low < low and wide_high > high
    assert age_range(np.eye(81)[0], ages)[0] == 0


def test_age_and_gender_of_a_woman_and_a_man_in_one_batch(detector: YuNetDetector,
                                                          estimator: AgeGenderEstimator,
                                                          astronaut: np.ndarray, cameraman: np.ndarray) -> None:
    image = np.ascontiguousarray(np.hstack([astronaut, cv2.resize(cameraman, astronaut.shape[1::-1])]))
    faces = sorted(detector.detect([image])[0], key=lambda f: float(f.box[0]))
    assert len(faces) == 2
    woman_result, man_result = estimator.predict(image, [f.box for f in faces])
    assert woman_result.gender == "Female" and woman_result.gender_confidence > 60.0
    assert man_result.gender == "Male" and man_result.gender_confidence > 60.0
    for result in (woman_result, man_result):
        assert 0.0 <= result.gender_confidence <= 100.0
        assert result.age_low <= result.age <= result.age_high and result.age_high - result.age_low <= 30
    assert woman_result.age_low <= 40 and woman_result.age_high >= 28  # the photo shows a woman in her 30s
    alone = estimator.predict(image, [faces[0].box])[0]  # batching does not change results
    assert (alone.age_low, alone.age_high, alone.gender) == (woman_result.age_low, woman_result.age_high, "Female")
    assert alone.age == pytest.approx(woman_result.age, abs=1e-3)
    assert estimator.predict(image, []) == []
