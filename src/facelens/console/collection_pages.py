"""Console pages of collections and faces: list (face counts, model version, policy), create, delete with a typed
confirmation, edit policy (admin keys), faces page by page, and indexing a drop of images with a result per file.

Each action is the registered operation a boto3 client would call (`Console.call`); a control is shown only when
the key's scope allows its operation (`Console.may`), and a forged POST is refused by the same scope check.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from facelens import errors
from facelens.console import html
from facelens.console.app import Console
from facelens.console.html import esc
from facelens.console.sessions import Session

FACES_PER_PAGE = 25
CROP_SHOWN = 48  # CSS pixels of a thumbnail in the face list (the kept crop is 96x96: sharp on a 2x screen)
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Image.Bytes' limit in Rekognition's model
POLICY_NUMBERS = (("MinSearchSimilarity", "Lowest Similarity a search is answered at", "0", "100", "0.01"),
                  ("MaxFalseMatchProbability", "Tolerated chance that a search returns a stranger", "0.000001", "1",
                   "any"),
                  ("MaxResults", "Cap on MaxFaces of a search", "1", "4096", "1"),
                  ("RetentionDays", "Delete faces older than (days)", "0.001", "100000", "any"))


def _path(collection_id: str) -> str:
    return "/console/collections/" + quote(collection_id, safe="")


async def all_collections(console: Console, session: Session) -> list[tuple[str, str]]:
    """(CollectionId, FaceModelVersion) of every collection the key sees, all pages."""
    found: list[tuple[str, str]] = []
    token = None
    while True:
        page, _ = await console.call(session, "ListCollections", {"MaxResults": 1000, **({"NextToken": token}
                                                                                      if token else {})})
        found += list(zip(page.get("CollectionIds", []), page.get("FaceModelVersions", []), strict=False))
        token = page.get("NextToken")
        if not token:
            return found


async def describe(console: Console, session: Session, collection_id: str) -> dict[str, Any]:
    """DescribeCollection's answer, or {} when the key may not call it (an operation-scoped key)."""
    if not console.may(session, "DescribeCollection", collection_id):
        return {}
    answer, _ = await console.call(session, "DescribeCollection", {"CollectionId": collection_id})
    return answer


async def policy_of(console: Console, session: Session, collection_id: str) -> dict[str, Any] | None:
    """GetCollectionPolicy's answer, or None when the key may not read it."""
    if not console.may(session, "GetCollectionPolicy", collection_id):
        return None
    answer, _ = await console.call(session, "GetCollectionPolicy", {"CollectionId": collection_id})
    return answer


def policy_text(policy: dict[str, Any] | None) -> str:
    if policy is None:
        return "—"
    effective = policy["EffectivePolicy"]
    parts = [f"floor {policy['SearchFloor']:g}", f"p(stranger) ≤ {effective['MaxFalseMatchProbability']:g}",
             "purpose required" if effective.get("RequirePurpose") else "purpose optional"]
    if effective.get("RequireReview"):
        parts.append("review required before export")
    if effective.get("KeepFaceCrops"):
        parts.append("face crops kept")
    if effective.get("RetentionDays"):
        parts.append(f"retention {effective['RetentionDays']:g} d")
    return "; ".join(parts)


