"""The stored-video analyses through a real `facelens serve` and real boto3, on clips rendered here with known
content at known frames (`tests.video_fixtures.programme`: a cat panning 0-2 s, black 2-3 s, coffee 3-5 s, a text
card 5-6 s; `walker`: the cameraman panning 0-2 s, then coffee): labels at the right timestamps and aggregated
into segments, moderation scores, words read, persons tracked with their faces, SHOT boundaries at the cuts and
the black frames; idempotency, scope, audit, and the exceptions of bad requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.config import Config
from skimage import data

from facelens.client import admin_client
from tests.key_fixtures import ADMIN, READER, SCOPED, admin, credentials_file, reader, scoped, write_credentials
from tests.pg_fixtures import fresh_database
from tests.service_fixtures import REGION, Server, client, start_server
from tests.shape_checks import conforms
from tests.video_fixtures import (
    CUTS,
    FPS,
    SIZE,
    TEXT_LINES,
    fit,
    local,
    programme,
    wait,
    wait_running,
    walker,
    write_video,
)

pytestmark = pytest.mark.slow

CREDENTIALS = credentials_file(admin(), scoped("team-a"), reader())


def videos(data_dir: Path) -> Path:
    folder = data_dir / "videos"
    programme(folder / "programme.mp4", data.chelsea(), data.coffee())
    programme(folder / "silent.mp4", data.chelsea(), data.coffee(), with_audio=False)
    walker(folder / "walker.mp4", np.stack([data.camera()] * 3, axis=-1), data.coffee())
    (folder / "notes.mp4").write_text("not a video\n" * 100)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("video-analyses") / "data"
    videos(data_dir)
    write_credentials(data_dir, CREDENTIALS)
    server = start_server(data_dir, {"FACELENS_WORKERS": "2"})
    yield server
    server.stop()


def rek(server: Server, key: tuple[str, str] = ADMIN):
    """A boto3 client that checks every Get* response, as sent, against the operation's output shape."""
    made = client(server.url, *key)

    def check(http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code == 200 and model.name.startswith("Get"):
            conforms(json.loads(http_response.content), model.output_shape, model.name)

    made.meta.events.register("after-call.rekognition", check)
    return made


def everything(get, job_id: str, key: str, **params: object) -> list[dict]:
    """Every result of a finished job, read 7 at a time (paging)."""
    found, token = [], None
    while True:
        page = get(JobId=job_id, MaxResults=7, **params, **({"NextToken": token} if token else {}))
        found += page[key]
        token = page.get("NextToken")
        if not token:
            return found


def test_labels_at_the_right_timestamps_sorted_and_aggregated(server: Server) -> None:
    client_ = rek(server)
    job = client_.start_label_detection(Video=local("programme.mp4"), MinConfidence=40, JobTag="prog",
                                        ClientRequestToken="labels-1")["JobId"]
    assert client_.start_label_detection(Video=local("programme.mp4"), MinConfidence=40, JobTag="prog",
                                         ClientRequestToken="labels-1")["JobId"] == job
    with pytest.raises(client_.exceptions.IdempotentParameterMismatchException):
        client_.start_label_detection(Video=local("programme.mp4"), MinConfidence=60, ClientRequestToken="labels-1")
    done = wait(client_.get_label_detection, job)
    assert done["JobStatus"] == "SUCCEEDED" and done["JobTag"] == "prog"
    assert "yolov3-tiny" in done["LabelModelVersion"] and "wordnet" in done["LabelModelVersion"]
    assert done["VideoMetadata"]["FrameRate"] == FPS and done["VideoMetadata"]["DurationMillis"] == 6000
    assert done["GetRequestMetadata"] == {"SortBy": "TIMESTAMP", "AggregateBy": "TIMESTAMPS"}
    labels = everything(client_.get_label_detection, job, "Labels")
    assert labels == done["Labels"]  # 7 at a time or all at once: the same results
    assert [d["Timestamp"] for d in labels] == sorted(d["Timestamp"] for d in labels)
    at = {}
    for detection in labels:
        at.setdefault(detection["Label"]["Name"], []).append(detection["Timestamp"])
    cats, cups = at.get("Cat", []), at.get("Cup", [])
    assert cats and all(t < 2000 for t in cats) and len(cats) >= 8  # 10 samples of the cat (0-1.8 s)
    assert cups and all(3000 <= t < 5000 for t in cups)  # the coffee is on screen 3-5 s
    assert not any(2000 <= d["Timestamp"] < 3000 for d in labels)  # nothing in black frames
    assert all(d["Label"]["Confidence"] >= 40 for d in labels)
    cat = next(d["Label"] for d in labels if d["Label"]["Name"] == "Cat")
    assert cat["Instances"] and {"Name": "Animal"} in cat["Parents"]
    by_name = everything(client_.get_label_detection, job, "Labels", SortBy="NAME")
    names = [d["Label"]["Name"] for d in by_name]
    assert names == sorted(names, key=str.casefold) and sorted(map(json.dumps, by_name)) == sorted(
        map(json.dumps, labels))
    segments = wait(client_.get_label_detection, job, AggregateBy="SEGMENTS")["Labels"]
    cat_segments = [s for s in segments if s["Label"]["Name"] == "Cat"]
    assert len(cat_segments) >= 1 and cat_segments[0]["StartTimestampMillis"] == min(cats)
    assert max(s["EndTimestampMillis"] for s in cat_segments) == max(cats)
    for segment in segments:
        assert segment["DurationMillis"] == segment["EndTimestampMillis"] - segment["StartTimestampMillis"]
        assert segment["Timestamp"] == segment["StartTimestampMillis"] and "Instances" not in segment["Label"]
    cup = [s for s in segments if s["Label"]["Name"] == "Cup"]
    assert cup and cup[0]["StartTimestampMillis"] == min(cups)
    # DetectLabels' category filters apply to every frame: only the cat's labels are Animals and Pets
    filtered = client_.start_label_detection(Video=local("programme.mp4"), MinConfidence=40, Settings={
        "GeneralLabels": {"LabelCategoryInclusionFilters": ["Animals and Pets"]}})["JobId"]
    assert wait(client_.get_label_detection, filtered)["JobStatus"] == "SUCCEEDED"
    animals = everything(client_.get_label_detection, filtered, "Labels")
    assert {"Cat", "Animal"} <= {d["Label"]["Name"] for d in animals}
    assert all({"Name": "Animals and Pets"} in d["Label"]["Categories"] for d in animals)
    assert all(d["Timestamp"] < 2000 for d in animals)


def test_content_moderation_scores_every_frame_and_merges_them(server: Server) -> None:
    client_ = rek(server)
    strict = wait(client_.get_content_moderation, client_.start_content_moderation(
        Video=local("programme.mp4"))["JobId"])
    assert strict["JobStatus"] == "SUCCEEDED" and strict["ModerationLabels"] == []  # a cat, coffee, a card
    assert "open_nsfw" in strict["ModerationModelVersion"] and "nsfwjs" in strict["ModerationModelVersion"]
    job = client_.start_content_moderation(Video=local("programme.mp4"), MinConfidence=0)["JobId"]
    every = wait(client_.get_content_moderation, job)["ModerationLabels"]
    for name in ("Explicit", "Suggestive"):  # MinConfidence 0: every sample, each category the models score
        assert [d["Timestamp"] for d in every if d["ModerationLabel"]["Name"] == name] == list(range(0, 6000, 200))
    assert {d["ModerationLabel"]["Name"] for d in every} == {"Explicit", "Suggestive"}
    assert all(d["ModerationLabel"]["Confidence"] < 50 for d in every)
    merged = wait(client_.get_content_moderation, job, AggregateBy="SEGMENTS", SortBy="NAME")
    assert [(s["ModerationLabel"]["Name"], s["StartTimestampMillis"], s["EndTimestampMillis"])
            for s in merged["ModerationLabels"]] == [("Explicit", 0, 5800), ("Suggestive", 0, 5800)]
    assert merged["ModerationLabels"][0]["ModerationLabel"]["Confidence"] == max(
        d["ModerationLabel"]["Confidence"] for d in every)


def test_text_is_read_where_the_card_is_with_detect_texts_filters(server: Server) -> None:
    client_ = rek(server)
    done = wait(client_.get_text_detection, client_.start_text_detection(Video=local("programme.mp4"))["JobId"])
    assert done["JobStatus"] == "SUCCEEDED" and done["TextModelVersion"].startswith("rapidocr")
    read = done["TextDetections"]
    words = {d["TextDetection"]["DetectedText"].upper() for d in read if d["TextDetection"]["Type"] == "WORD"}
    assert {"FACELENS", "VIDEO", "2026"} <= words
    assert {d["Timestamp"] for d in read} == {5000}  # read once a second; the card is on screen 5-6 s
    lines = [d["TextDetection"] for d in read if d["TextDetection"]["Type"] == "LINE"]
    assert [line["DetectedText"].upper() for line in lines] == list(TEXT_LINES)
    assert all(d["TextDetection"]["ParentId"] in {line["Id"] for line in lines}
               for d in read if d["TextDetection"]["Type"] == "WORD")
    top_half = {"BoundingBox": {"Left": 0, "Top": 0, "Width": 1, "Height": 0.5}}
    filtered = wait(client_.get_text_detection, client_.start_text_detection(
        Video=local("programme.mp4"), Filters={"RegionsOfInterest": [top_half],
                                              "WordFilter": {"MinConfidence": 50}})["JobId"])["TextDetections"]
    assert {d["TextDetection"]["DetectedText"].upper() for d in filtered} == {"FACELENS"}
    with pytest.raises(client_.exceptions.InvalidParameterException, match="3 points"):
        client_.start_text_detection(Video=local("programme.mp4"), Filters={"RegionsOfInterest": [
            {"Polygon": [{"X": 0.1, "Y": 0.1}, {"X": 0.2, "Y": 0.2}]}]})


def test_a_person_is_tracked_with_one_index_and_their_face(server: Server) -> None:
    client_ = rek(server)
    job = client_.start_person_tracking(Video=local("walker.mp4"))["JobId"]
    done = wait(client_.get_person_tracking, job)
    assert done["JobStatus"] == "SUCCEEDED"
    persons = done["Persons"]
    assert persons and all(p["Timestamp"] < 2000 for p in persons)  # then coffee: nobody
    assert len({p["Timestamp"] for p in persons}) >= 9  # seen in (nearly) every sample of 0-1.8 s
    main = max({p["Person"]["Index"] for p in persons}, key=lambda i: sum(p["Person"]["Index"] == i for p in persons))
    assert sum(p["Person"]["Index"] == main for p in persons) >= 9  # one index across the frames
    with_face = [p["Person"] for p in persons if "Face" in p["Person"]]
    assert len(with_face) >= 9
    for person in with_face:
        box, face = person["BoundingBox"], person["Face"]["BoundingBox"]
        centre = (face["Left"] + face["Width"] / 2, face["Top"] + face["Height"] / 2)
        assert box["Left"] <= centre[0] <= box["Left"] + box["Width"]
        assert box["Top"] <= centre[1] <= box["Top"] + box["Height"]
        assert person["Face"]["Confidence"] > 80 and face["Top"] < 0.5  # the cameraman's head, up in the frame
    by_index = everything(client_.get_person_tracking, job, "Persons", SortBy="INDEX")
    assert [p["Person"]["Index"] for p in by_index] == sorted(p["Person"]["Index"] for p in persons)


def test_shots_at_the_cuts_and_the_black_frames(server: Server) -> None:
    client_ = rek(server)
    job = client_.start_segment_detection(Video=local("programme.mp4"), SegmentTypes=["SHOT", "TECHNICAL_CUE"])
    done = wait(client_.get_segment_detection, job["JobId"])
    assert done["JobStatus"] == "SUCCEEDED"
    assert done["AudioMetadata"] == [{"Codec": "aac", "DurationMillis": 6000, "SampleRate": 16000,
                                      "NumberOfChannels": 1}]
    assert done["VideoMetadata"][0]["FrameRate"] == FPS
    assert {t["Type"] for t in done["SelectedSegmentTypes"]} == {"SHOT", "TECHNICAL_CUE"}
    shots = [s for s in done["Segments"] if s["Type"] == "SHOT"]
    assert [s["StartFrameNumber"] for s in shots] == [0, *CUTS]  # exactly at the cut frames
    assert [s["ShotSegment"]["Index"] for s in shots] == [0, 1, 2, 3]
    assert [s["StartTimestampMillis"] for s in shots] == [0, 2000, 3000, 5000]
    assert shots[1]["StartTimecodeSMPTE"] == "00:00:02:00" and shots[1]["DurationFrames"] == 30
    assert shots[-1]["EndTimestampMillis"] == 6000 and shots[-1]["EndFrameNumber"] == 179
    assert all(s["ShotSegment"]["Confidence"] >= 50 for s in shots)
    cues = [s for s in done["Segments"] if s["Type"] == "TECHNICAL_CUE"]
    assert [(c["TechnicalCueSegment"]["Type"], c["StartFrameNumber"], c["EndFrameNumber"]) for c in cues] == [
        ("BlackFrames", 60, 89)]
    assert (cues[0]["StartTimestampMillis"], cues[0]["EndTimestampMillis"]) == (2000, 3000)
    assert everything(client_.get_segment_detection, job["JobId"], "Segments") == done["Segments"]
    # a stricter shot filter keeps only the cuts that change the colours most; a silent clip has no audio
    strict = wait(client_.get_segment_detection, client_.start_segment_detection(
        Video=local("silent.mp4"), SegmentTypes=["SHOT"], Filters={"ShotFilter": {"MinSegmentConfidence": 95}})[
        "JobId"])
    assert strict["AudioMetadata"] == [] and {t["Type"] for t in strict["SelectedSegmentTypes"]} == {"SHOT"}
    assert [s["StartFrameNumber"] for s in strict["Segments"]] == [0, 60]  # cat -> black only


def test_starts_are_audited_scoped_and_bad_requests_refused(server: Server) -> None:
    admin_ = rek(server)
    scoped, reader = rek(server, SCOPED), rek(server, READER)
    job = admin_.start_segment_detection(Video=local("programme.mp4"), SegmentTypes=["SHOT"])["JobId"]
    assert wait(admin_.get_segment_detection, job)["JobStatus"] == "SUCCEEDED"
    with pytest.raises(scoped.exceptions.AccessDeniedException, match="another key"):
        scoped.get_segment_detection(JobId=job)  # a collection-scoped key reads only the jobs it started
    own = scoped.start_segment_detection(Video=local("programme.mp4"), SegmentTypes=["TECHNICAL_CUE"])["JobId"]
    assert wait(scoped.get_segment_detection, own)["JobStatus"] == "SUCCEEDED"
    with pytest.raises(reader.exceptions.AccessDeniedException):
        reader.start_label_detection(Video=local("programme.mp4"))  # a Start is a write
    auditor = admin_client(server.url, region_name=REGION, aws_access_key_id=ADMIN[0],
                           aws_secret_access_key=ADMIN[1], config=Config(retries={"max_attempts": 1}))
    records = [json.loads(r["Record"]) for r in auditor.list_audit_records(MaxResults=1000)["AuditRecords"]]
    starts = {(r["operation"], r["key"]) for r in records if r.get("job_id") in (job, own)}
    assert {("StartSegmentDetection", ADMIN[0]), ("StartSegmentDetection", SCOPED[0]),
            ("GetSegmentDetection", SCOPED[0])} <= starts
    with pytest.raises(admin_.exceptions.ResourceNotFoundException):
        admin_.get_label_detection(JobId=job)  # a segment job is not a label job
    with pytest.raises(admin_.exceptions.InvalidS3ObjectException):
        admin_.start_person_tracking(Video=local("nothing-here.mp4"))
    with pytest.raises(admin_.exceptions.InvalidParameterException, match="outside"):
        admin_.start_content_moderation(Video=local("../credentials"))
    with pytest.raises(admin_.exceptions.InvalidParameterException):
        admin_.start_label_detection(Video=local("programme.mp4"), MinConfidence=101)  # the service model's range
    failed = wait(admin_.get_label_detection, admin_.start_label_detection(Video=local("notes.mp4"))["JobId"])
    assert failed["JobStatus"] == "FAILED" and "not a video" in failed["StatusMessage"] and "Labels" not in failed


def test_on_postgresql(tmp_path: Path) -> None:
    """The same machinery on PostgreSQL (results stored in parts): a label job's SEGMENTS and a segment job."""
    data_dir = tmp_path / "data"
    programme(data_dir / "videos" / "programme.mp4", data.chelsea(), data.coffee())
    with fresh_database() as url:
        server = start_server(data_dir, {"FACELENS_DATABASE_URL": url,
                                         "FACELENS_ACCESS_KEYS": "FLKTESTKEY0000000001:test-secret-do-not-use"})
        try:
            client_ = client(server.url)
            shots = wait(client_.get_segment_detection, client_.start_segment_detection(
                Video=local("programme.mp4"), SegmentTypes=["SHOT"])["JobId"])["Segments"]
            assert [s["StartFrameNumber"] for s in shots] == [0, *CUTS]
            job = client_.start_content_moderation(Video=local("programme.mp4"), MinConfidence=0)["JobId"]
            merged = wait(client_.get_content_moderation, job, AggregateBy="SEGMENTS")["ModerationLabels"]
            assert sorted((s["ModerationLabel"]["Name"], s["StartTimestampMillis"], s["EndTimestampMillis"])
                          for s in merged) == [("Explicit", 0, 5800), ("Suggestive", 0, 5800)]
            assert len(wait(client_.get_content_moderation, job)["ModerationLabels"]) == 2 * 30  # 2 labels x 30
        finally:
            server.stop()


def test_the_cli_runs_an_analysis_in_its_own_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facelens.cli import main

    clip = programme(tmp_path / "clips" / "programme.mp4", data.chelsea(), data.coffee())
    assert main(["video", "segments", str(clip), "--types", "TECHNICAL_CUE", "--data-dir", str(tmp_path / "d")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(s["Type"], s["StartFrameNumber"], s["EndFrameNumber"]) for s in printed["Segments"]] == [
        ("TECHNICAL_CUE", 60, 89)]
    assert main(["video", "labels", str(tmp_path / "clips" / "none.mp4"), "--data-dir", str(tmp_path / "d")]) == 2


def test_a_label_job_interrupted_by_sigkill_completes_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cat = data.chelsea()
    write_video(data_dir / "videos" / "long.mp4", 450, FPS, "libx264", SIZE, lambda i: fit(cat, shift=i % 60))
    env = {"FACELENS_ACCESS_KEYS": "FLKTESTKEY0000000001:test-secret-do-not-use"}
    first = start_server(data_dir, env)
    client_ = client(first.url)
    job = client_.start_label_detection(Video=local("long.mp4"))["JobId"]
    wait_running(client_.get_label_detection, job)
    first.process.kill()
    first.process.wait(10)
    second = start_server(data_dir, env)
    try:
        client_ = client(second.url)
        resumed = wait(client_.get_label_detection, job)
        fresh = wait(client_.get_label_detection, client_.start_label_detection(Video=local("long.mp4"))["JobId"])
        assert resumed["JobStatus"] == fresh["JobStatus"] == "SUCCEEDED"
        assert resumed["Labels"] == fresh["Labels"] and {d["Label"]["Name"] for d in resumed["Labels"]} >= {"Cat"}
        assert "interrupted jobs queued again" in second.output()
    finally:
        second.stop()
