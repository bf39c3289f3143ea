"""Every Rekognition (and FaceLens) wire shape, built from the domain's typed results (`facelens.domain.model`).

Element shapes (BoundingBox, FaceDetail, ComparedFace, Face, FaceRecord, UnindexedFace, FaceMatch, UserMatch,
the refusals) and one function per response. Members are written in the order Rekognition documents them and a
member without a value is left out, never sent as null. One shape is persisted rather than served: the results
of a stored-video job are written once, in the shape GetFaceDetection / GetFaceSearch page them out
(`video_result`, used by `facelens.api.wire_video.persist`, which the composition root hands the video service;
the video service imports nothing of `api`).

This module imports no service and no request context at runtime (`facelens.context` imports the registry,
which imports `facelens.api.wire`, which imports this).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facelens import geometry, service_model
from facelens.accountability.policy import WIRE_NAMES
from facelens.domain import model
from facelens.store.audit import AuditRow
from facelens.store.base import CollectionRecord, FaceRecord, NewFace, UserRecord

Shape = dict[str, Any]


# The expression model's classes (facelens.models.emotion.CLASSES) as Rekognition's EmotionName values:
# neutral is answered as CALM; CONFUSED and UNKNOWN are never answered (no class of the model is either).
EXPRESSIONS = ("ANGRY", "DISGUSTED", "FEAR", "HAPPY", "SAD", "SURPRISED", "CALM")


def emotions(probabilities: Any) -> list[Shape]:
    """FaceDetail.Emotions: every expression the model scores, most likely first, Confidence in percent."""
    allowed = set(service_model.enum("EmotionName"))
    ranked = sorted(zip(EXPRESSIONS, (float(p) for p in probabilities), strict=True), key=lambda e: -e[1])
    return [{"Type": name, "Confidence": 100.0 * p} for name, p in ranked if name in allowed]


# -- elements
def bounding_box(found: model.FoundFace) -> dict[str, float]:
    """Rekognition's BoundingBox: ratios of the image size."""
    return found.box


def face_detail(found: model.FoundFace) -> Shape:
    """One FaceDetail with the requested fields that FaceLens computes (others are omitted, never invented)."""
    face, width, height, fields = found.face, found.width, found.height, found.fields
    detail: Shape = {"BoundingBox": bounding_box(found)}
    ages: Any = face.age_gender  # facelens.models.attributes.AgeGender
    if ages is not None and "AgeRange" in fields:
        detail["AgeRange"] = {"Low": ages.age_low, "High": ages.age_high}
    if ages is not None and "Gender" in fields:
        detail["Gender"] = {"Value": ages.gender, "Confidence": ages.gender_confidence}
    if face.eyes_open is not None:
        detail["EyesOpen"] = {"Value": face.eyes_open[0], "Confidence": face.eyes_open[1]}
    if face.mouth_open is not None:
        detail["MouthOpen"] = {"Value": face.mouth_open[0], "Confidence": face.mouth_open[1]}
    if face.emotions is not None and "Emotions" in fields:
        detail["Emotions"] = emotions(face.emotions)
    if face.emotions is not None and "Smile" in fields:
        happy = float(face.emotions[EXPRESSIONS.index("HAPPY")])
        detail["Smile"] = {"Value": happy >= 0.5, "Confidence": 100.0 * max(happy, 1.0 - happy)}
    if face.masked is not None and "FaceOccluded" in fields:  # a mask: the one occlusion a model here sees
        covered = face.masked
        detail["FaceOccluded"] = {"Value": covered >= 0.5, "Confidence": 100.0 * max(covered, 1.0 - covered)}
    if face.eye_direction is not None and "EyeDirection" in fields:  # no Confidence: nothing here computes one
        detail["EyeDirection"] = {"Yaw": face.eye_direction[0], "Pitch": face.eye_direction[1]}
    detail["Landmarks"] = geometry.rekognition_landmarks(
        face.landmarks, face.landmarks68 if "AllLandmarks" in fields else None, width, height)
    if face.pose is not None:
        roll, yaw, pitch = face.pose
        detail["Pose"] = {"Roll": roll, "Yaw": yaw, "Pitch": pitch}
    if face.quality is not None:
        detail["Quality"] = {"Brightness": face.quality[0], "Sharpness": face.quality[1]}
    detail["Confidence"] = face.confidence
    return detail


