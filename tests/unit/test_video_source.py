"""`LocalVideo.open()`: what is opened is what is judged (facelens.video.source)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facelens.video.source import LocalVideo, VideoMissing, VideoOutside


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "videos" / "cams").mkdir(parents=True)
    (tmp_path / "videos" / "cams" / "door.mp4").write_bytes(b"inside")
    (tmp_path / "secret.mp4").write_bytes(b"outside")
    return tmp_path / "videos"


def test_a_file_inside_and_a_link_that_stays_inside_are_read(root: Path) -> None:
    (root / "alias.mp4").symlink_to(root / "cams" / "door.mp4")
    (root / "linked").symlink_to(root / "cams")
    for name in ("cams/door.mp4", "alias.mp4", "linked/door.mp4", "./cams/../cams/door.mp4"):
        with LocalVideo(root, name).open() as handle:
            assert handle.read() == b"inside"


def test_links_and_names_out_of_the_folder_are_refused(root: Path) -> None:
    (root / "out.mp4").symlink_to(root.parent / "secret.mp4")
    (root / "up").symlink_to(root.parent)
    for name in ("out.mp4", "up/secret.mp4", "../secret.mp4", str(root.parent / "secret.mp4")):
        with pytest.raises(VideoOutside, match="outside the video directory"):
            LocalVideo(root, name).open()


def test_missing_names_directories_fifos_and_nul_are_missing(root: Path) -> None:
    os.mkfifo(root / "pipe.mp4")
    for name in ("none.mp4", "cams", "pipe.mp4", "door\x00.mp4"):
        with pytest.raises(VideoMissing):
            LocalVideo(root, name).open()


def test_the_descriptor_is_judged_not_the_name(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A swap between the name check and the open (simulated: the check sees the inside file, the open gets the
    outside one) is caught on the opened descriptor."""
    real_open = os.open

    def swapped(path: str, flags: int, *args: object) -> int:
        return real_open(str(root.parent / "secret.mp4"), flags, *args)

    monkeypatch.setattr(os, "open", swapped)
    with pytest.raises(VideoOutside):
        LocalVideo(root, "cams/door.mp4").open()
