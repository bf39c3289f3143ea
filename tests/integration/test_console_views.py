"""The console's face thumbnails and video view in a real Chromium (Debian's, driven by Playwright) against a real
`facelens serve`: thumbnails appear only once a collection's policy keeps face crops, are served only to a
signed-in key whose scope covers the collection, and go with their face; every stored-video job kind is listed
with its status and shown on its timeline. Screenshots go to docs/console/ (shown in docs/console.md)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import encode
from tests.console_fixtures import (  # noqa: F401 - fixtures
    ADMIN,
    CHROMIUM,
    READER,
    SCOPED,
    browser,
    new_page,
    photos,
    serve,
    shoot,
    sign_in,
)
from tests.service_fixtures import REGION, Server, client, moto_s3  # noqa: F401 - fixture
from tests.stream_fixtures import KinesisReader, kinesis_client, kinesis_env, render_clip

pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make chromium`)")
CROPS = "console-crops"
ROLE = "arn:aws:iam::123456789012:role/facelens"
SHARED = "console-scoped"  # the scoped key's collection: it may list collections and search, not list faces


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto_s3, astronaut: np.ndarray,  # noqa: F811
           cameraman: np.ndarray) -> Iterator[Server]:
    """The console's server with two cameras (a clip played like a camera) and Kinesis on moto."""
    from facelens.pipeline import default_analyzer

    clip = render_clip(tmp_path_factory.mktemp("camera") / "door.mp4", default_analyzer(), astronaut, cameraman)
    server = serve(tmp_path_factory, "console-views", FACELENS_CAMERAS=f"door={clip};yard={clip}",
                   **kinesis_env(moto_s3.url))
    yield server
    server.stop()


def video_arn(camera: str) -> str:
    return f"arn:aws:kinesisvideo:{REGION}:123456789012:stream/{camera}/1700000000000"


def natural_sizes(page: object) -> list[int]:
    """The decoded width of each thumbnail on the page (0: it did not load)."""
    return page.evaluate("Array.from(document.querySelectorAll('img.crop')).map(i => i.naturalWidth)")


def test_thumbnails_only_once_the_policy_keeps_crops(server: Server, browser: object,  # noqa: F811
                                                     photos: dict[str, Path]) -> None:  # noqa: F811
    rek = client(server.url, *ADMIN)
    rek.create_collection(CollectionId=CROPS)
    rek.index_faces(CollectionId=CROPS, Image={"Bytes": photos["cameraman.jpg"].read_bytes()},
                    ExternalImageId="before-opt-in.jpg")
    page = new_page(browser)
    sign_in(page, server, ADMIN, f"/console/collections/{CROPS}")
    assert page.locator("img.crop").count() == 0  # off by default: no crop, no thumbnail column
    assert "Face" not in [h.inner_text() for h in page.locator("#faces thead th").all()]
    page.get_by_label(re.compile("Keep a 96x96 crop of each face")).check()
    page.get_by_role("button", name="Save policy", exact=True).click()
    assert "face crops kept" in page.inner_text("#policy")
    page.get_by_label(re.compile("Drop images here")).set_input_files(
        [photos["astronaut.jpg"], photos["astronaut-mirrored.jpg"]])
    page.get_by_role("button", name="Index", exact=True).click()
    page.locator("[data-progress]", has_text=re.compile("^Done")).wait_for(timeout=120_000)
    page.goto(f"{server.url}/console/collections/{CROPS}")
    thumbnails = page.locator("img.crop")
    assert thumbnails.count() == 2 and page.get_by_role("img", name="Face astronaut.jpg").count() == 1
    page.wait_for_function("Array.from(document.querySelectorAll('img.crop')).every(i => i.complete)")
    assert natural_sizes(page) == [96, 96]  # the kept 96x96 JPEGs, served to this signed-in key
    first = page.locator("#faces tbody tr").first  # the face indexed before the opt-in has none
    assert first.locator("td").nth(0).inner_text() == "—" and first.locator("img").count() == 0
    shoot(page, "collection-crops")
    crop_url = server.url + thumbnails.first.get_attribute("src")
    answer = page.request.get(crop_url)
    assert answer.status == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store" and answer.body()[:2] == b"\xff\xd8"

    anonymous = browser.new_context()  # no session: sent to sign-in, no bytes of the photo
    refused = anonymous.request.get(crop_url, max_redirects=0)
    assert refused.status == 303 and "/console/signin" in refused.headers["location"]
    anonymous.close()
    scoped = new_page(browser)  # a key limited to another collection (and without ListFaces)
    sign_in(scoped, server, SCOPED)
    denied = scoped.request.get(crop_url, max_redirects=0)
    assert denied.status == 403 and "no access to collection" in denied.text()
    scoped.context.close()
    reader = new_page(browser)  # a read-only key that may list the faces sees the thumbnails, changes nothing
    sign_in(reader, server, READER, f"/console/collections/{CROPS}")
    reader.wait_for_function("Array.from(document.querySelectorAll('img.crop')).every(i => i.complete)")
    assert natural_sizes(reader) == [96, 96]
    reader.context.close()

    # deleted with its face: DeleteFaces (boto3), then the page and the URL have nothing left to show
    face_id = crop_url.rsplit("/", 2)[-2]
    assert rek.delete_faces(CollectionId=CROPS, FaceIds=[face_id])["DeletedFaces"] == [face_id]
    assert page.request.get(crop_url).status == 404
    page.reload()
    assert page.locator("img.crop").count() == 1
    page.context.close()