def compared_face(found: model.FoundFace) -> Shape:
    """Rekognition's ComparedFace (BoundingBox, Confidence, Landmarks, and Pose/Quality when computed)."""
    face = found.face
    shaped: Shape = {
        "BoundingBox": bounding_box(found),
        "Confidence": face.confidence,
        "Landmarks": geometry.rekognition_landmarks(face.landmarks, None, found.width, found.height),
    }
    if face.pose is not None:
        shaped["Pose"] = dict(zip(("Roll", "Yaw", "Pitch"), face.pose, strict=True))
    if face.quality is not None:
        shaped["Quality"] = dict(zip(("Brightness", "Sharpness"), face.quality, strict=True))
    return shaped


def _stored_face(record: FaceRecord | NewFace) -> Shape:
    """The members of `Face` every stored face has: FaceId, BoundingBox, ImageId, ExternalImageId, Confidence."""
    shaped: Shape = {"FaceId": record.face_id, "BoundingBox": record.bounding_box, "ImageId": record.image_id}
    if record.external_image_id is not None:
        shaped["ExternalImageId"] = record.external_image_id
    shaped["Confidence"] = record.confidence
    return shaped


def face(record: FaceRecord) -> Shape:
    """Rekognition's `Face` for a stored face."""
    shaped = _stored_face(record)
    shaped["IndexFacesModelVersion"] = record.model_version
    if record.user_id is not None:
        shaped["UserId"] = record.user_id
    return shaped


def face_record(indexed: model.IndexedFace) -> Shape:
    """An IndexFaces FaceRecord: the stored face (without model version or user) and its FaceDetail."""
    return {"Face": _stored_face(indexed.stored), "FaceDetail": face_detail(indexed.face)}


def unindexed_face(unindexed: model.UnindexedFace) -> Shape:
    return {"Reasons": unindexed.reasons, "FaceDetail": face_detail(unindexed.face)}


def unsearched_face(unsearched: model.UnindexedFace) -> Shape:
    return {"FaceDetails": face_detail(unsearched.face), "Reasons": unsearched.reasons}


def face_match(match: model.FaceMatch) -> Shape:
    return {"Similarity": match.similarity, "Face": face(match.face)}


def face_matches(matches: Sequence[model.FaceMatch]) -> list[Shape]:
    return [face_match(match) for match in matches]


def user(record: UserRecord) -> Shape:
    return {"UserId": record.user_id, "UserStatus": record.status}


def user_match(match: model.UserMatch) -> Shape:
    return {"Similarity": match.similarity, "User": user(match.user)}


def refusal(refused: model.Refusal) -> Shape:
    """An UnsuccessfulFaceDeletion / -Association / -Disassociation."""
    shaped: Shape = {"FaceId": refused.face_id}
    if refused.user_id is not None:
        shaped["UserId"] = refused.user_id
    if refused.confidence is not None:
        shaped["Confidence"] = refused.confidence
    shaped["Reasons"] = refused.reasons
    return shaped


def with_token(response: Shape, token: str | None) -> Shape:
    """`response` with its NextToken when there is a next page."""
    if token:
        response["NextToken"] = token
    return response


# -- responses: images
def detection(faces: Sequence[model.FoundFace]) -> Shape:
    return {"FaceDetails": [face_detail(found) for found in faces]}


def comparison(result: model.Comparison) -> Shape:
    return {
        "SourceImageFace": {"BoundingBox": bounding_box(result.source), "Confidence": result.source.face.confidence},
        "FaceMatches": [{"Similarity": m.similarity, "Face": compared_face(m.face)} for m in result.matches],
        "UnmatchedFaces": [compared_face(found) for found in result.unmatched],
    }


# -- responses: collections and faces
def created_collection(created: CollectionRecord) -> Shape:
    return {"StatusCode": 200, "CollectionArn": created.arn, "FaceModelVersion": created.face_model_version}


def collection_list(page: model.Page[CollectionRecord]) -> Shape:
    return with_token({"CollectionIds": [c.collection_id for c in page.items],
                       "FaceModelVersions": [c.face_model_version for c in page.items]}, page.next_token)


