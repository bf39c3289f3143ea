"""Fixtures and helpers of the console's browser tests (`tests/integration/test_console.py`): a `facelens serve`
with an admin, a read-only and a scoped key, Debian's Chromium driven by Playwright, photos, screenshots."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import encode
from tests.key_fixtures import ADMIN, READER, SCOPED, admin, credentials_file, reader, scoped, write_credentials  # noqa: F401
from tests.service_fixtures import Server, client, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# where the browser tests write their screenshots: a temporary folder, so a test run leaves the checkout as it
# was; `FACELENS_CONSOLE_SHOTS=docs/console make test` refreshes the ones docs/console.md shows
SHOTS = Path(os.environ.get("FACELENS_CONSOLE_SHOTS") or Path(tempfile.gettempdir()) / "facelens-console-shots")
CREDENTIALS = credentials_file(admin(), reader(),
                               scoped("console-scoped", "ListCollections, SearchFacesByImage"))
COLLECTION = "console-cases"


def serve(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Server:
    data = tmp_path_factory.mktemp(name) / "data"
    data.mkdir(parents=True)
    write_credentials(data, CREDENTIALS)
    return start_server(data, {"FACELENS_WORKERS": "2", **env})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = serve(tmp_path_factory, "console")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, cameraman: np.ndarray) -> dict[str, Path]:
    """Three photos to index, a file that is no image, and a probe (Eileen Collins at another size)."""
    folder = tmp_path_factory.mktemp("photos")
    probe = np.asarray(Image.fromarray(astronaut).resize((400, 400)))
    files = {"astronaut.jpg": encode(astronaut), "astronaut-mirrored.jpg": encode(np.ascontiguousarray(
        astronaut[:, ::-1])), "cameraman.jpg": encode(cameraman), "notes.jpg": b"this is not an image",
        "probe.jpg": encode(probe)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


UNLABELLED = """Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea, button"))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
  .map(e => e.outerHTML)"""


def shoot(page: object, name: str) -> None:
    """A 1366x768 screenshot of the page, reduced to 64 colours to keep the PNG small; every form control on it
    must have a label that assistive technology reads, and the page must not scroll sideways at that width."""
    assert page.evaluate(UNLABELLED) == [], name
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366, name
    SHOTS.mkdir(parents=True, exist_ok=True)
    raw = Image.open(io.BytesIO(page.screenshot(full_page=False)))
    raw.convert("RGB").quantize(colors=64).save(SHOTS / f"{name}.png", optimize=True)


def new_page(browser: object) -> object:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    return context.new_page()


def sign_in(page: object, server: Server, key: tuple[str, str], path: str = "/console/collections") -> None:
    page.goto(server.url + path)
    assert "/console/signin" in page.url  # no session: sent to sign-in
    page.get_by_label("Access key id").fill(key[0])
    page.get_by_label("Secret access key").fill(key[1])
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(re.escape(path) + r"$"))


def csrf(page: object) -> str:
    return page.locator("input[name=csrf]").first.get_attribute("value")


def collections_of(server: Server) -> list[str]:
    return client(server.url, *ADMIN).list_collections()["CollectionIds"]