def test_every_video_job_kind_on_its_timeline(server: Server, browser: object,  # noqa: F811
                                              astronaut: np.ndarray, cameraman: np.ndarray) -> None:
    from skimage import data

    from facelens.console.video_views import VIEWS
    from facelens.domain.video_kinds import KINDS
    from facelens.pipeline import default_analyzer
    from tests.video_fixtures import EILEEN_MS, local, programme, two_people, wait, walker

    assert set(VIEWS) == set(KINDS)  # the console shows every stored-video job kind
    rek = client(server.url, *ADMIN)
    rek.create_collection(CollectionId="console-video")
    rek.index_faces(CollectionId="console-video", Image={"Bytes": encode(astronaut)}, ExternalImageId="eileen")
    videos = server.data_dir / "videos"
    two_people(videos / "scene.mp4", default_analyzer(), astronaut, cameraman)
    programme(videos / "programme.mp4", data.chelsea(), data.coffee())
    walker(videos / "walker.mp4", np.stack([data.camera()] * 3, axis=-1), data.coffee())
    started = {  # kind -> (JobId, the Get that waits for it)
        "FaceSearch": (rek.start_face_search(Video=local("scene.mp4"), CollectionId="console-video")["JobId"],
                       rek.get_face_search),
        "FaceDetection": (rek.start_face_detection(Video=local("scene.mp4"))["JobId"], rek.get_face_detection),
        "LabelDetection": (rek.start_label_detection(Video=local("programme.mp4"), MinConfidence=40)["JobId"],
                           rek.get_label_detection),
        "ContentModeration": (rek.start_content_moderation(Video=local("programme.mp4"), MinConfidence=0)["JobId"],
                              rek.get_content_moderation),
        "TextDetection": (rek.start_text_detection(Video=local("programme.mp4"))["JobId"], rek.get_text_detection),
        "PersonTracking": (rek.start_person_tracking(Video=local("walker.mp4"))["JobId"], rek.get_person_tracking),
        "SegmentDetection": (rek.start_segment_detection(Video=local("programme.mp4"),
                                                         SegmentTypes=["SHOT", "TECHNICAL_CUE"])["JobId"],
                             rek.get_segment_detection),
    }
    page = new_page(browser)
    sign_in(page, server, ADMIN, "/console/video")
    listed = {row.locator("td").nth(0).inner_text(): (row.locator("td").nth(1).inner_text(),
                                                      row.locator("td").nth(2).inner_text())
              for row in page.locator("#jobs tbody tr").all()}
    for kind, (job_id, _) in started.items():  # listed from the audit log before any Get: "started"
        assert listed[job_id] == (VIEWS[kind].label, "started"), kind
    for kind, (job_id, get) in started.items():
        assert wait(get, job_id, timeout=600)["JobStatus"] == "SUCCEEDED", kind
    page.reload()
    assert {page.locator("#jobs tbody tr", has_text=job_id).locator("td").nth(2).inner_text()
            for job_id, _ in started.values()} == {"SUCCEEDED"}  # what the latest Get reported
    shoot(page, "video-jobs")

    expected = {"LabelDetection": "Cat", "ContentModeration": "Explicit", "TextDetection": "FACELENS",
                "PersonTracking": "person #", "SegmentDetection": "BlackFrames", "FaceDetection": "faces"}
    for kind, (job_id, _) in started.items():
        page.goto(f"{server.url}/console/video")
        page.get_by_role("link", name=job_id).click()
        assert (page.inner_text("#job-status"), page.inner_text("#job-kind")) == ("SUCCEEDED", VIEWS[kind].label)
        assert page.locator("svg.timeline rect").count() >= 1, kind
        assert int(page.inner_text("#result-count")) >= 1, kind
        if kind in expected:
            assert expected[kind] in page.inner_text("#results"), kind
        if kind == "FaceSearch":
            assert page.locator("svg.timeline rect.hit").count() >= 1
            assert page.locator("svg.timeline rect.seen").count() >= 1
            rows = {int(row.locator("td").nth(0).inner_text()): row.locator("td").nth(2).inner_text()
                    for row in page.locator("#results tbody tr").all()}
            assert any(ms in rows and rows[ms].startswith("eileen (") for ms in EILEEN_MS)
            tracks = page.evaluate("Array.from(document.querySelectorAll('svg.timeline text')).map(t => t.textContent)")
            assert [t for t in tracks if t.startswith("person")] == ["person #0", "person #1"]  # index order
            shoot(page, "video")
        if kind == "SegmentDetection":  # a span as wide as it lasts: the black frames, 2-3 s of 6 s
            widths = page.evaluate("""Array.from(document.querySelectorAll('svg.timeline rect'))
                .filter(r => r.textContent.includes('BlackFrames')).map(r => +r.getAttribute('width'))""")
            assert widths and max(widths) > 100
            assert "Until (ms)" in [h.inner_text() for h in page.locator("#results thead th").all()]
            shoot(page, "video-segments")
        if kind == "LabelDetection":
            shoot(page, "video-labels")
    # a job opened by JobId and kind, as a key that cannot list jobs would
    page.goto(f"{server.url}/console/video?job={started['TextDetection'][0]}&kind=TextDetection")
    assert "FACELENS" in page.inner_text("#results")
    page.context.close()