def collection_description(result: model.CollectionDescription) -> Shape:
    collection = result.collection
    return {"FaceCount": result.face_count, "FaceModelVersion": collection.face_model_version,
            "CollectionARN": collection.arn, "CreationTimestamp": collection.created, "UserCount": result.user_count}


def indexing(result: model.Indexing) -> Shape:
    return {"FaceRecords": [face_record(indexed) for indexed in result.indexed],
            "FaceModelVersion": result.face_model_version,
            "UnindexedFaces": [unindexed_face(unindexed) for unindexed in result.unindexed]}


def face_list(result: model.FaceList) -> Shape:
    response = with_token({"Faces": [face(record) for record in result.page.items]}, result.page.next_token)
    response["FaceModelVersion"] = result.face_model_version
    return response


def face_deletion(result: model.FaceChanges) -> Shape:
    return {"DeletedFaces": result.face_ids, "UnsuccessfulFaceDeletions": [refusal(r) for r in result.refused]}


def face_search(result: model.Search[model.FaceMatch]) -> Shape:
    if result.searched_face is None:  # SearchFaces
        return {"SearchedFaceId": result.searched_face_id, "FaceMatches": face_matches(result.matches),
                "FaceModelVersion": result.face_model_version}
    return {"SearchedFaceBoundingBox": bounding_box(result.searched_face),
            "SearchedFaceConfidence": float(result.searched_face.face.confidence),
            "FaceMatches": face_matches(result.matches), "FaceModelVersion": result.face_model_version}


# -- responses: users
def user_list(page: model.Page[UserRecord]) -> Shape:
    return with_token({"Users": [user(record) for record in page.items]}, page.next_token)


def association(result: model.FaceChanges) -> Shape:
    return {"AssociatedFaces": [{"FaceId": face_id} for face_id in result.face_ids],
            "UnsuccessfulFaceAssociations": [refusal(r) for r in result.refused], "UserStatus": result.user_status}


def disassociation(result: model.FaceChanges) -> Shape:
    return {"DisassociatedFaces": [{"FaceId": face_id} for face_id in result.face_ids],
            "UnsuccessfulFaceDisassociations": [refusal(r) for r in result.refused],
            "UserStatus": result.user_status}


def user_search(result: model.Search[model.UserMatch]) -> Shape:
    response: Shape = {"UserMatches": [user_match(m) for m in result.matches],
                       "FaceModelVersion": result.face_model_version}
    if result.unsearched is None:  # SearchUsers
        if result.searched_face_id is not None:
            response["SearchedFace"] = {"FaceId": result.searched_face_id}
        else:
            response["SearchedUser"] = {"UserId": result.searched_user_id}
        return response
    if result.searched_face is not None:
        response["SearchedFace"] = {"FaceDetail": face_detail(result.searched_face)}
    response["UnsearchedFaces"] = [unsearched_face(u) for u in result.unsearched]
    return response


# -- responses: stored video
def video_result(result: model.VideoFace) -> Shape:
    """One stored-video result as it is persisted and served: a FaceDetection, or (face search) a PersonMatch."""
    detail = face_detail(result.face)
    if result.matches is None:
        return {"Timestamp": result.timestamp_ms, "Face": detail}
    person = {"Index": result.track, "BoundingBox": detail["BoundingBox"], "Face": detail}
    return {"Timestamp": result.timestamp_ms, "Person": person, "FaceMatches": face_matches(result.matches)}


# -- responses: FaceLens's own
def collection_policy(result: model.CollectionPolicy) -> Shape:
    return {"CollectionId": result.collection_id, "Policy": {WIRE_NAMES[k]: v for k, v in result.own.items()},
            "EffectivePolicy": result.effective.to_wire(), "FaceCount": result.face_count,
            "SearchFloor": result.search_floor, "Calibration": result.calibration}


def audit_records(page: model.Page[AuditRow]) -> Shape:
    return with_token({"AuditRecords": [
        {"Sequence": row.seq, "Record": row.text, "PreviousHash": row.prev_hash, "Hash": row.hash}
        for row in page.items]}, page.next_token)
