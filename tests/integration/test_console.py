"""The web console in a real Chromium (Debian's, driven by Playwright) against a real `facelens serve`: sign in,
create a collection, index photos (an error per file), search, record a decision, find it in the audit view and
in `facelens audit export`; a read-only key sees no write control and its forged POSTs change nothing; a POST
without the CSRF token is refused; an expired session is sent to sign-in. Screenshots of each page (1366x768)
are written to docs/console/ (shown in docs/console.md)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.console_fixtures import (  # noqa: F401 - fixtures
    ADMIN,
    CHROMIUM,
    COLLECTION,
    READER,
    SCOPED,
    browser,
    collections_of,
    csrf,
    new_page,
    photos,
    serve,
    server,
    shoot,
    sign_in,
)
from tests.service_fixtures import BIN, Server, client

pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
GUARDED = "console-guarded"  # the read-only key's target


def admin(server: Server):  # noqa: F811
    from facelens.client import admin_client
    from tests.service_fixtures import REGION

    return admin_client(server.url, region_name=REGION, aws_access_key_id=ADMIN[0], aws_secret_access_key=ADMIN[1])


pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make chromium`)")


def test_review_flow_through_the_console(server: Server, browser: object, photos: dict[str, Path]) -> None:  # noqa: F811
    page = new_page(browser)
    page.goto(server.url + "/console/")
    shoot(page, "signin")
    page.keyboard.press("Tab")  # keyboard: the first stop is the skip link, then the form in order
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "key_id"
    sign_in(page, server, ADMIN)
    # the browser holds a session id only: HttpOnly, SameSite=Strict, nothing in storage, no secret anywhere
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("facelens_console", True, "Strict")]
    assert all(ADMIN[1] not in c["value"] for c in cookies)
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    page.get_by_label("Collection id").fill(COLLECTION)
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url(re.compile(f"/console/collections/{COLLECTION}"))
    assert f"Collection {COLLECTION} created." in page.inner_text("main")

    page.get_by_label(re.compile("Drop images here")).set_input_files(
        [photos[n] for n in ("astronaut.jpg", "astronaut-mirrored.jpg", "cameraman.jpg", "notes.jpg")])
    progress = []  # the script sends one file per request and says how far it got
    page.expose_function("noteProgress", lambda text: progress.append(text))
    page.evaluate("""new MutationObserver(() => noteProgress(document.querySelector('[data-progress]').textContent))
                     .observe(document.querySelector('[data-progress]'), {childList: true})""")
    page.get_by_role("button", name="Index", exact=True).click()
    page.locator("[data-progress]", has_text=re.compile("^Done")).wait_for(timeout=120_000)
    assert [p for p in progress if p.startswith("Indexing")] == [
        f"Indexing {i} of 4: {name}…" for i, name in enumerate(("astronaut.jpg", "astronaut-mirrored.jpg",
                                                                "cameraman.jpg", "notes.jpg"), 1)]
    results = {row.locator("td").nth(0).inner_text(): row.locator("td").nth(1).inner_text()
               for row in page.locator("#index-results tbody tr").all()}
    assert results["astronaut.jpg"] == "1 face(s) indexed" and results["cameraman.jpg"] == "1 face(s) indexed"
    assert results["astronaut-mirrored.jpg"] == "1 face(s) indexed" and results["notes.jpg"] == "not indexed"
    assert "InvalidImageFormatException" in page.locator("#index-results").inner_text()
    shoot(page, "index")

    page.reload()
    assert page.inner_text("#face-count") == "3"
    assert {"astronaut.jpg", "astronaut-mirrored.jpg", "cameraman.jpg"} <= set(page.locator("#faces").inner_text()
                                                                                .split())
    page.get_by_label("Refuse searches without a purpose").check()  # admin key: the policy form is there
    page.get_by_label(re.compile("Export a search's results only once")).check()
    page.get_by_role("button", name="Save policy", exact=True).click()
    assert "purpose required" in page.inner_text("#policy") and "review required" in page.inner_text("#policy")
    shoot(page, "collection")
    page.goto(server.url + "/console/collections")
    assert COLLECTION in page.inner_text("#collections")
    shoot(page, "collections")

    page.get_by_role("link", name="Search and review").click()
    refused = page.request.post(server.url + "/console/search", max_redirects=0, multipart={  # no purpose given
        "csrf": csrf(page), "collection": COLLECTION, "probe": {"name": "probe.jpg", "mimeType": "image/jpeg",
                                                                "buffer": photos["probe.jpg"].read_bytes()}})
    assert refused.status == 403 and "requires a purpose" in refused.text()
    page.get_by_label(re.compile("Probe image")).set_input_files(photos["probe.jpg"])
    assert page.get_by_label(re.compile("Purpose")).get_attribute("required") is not None
    page.get_by_label(re.compile("Purpose")).fill("CASE-2026-117")
    shoot(page, "search")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("#candidates")
    shoot(page, "search-result")
    first = page.locator("#candidates tbody tr").first
    assert first.locator("td").nth(4).inner_text() in ("astronaut.jpg", "astronaut-mirrored.jpg")
    assert "cameraman.jpg" not in page.inner_text("#candidates")
    assert re.fullmatch(r"Similarity \d+\.\d\d \(about 1 false match in [\d,]+ comparisons.*\)",
                        page.inner_text("#effective"))
    assert "chance" in page.inner_text("#fmp")
    assert "candidates, not identifications" in page.inner_text("main")
    face_id = first.locator("td").nth(3).inner_text()
    request_id = page.inner_text("#request-id")

    export_url = f"{server.url}/console/search/{request_id}/export"
    early = page.request.get(export_url)  # RequireReview: no export before every candidate has a decision
    assert early.status == 409 and "requires a decision on every candidate" in early.text()
    first.get_by_label("Confirmed").check()
    first.get_by_label("Note").fill("same mole under the left eye")
    first.get_by_role("button", name="Record decision", exact=True).click()
    page.wait_for_url(re.compile("done="))
    assert "Decision recorded as audit record" in page.inner_text("main")
    assert "Confirmed: same person: same mole under the left eye" in page.inner_text("#candidates")
    shoot(page, "review")
    candidates = page.locator("#candidates tbody tr")
    for row in range(1, candidates.count()):
        candidates.nth(row).get_by_label("Rejected").check()
        candidates.nth(row).get_by_role("button", name="Record decision", exact=True).click()
        page.wait_for_url(re.compile("done="))
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Export these results")).click()
    results = json.loads(Path(download.value.path()).read_text())
    assert results["SearchRequestId"] == request_id and results["EffectiveThreshold"] == page.inner_text(
        "#effective").split()[1]
    assert [c["Decisions"][0]["Decision"] for c in results["Candidates"]] == (
        ["CONFIRMED"] + ["REJECTED"] * (len(results["Candidates"]) - 1))

    page.get_by_role("link", name="Audit", exact=True).click()
    page.get_by_label("FaceId (subject access)").fill(face_id)
    page.get_by_role("button", name="Filter", exact=True).click()
    audit_text = page.inner_text("#audit")
    assert "SearchFacesByImage" in audit_text and "ReviewDecision" in audit_text and "CONFIRMED" in audit_text
    assert "CASE-2026-117" in audit_text
    page.get_by_label("Since").fill(time.strftime("%Y-%m-%d", time.gmtime()))
    page.get_by_label("Operation").fill("ReviewDecision")
    page.get_by_role("button", name="Filter", exact=True).click()
    assert [row.locator("td").nth(2).inner_text() for row in page.locator("#audit tbody tr").all()] == [
        "ReviewDecision"]
    page.get_by_label("Operation").fill("")
    page.get_by_role("button", name="Filter", exact=True).click()
    shoot(page, "audit")
    page.get_by_role("link", name="Verify the chain").click()
    assert "Audit log intact" in page.inner_text("#chain")
    shoot(page, "audit-verify")
    page.get_by_role("link", name="Evaluation").click()
    card = page.frame_locator("iframe.card")
    assert "FaceLens model card: sface-2021dec-int8bq" in card.locator("h1").inner_text(timeout=60_000)
    shoot(page, "evaluation")

    # the decision is in the chain, linked to the search's record, and in `facelens audit export`
    exported = subprocess.run([str(BIN / "facelens"), "audit", "export", "--data-dir", str(server.data_dir)],
                              capture_output=True, text=True, check=True).stdout
    records = [json.loads(line) for line in exported.splitlines()]
    searched = next(r for r in records if r["request_id"] == request_id)
    decision = next(r for r in records if r["operation"] == "ReviewDecision")
    assert any(r["operation"] == "SearchFacesByImage" and r["outcome"] == "denied" for r in records)  # the refusal
    assert (searched["operation"], searched["key"], searched["purpose"]) == ("SearchFacesByImage", ADMIN[0],
                                                                            "CASE-2026-117")
    assert face_id in [m["FaceId"] for m in searched["matches"]]
    assert (decision["search_seq"], decision["search_hash"]) == (searched["seq"], searched["hash"])
    assert (decision["decision"], decision["note"], decision["key"]) == ("CONFIRMED", "same mole under the left eye",
                                                                         ADMIN[0])
    assert decision["reviewed"][0]["FaceId"] == face_id
    verified = subprocess.run([str(BIN / "facelens"), "audit", "verify", "--data-dir", str(server.data_dir)],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    # the console's export is the CLI's, record for record
    page.goto(server.url + "/console/audit")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Export these records")).click()
    assert Path(download.value.path()).read_text() == exported
    # a search with a stored face, from the collection's face list: the face itself is not its own candidate
    page.goto(f"{server.url}/console/collections/{COLLECTION}")
    page.get_by_role("link", name="Search with face astronaut.jpg").click()
    page.get_by_label(re.compile("Purpose")).fill("CASE-2026-117")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("#candidates")
    assert "stored face" in page.inner_text("main")
    assert [row.locator("td").nth(4).inner_text() for row in page.locator("#candidates tbody tr").all()] == [
        "astronaut-mirrored.jpg"]
    page.context.close()


def test_a_read_only_key_changes_nothing(server: Server, browser: object, photos: dict[str, Path]) -> None:  # noqa: F811
    rek = client(server.url, *ADMIN)
    rek.create_collection(CollectionId=GUARDED)
    rek.index_faces(CollectionId=GUARDED, Image={"Bytes": photos["cameraman.jpg"].read_bytes()},
                    ExternalImageId="cameraman.jpg")
    policy_before = admin(server).get_collection_policy(CollectionId=GUARDED)["Policy"]
    page = new_page(browser)
    sign_in(page, server, READER)
    assert "read-only key" in page.inner_text("#who")
    assert page.locator("form[action='/console/collections']").count() == 0  # no create control
    page.goto(f"{server.url}/console/collections/{GUARDED}")
    actions = [page.locator("form").nth(i).get_attribute("action") for i in range(page.locator("form").count())]
    assert actions == ["/console/signout"]  # no index, policy or delete form
    shoot(page, "read-only")
    token = csrf(page)
    forged = [("/console/collections", {"collection_id": "forged"}),
              (f"/console/collections/{GUARDED}/delete", {"confirm": GUARDED}),
              (f"/console/collections/{GUARDED}/policy", {"MinSearchSimilarity": "1"})]
    for path, fields in forged:  # with the session's own valid CSRF token: the key's scope still refuses
        answer = page.request.post(server.url + path, form={**fields, "csrf": token}, max_redirects=0)
        assert answer.status == 403 and "read-only" in answer.text(), path
    answer = page.request.post(f"{server.url}/console/collections/{GUARDED}/index", max_redirects=0,
                               multipart={"csrf": token, "images": {"name": "a.jpg", "mimeType": "image/jpeg",
                                                                    "buffer": photos["astronaut.jpg"].read_bytes()}})
    assert answer.status == 403 and "read-only" in answer.text()
    assert "forged" not in collections_of(server)
    assert rek.describe_collection(CollectionId=GUARDED)["FaceCount"] == 1
    assert admin(server).get_collection_policy(CollectionId=GUARDED)["Policy"] == policy_before
    page.context.close()


def test_a_post_without_the_csrf_token_is_refused(server: Server, browser: object) -> None:  # noqa: F811
    page = new_page(browser)
    sign_in(page, server, ADMIN)
    for fields in ({"collection_id": "no-token"}, {"collection_id": "no-token", "csrf": "guessed"}):
        answer = page.request.post(server.url + "/console/collections", form=fields, max_redirects=0)
        assert answer.status == 403 and "CSRF token" in answer.text()
    assert "no-token" not in collections_of(server)
    missing = page.goto(server.url + "/console/no-such-page")
    assert missing.status == 404 and "no such page" in page.inner_text("main")
    answer = page.request.post(server.url + "/console/signin", form={"key_id": ADMIN[0], "secret": "wrong",
                                                                      "signin": "x"}, max_redirects=0)
    assert answer.status == 403  # the form token is checked before the secret is even looked at
    # a wrong secret signs nobody in; a sign-in form not issued to this browser is refused too (no login CSRF)
    fresh = new_page(browser)
    fresh.goto(server.url + "/console/signin")
    fresh.get_by_label("Access key id").fill(ADMIN[0])
    fresh.get_by_label("Secret access key").fill(ADMIN[1] + "x")
    fresh.get_by_role("button", name="Sign in", exact=True).click()
    assert "Unknown access key id or wrong secret" in fresh.inner_text("main") and "/console/signin" in fresh.url
    answer = fresh.request.post(server.url + "/console/signin", form={"key_id": ADMIN[0], "secret": ADMIN[1],
                                                                       "signin": "made-up"}, max_redirects=0)
    assert answer.status == 403 and "facelens_console" not in [c["name"] for c in fresh.context.cookies()]
    for context in (page.context, fresh.context):
        context.close()


def test_an_expired_session_is_sent_to_sign_in(tmp_path_factory: pytest.TempPathFactory, browser: object) -> None:  # noqa: F811
    short = serve(tmp_path_factory, "console-expiry", FACELENS_CONSOLE_SESSION_SECONDS="2")
    try:
        page = new_page(browser)
        sign_in(page, short, ADMIN)
        token = csrf(page)
        time.sleep(2.5)
        page.reload()
        assert "/console/signin" in page.url and "expired=1" in page.url
        assert "Your session expired" in page.inner_text("main")
        shoot(page, "expired")
        answer = page.request.post(short.url + "/console/collections", max_redirects=0,
                                   form={"collection_id": "late", "csrf": token})
        assert answer.status == 303 and "/console/signin" in answer.headers["location"]
        assert "late" not in collections_of(short)
        page.context.close()
    finally:
        with contextlib.suppress(Exception):
            short.stop()


def test_boto3_records_a_decision_with_a_read_only_key(server: Server, photos: dict[str, Path]) -> None:  # noqa: F811
    """RecordReviewDecision is an operation like any other: boto3 (FaceLens's model) can call it, with a read-only
    key, for a face its search returned; the record lands in the chain after the search's."""
    from botocore.exceptions import ClientError

    from facelens.client import admin_client, with_purpose
    from tests.service_fixtures import REGION

    rek = client(server.url, *ADMIN)
    rek.create_collection(CollectionId="console-boto3")
    for name in ("astronaut.jpg", "astronaut-mirrored.jpg"):
        rek.index_faces(CollectionId="console-boto3", Image={"Bytes": photos[name].read_bytes()}, ExternalImageId=name)
    reader = with_purpose(client(server.url, *READER), "CASE-2026-118")
    probe = {"Bytes": photos["probe.jpg"].read_bytes()}
    found = reader.search_faces_by_image(CollectionId="console-boto3", Image=probe)
    face_id = found["FaceMatches"][0]["Face"]["FaceId"]
    review = admin_client(server.url, region_name=REGION, aws_access_key_id=READER[0], aws_secret_access_key=READER[1])
    answer = review.record_review_decision(CollectionId="console-boto3", FaceId=face_id, Decision="INCONCLUSIVE",
                                           SearchRequestId=found["ResponseMetadata"]["RequestId"], Note="blurred")
    assert answer["Sequence"] > answer["SearchSequence"] and len(answer["SearchHash"]) == 64
    assert answer["Similarity"] == pytest.approx(found["FaceMatches"][0]["Similarity"], abs=1e-3)
    with pytest.raises(ClientError) as refused:  # a face that search did not return
        review.record_review_decision(CollectionId="console-boto3", FaceId="00000000-0000-4000-8000-000000000000",
                                      Decision="CONFIRMED", SearchRequestId=found["ResponseMetadata"]["RequestId"])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_key_limited_to_a_collection_and_operations(server: Server, browser: object,  # noqa: F811
                                                      photos: dict[str, Path]) -> None:  # noqa: F811
    rek = client(server.url, *ADMIN)
    for name in ("console-scoped", "console-hidden"):
        rek.create_collection(CollectionId=name)
        rek.index_faces(CollectionId=name, Image={"Bytes": photos["astronaut.jpg"].read_bytes()})
    page = new_page(browser)
    sign_in(page, server, SCOPED)
    listed = page.inner_text("#collections")
    assert "console-scoped" in listed and "console-hidden" not in listed
    assert page.goto(f"{server.url}/console/collections/console-hidden").status == 403
    assert "no access to collection console-hidden" in page.inner_text("main")
    page.goto(f"{server.url}/console/search?collection=console-scoped")
    assert page.locator("#probe").count() == 1 and page.locator("#face_id").count() == 0  # no SearchFaces
    page.get_by_label(re.compile("Probe image")).set_input_files(photos["probe.jpg"])
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector("#candidates")
    assert page.locator("#candidates tbody tr").count() == 1
    assert page.get_by_role("button", name="Record decision").count() == 0  # RecordReviewDecision not in its list
    face_id = page.locator("#candidates tbody tr td").nth(3).inner_text()
    answer = page.request.post(server.url + "/console/review", max_redirects=0, form={
        "csrf": csrf(page), "search": page.inner_text("#request-id"), "face_id": face_id, "decision": "CONFIRMED"})
    assert answer.status == 403 and "not allowed to call RecordReviewDecision" in answer.text()
    page.context.close()


def test_indexing_without_javascript_answers_every_file_in_one_page(server: Server, browser: object,  # noqa: F811
                                                                     photos: dict[str, Path]) -> None:  # noqa: F811
    client(server.url, *ADMIN).create_collection(CollectionId="console-nojs")
    context = browser.new_context(viewport={"width": 1366, "height": 768}, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, server, ADMIN, "/console/collections/console-nojs")
    page.get_by_label(re.compile("Drop images here")).set_input_files([photos["cameraman.jpg"], photos["notes.jpg"]])
    page.get_by_role("button", name="Index", exact=True).click()
    page.wait_for_url(re.compile("/index$"))
    cells = [[cell.inner_text() for cell in row.locator("td").all()] for row in
             page.locator("#index-results tbody tr").all()]
    assert [(c[0], c[1]) for c in cells] == [("cameraman.jpg", "1 face(s) indexed"), ("notes.jpg", "not indexed")]
    page.get_by_role("link", name="Back to console-nojs").click()
    assert page.inner_text("#face-count") == "1"
    context.close()