def test_stream_processors_with_status_camera_collection_and_purpose(server: Server, browser: object,  # noqa: F811
                                                                     moto_s3, astronaut: np.ndarray) -> None:  # noqa: F811
    from facelens.client import with_purpose

    rek = client(server.url, *ADMIN)
    rek.create_collection(CollectionId="console-streams")
    rek.index_faces(CollectionId="console-streams", Image={"Bytes": encode(astronaut)}, ExternalImageId="eileen")
    out = KinesisReader.create(kinesis_client(moto_s3.url), "console-door-faces")
    for name, camera, purpose in (("door-watch", "door", "CASE-2026-200"), ("yard-idle", "yard", None)):
        creator = with_purpose(client(server.url, *ADMIN), purpose) if purpose else rek
        creator.create_stream_processor(Name=name, Input={"KinesisVideoStream": {"Arn": video_arn(camera)}},
                                        Output={"KinesisDataStream": {"Arn": out.arn}}, RoleArn=ROLE,
                                        Settings={"FaceSearch": {"CollectionId": "console-streams",
                                                                 "FaceMatchThreshold": 85}})
    rek.start_stream_processor(Name="door-watch")
    deadline = time.monotonic() + 60
    while rek.describe_stream_processor(Name="door-watch")["Status"] != "RUNNING":
        assert time.monotonic() < deadline, rek.describe_stream_processor(Name="door-watch")
        time.sleep(0.3)
    try:
        page = new_page(browser)
        sign_in(page, server, ADMIN, "/console/video")
        header = [h.inner_text() for h in page.locator("#streams thead th").all()]
        assert header == ["Name", "Status", "Message", "Camera", "Collection (or labels)", "Requested threshold",
                          "Purpose", "Created by key"]
        rows = {cells[0]: cells[1:] for cells in ([c.inner_text() for c in row.locator("td").all()]
                                                  for row in page.locator("#streams tbody tr").all())}
        assert rows["door-watch"] == ["RUNNING", "", "door", "console-streams", "85", "CASE-2026-200", ADMIN[0]]
        assert rows["yard-idle"] == ["STOPPED", "", "yard", "console-streams", "85", "—", ADMIN[0]]
        page.locator("#streams-h").scroll_into_view_if_needed()
        shoot(page, "streams")
        page.context.close()
        reader = new_page(browser)  # a read-only key sees the processors, not who made them or why
        sign_in(reader, server, READER, "/console/video")
        assert reader.locator("#streams tbody tr").count() == 2
        assert "Purpose" not in reader.inner_text("#streams thead")
        assert "CASE-2026-200" not in reader.inner_text("main")
        reader.context.close()
        scoped = new_page(browser)  # a key without ListStreamProcessors: no such section
        sign_in(scoped, server, SCOPED, "/console/video")
        assert scoped.locator("#streams").count() == 0 and scoped.locator("#streams-h").count() == 0
        scoped.context.close()
    finally:
        rek.stop_stream_processor(Name="door-watch")