async def collections(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    rows = []
    for collection_id, model in await all_collections(console, session):
        described = await describe(console, session, collection_id)
        policy = await policy_of(console, session, collection_id)
        rows.append([f'<a href="{esc(_path(collection_id))}">{esc(collection_id)}</a>',
                     esc(described.get("FaceCount", "—")), esc(described.get("UserCount", "—")), esc(model),
                     esc(policy_text(policy))])
    body = html.table("Collections this key can see", ["Collection", "Faces", "Users", "Face model", "Policy"],
                      rows, "No collections yet.", "collections")
    if console.may(session, "CreateCollection"):
        body += ('<section aria-labelledby="create-h"><h2 id="create-h">Create a collection</h2>'
                 f'<form method="post" action="/console/collections">{html.csrf_field(session)}'
                 '<p><label for="collection_id">Collection id</label><input id="collection_id" name="collection_id" '
                 'required maxlength="255" pattern="[a-zA-Z0-9_.\\-]+" aria-describedby="cid-hint">'
                 '<span id="cid-hint" class="hint">letters, digits, _ . -</span></p>'
                 '<p><button type="submit">Create</button></p></form></section>')
    return html.page("Collections", body, session, "collections", flash=_flash(request))


def _flash(request: Request) -> list[str]:
    done = request.query_params.get("done")
    return [done[:200]] if done else []


def _done(path: str, text: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={quote(text)}", status_code=303)


async def create(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    collection_id = str((form or {}).get("collection_id") or "").strip()
    await console.call(session, "CreateCollection", {"CollectionId": collection_id})
    return _done(_path(collection_id), f"Collection {collection_id} created.")


async def collection(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    collection_id = request.path_params["collection_id"]
    if not session.scope.sees(collection_id):  # what KeyScope.check answers any operation on it
        raise errors.AccessDeniedException(f"this access key has no access to collection {collection_id}")
    described = await describe(console, session, collection_id)
    policy = await policy_of(console, session, collection_id)
    token = request.query_params.get("page")
    listing: dict[str, Any] = {}
    if console.may(session, "ListFaces", collection_id):
        listing, _ = await console.call(session, "ListFaces", {"CollectionId": collection_id,
                                                               "MaxResults": FACES_PER_PAGE,
                                                               **({"NextToken": token} if token else {})})
    body = (f'<dl class="facts"><dt>Faces</dt><dd id="face-count">{esc(described.get("FaceCount"))}</dd>'
            f'<dt>Users</dt><dd>{esc(described.get("UserCount", ""))}</dd>'
            f'<dt>Face model</dt><dd>{esc(described.get("FaceModelVersion"))}</dd>'
            f'<dt>Policy</dt><dd id="policy">{esc(policy_text(policy))}</dd></dl>'
            f'<p><a href="/console/search?collection={esc(quote(collection_id))}">Search this collection</a></p>')
    searchable = console.may(session, "SearchFaces", collection_id)
    faces = listing.get("Faces", [])
    cropped = await _cropped(console, collection_id, [f["FaceId"] for f in faces])
    header = ["FaceId", "ExternalImageId", "UserId", "Detection confidence", "Search"]
    if cropped:
        header.insert(0, "Face")
    rows = [([_thumbnail(collection_id, f) if f["FaceId"] in cropped else "—"] if cropped else [])
            + [f"<code>{esc(f['FaceId'])}</code>", esc(f.get("ExternalImageId", "")), esc(f.get("UserId", "")),
             esc(f"{f.get('Confidence', 0):.1f}"),
             f'<a href="/console/search?collection={esc(quote(collection_id))}&amp;face_id={esc(f["FaceId"])}" '
             f'aria-label="Search with face {esc(f.get("ExternalImageId") or f["FaceId"])}">Search with it</a>'
             if searchable else ""] for f in faces]
    body += ('<section aria-labelledby="faces-h"><h2 id="faces-h">Faces</h2>'
             + html.table("Faces in this collection", header, rows,
                          "No faces indexed yet." if listing else "This key may not list faces.", "faces"))
    if listing.get("NextToken"):
        body += (f'<p><a href="{esc(_path(collection_id))}?page={esc(quote(listing["NextToken"]))}" rel="next">'
                 "Next faces</a></p>")
    body += "</section>"
    if console.may(session, "IndexFaces", collection_id):
        body += _index_form(session, collection_id)
    if policy is not None and console.may(session, "PutCollectionPolicy", collection_id):
        body += _policy_form(session, collection_id, policy)
    if console.may(session, "DeleteCollection", collection_id):
        body += ('<section aria-labelledby="delete-h"><h2 id="delete-h">Delete this collection</h2>'
                 f'<form method="post" action="{esc(_path(collection_id))}/delete">{html.csrf_field(session)}'
                 f'<p><label for="confirm">Type <code>{esc(collection_id)}</code> to delete it with its '
                 f'{esc(described.get("FaceCount"))} faces (their embeddings leave the disk)</label>'
                 '<input id="confirm" name="confirm" required autocomplete="off"></p>'
                 '<p><button type="submit" class="danger">Delete collection</button></p></form></section>')
    return html.page(f"Collection {collection_id}", body, session, "collections", flash=_flash(request))


async def _cropped(console: Console, collection_id: str, face_ids: list[str]) -> set[str]:
    """The listed faces that have a thumbnail (only a key that may list them asks: `collection` checked it)."""
    service = console.backend.collections
    if not face_ids or service is None:
        return set()
    return await asyncio.to_thread(service.faces_with_crops, collection_id=collection_id, face_ids=face_ids)


def _thumbnail(collection_id: str, face: dict[str, Any]) -> str:
    name = face.get("ExternalImageId") or face["FaceId"]
    return (f'<img class="crop" src="{esc(_path(collection_id))}/faces/{esc(quote(face["FaceId"], safe=""))}/crop"'
            f' width="{CROP_SHOWN}" height="{CROP_SHOWN}" alt="Face {esc(name)}">')


async def crop(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    """A face's thumbnail, to a key that may list the collection's faces (403 otherwise, 404 when none is kept)."""
    collection_id, face_id = request.path_params["collection_id"], request.path_params["face_id"]
    if not session.scope.sees(collection_id):
        raise errors.AccessDeniedException(f"this access key has no access to collection {collection_id}")
    session.scope.check("ListFaces", collection_id)  # AccessDeniedException: 403, as for the face list itself
    service = console.backend.collections
    jpeg = None if service is None else await asyncio.to_thread(service.face_crop, collection_id=collection_id,
                                                                 face_id=face_id)
    if jpeg is None:
        raise errors.ResourceNotFoundException(f"no face crop is kept for face {face_id}")
    return Response(jpeg, media_type="image/jpeg", headers=html.HEADERS)


def _index_form(session: Session, collection_id: str) -> str:
    return ('<section aria-labelledby="index-h"><h2 id="index-h">Index faces</h2>'
            f'<form method="post" action="{esc(_path(collection_id))}/index" enctype="multipart/form-data" '
            f'class="drop" data-drop data-one-by-one>{html.csrf_field(session)}'
            '<p><label for="images">Drop images here, or choose them (JPEG or PNG, up to 5 MiB each; the largest '
            'faces of each are indexed, ExternalImageId = file name)</label>'
            '<input id="images" name="images" type="file" accept="image/jpeg,image/png" multiple required></p>'
            '<p class="progress" role="status" aria-live="polite" data-progress></p>'
            '<p><button type="submit">Index</button></p></form></section>')


def _policy_form(session: Session, collection_id: str, policy: dict[str, Any]) -> str:
    own, effective = policy.get("Policy", {}), policy["EffectivePolicy"]
    fields = "".join(
        f'<p><label for="p-{name}">{esc(label)}</label><input id="p-{name}" name="{name}" type="number" min="{low}" '
        f'max="{high}" step="{step}" value="{esc(own.get(name, ""))}" placeholder="{esc(effective.get(name, ""))}">'
        "</p>" for name, label, low, high, step in POLICY_NUMBERS)
    checked = " checked" if effective.get("RequirePurpose") else ""
    review = " checked" if effective.get("RequireReview") else ""
    crops = " checked" if effective.get("KeepFaceCrops") else ""
    return ('<section aria-labelledby="policy-h"><h2 id="policy-h">Policy (admin)</h2>'
            f'<form method="post" action="{esc(_path(collection_id))}/policy">{html.csrf_field(session)}{fields}'
            f'<p><input id="p-RequirePurpose" name="RequirePurpose" type="checkbox" value="true"{checked}>'
            '<label for="p-RequirePurpose" class="inline">Refuse searches without a purpose</label></p>'
            f'<p><input id="p-RequireReview" name="RequireReview" type="checkbox" value="true"{review}>'
            '<label for="p-RequireReview" class="inline">Export a search\'s results only once every candidate has a '
            "decision</label></p>"
            f'<p><input id="p-KeepFaceCrops" name="KeepFaceCrops" type="checkbox" value="true"{crops}>'
            '<label for="p-KeepFaceCrops" class="inline">Keep a 96x96 crop of each face indexed from now on, shown '
            'in this list (a photo of a person: deleted with its face)</label></p>'
            f'<p><label for="p-PurposePattern">Pattern the whole purpose must match</label><input '
            f'id="p-PurposePattern" name="PurposePattern" value="{esc(own.get("PurposePattern", ""))}"></p>'
            '<p class="hint">Empty fields keep their present value (the server default shown greyed).</p>'
            '<p><button type="submit">Save policy</button></p></form></section>')


async def index(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    collection_id = request.path_params["collection_id"]
    files = [item for item in (form.getlist("images") if form else []) if isinstance(item, UploadFile)]
    rows = []
    for number, upload in enumerate(files, 1):
        name = upload.filename or f"image-{number}"
        data = await upload.read(MAX_IMAGE_BYTES + 1)
        external = re.sub(r"[^a-zA-Z0-9_.\-:]", "_", name)[:255] or f"image-{number}"
        try:
            if len(data) > MAX_IMAGE_BYTES:
                raise errors.ImageTooLargeException("the image is over Image.Bytes' 5 MiB limit")
            answer, _ = await console.call(session, "IndexFaces", {"CollectionId": collection_id, "Image": data,
                                                                   "ExternalImageId": external})
        except errors.AccessDeniedException:
            raise
        except errors.FaceLensError as exc:
            rows.append([esc(name), '<span class="bad">not indexed</span>', f"{esc(exc.code)}: {esc(exc.message)}"])
            continue
        indexed = [record["Face"]["FaceId"] for record in answer.get("FaceRecords", [])]
        skipped = [", ".join(u.get("Reasons", [])) for u in answer.get("UnindexedFaces", [])]
        status = f"{len(indexed)} face(s) indexed" if indexed else '<span class="bad">no face indexed</span>'
        detail = " ".join(f"<code>{esc(f)}</code>" for f in indexed)
        if skipped:
            detail += esc(f" (left out: {'; '.join(skipped)})")
        rows.append([esc(name), status, detail or "no face was found in the image"])
    body = (html.table("Result per file", ["File", "Result", "Detail"], rows, "No files were sent.", "index-results")
            + f'<p><a href="{esc(_path(collection_id))}">Back to {esc(collection_id)}</a></p>')
    return html.page(f"Indexed into {collection_id}", body, session, "collections")


async def delete(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    collection_id = request.path_params["collection_id"]
    if str((form or {}).get("confirm") or "") != collection_id:
        return html.error_page("Not deleted", f"Type the collection id {collection_id} exactly to confirm.",
                               session, 400, _path(collection_id))
    await console.call(session, "DeleteCollection", {"CollectionId": collection_id})
    return _done("/console/collections", f"Collection {collection_id} deleted.")


async def put_policy(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    collection_id = request.path_params["collection_id"]
    values: dict[str, Any] = {}
    for name, *_ in POLICY_NUMBERS:
        raw = str((form or {}).get(name) or "").strip()
        if raw:
            try:
                values[name] = int(raw) if name == "MaxResults" else float(raw)
            except ValueError:
                raise errors.InvalidParameterException(f"{name} must be a number, not {raw[:40]!r}") from None
    values["RequirePurpose"] = (form or {}).get("RequirePurpose") == "true"
    values["RequireReview"] = (form or {}).get("RequireReview") == "true"
    values["KeepFaceCrops"] = (form or {}).get("KeepFaceCrops") == "true"
    pattern = str((form or {}).get("PurposePattern") or "").strip()
    if pattern:
        values["PurposePattern"] = pattern
    await console.call(session, "PutCollectionPolicy", {"CollectionId": collection_id, "Policy": values})
    return _done(_path(collection_id), "Policy saved (and audited).")


ROUTES = (
    ("/collections", collections, ("GET",)),
    ("/collections", create, ("POST",)),
    ("/collections/{collection_id}", collection, ("GET",)),
    ("/collections/{collection_id}/index", index, ("POST",)),
    ("/collections/{collection_id}/delete", delete, ("POST",)),
    ("/collections/{collection_id}/policy", put_policy, ("POST",)),
    ("/collections/{collection_id}/faces/{face_id}/crop", crop, ("GET",)),
)
